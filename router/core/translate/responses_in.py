"""An OpenAI Responses request as a chat-completions request.

Mapped: `instructions` (a system message first), `input` as a string or items (messages with
text, image and file parts; function calls and their outputs), function tools and
`tool_choice`, `text.format` (json_schema, json_object) as `response_format`,
`max_output_tokens` as `max_tokens` (the name every OpenAI-compatible server reads; the
pipeline renames it per backend), temperature, top_p, `reasoning.effort` as
`reasoning_effort`, `user`, and `stream` (with usage on the final chunk, so a stream can be
priced). `tool_choice` and `parallel_tool_calls` go only with tools, as chat servers refuse
them alone.

The `developer` role becomes `system`, which every chat template knows. Reasoning items of
earlier turns are left out: a chat backend cannot take a model's past reasoning back.
`metadata`, `store`, `include`, `truncation`, `service_tier`, `text.verbosity`,
`top_logprobs`, `max_tool_calls` and the prompt-cache keys do not reach the backend; the
Response echoes what it has a field for. `previous_response_id` is the front door's to
resolve: it passes the stored items of the earlier turns as `history`, which go before
`input`.

Hosted tools (web search, file search, computer use, code interpreter, image generation, MCP,
shell, ...), and items or options that need OpenAI's own state (`background`, `conversation`,
`prompt`, `item_reference`) cannot be carried: they are kept as refusals in the ChatRequest
for a backend that speaks only chat completions, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from router.core.translate.chat import ChatRequest
from router.core.translate.errors import (
    UnsupportedFeature,
    expect_dict,
    expect_list,
    expect_str,
    invalid,
)
from router.types import JSONObject

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_PASSED = ("temperature", "top_p", "user")
_STATEFUL = ("background", "conversation", "prompt")
_DETAILS = {"low": "low", "high": "high", "auto": "auto", "original": "high"}
_NATIVE_ONLY = (
    "Remove it, or send the request to a model whose backend speaks the Responses API "
    "natively; this one is served through chat completions."
)


def _unsupported(what: str, param: str) -> UnsupportedFeature:
    return UnsupportedFeature(f"{what} is not supported here. {_NATIVE_ONLY}", param=param)


class _Translation:
    __slots__ = ("messages", "refusals")

    def __init__(self) -> None:
        self.messages: list[JSONObject] = []
        self.refusals: list[UnsupportedFeature] = []

    def item(self, item: Any, param: str) -> None:
        item = expect_dict(item, param)
        kind = item.get("type", "message")
        if kind == "message":
            self.message(item, param)
        elif kind == "function_call":
            self.function_call(item, param)
        elif kind == "function_call_output":
            self.function_output(item, param)
        elif kind == "reasoning":
            return
        elif kind == "item_reference" or (kind is None and "id" in item):
            self.refusals.append(_unsupported("An item_reference (a stored item)", param))
        elif isinstance(kind, str):
            self.refusals.append(_unsupported(f"An input item of type {kind!r}", f"{param}.type"))
        else:
            raise invalid(f"{param}.type", "expected a string")

    def message(self, item: JSONObject, param: str) -> None:
        role = _ROLES.get(str(item.get("role")))
        if role is None:
            raise invalid(f"{param}.role", "expected 'user', 'assistant', 'system' or 'developer'")
        content = item.get("content")
        if isinstance(content, str):
            self.messages.append({"role": role, "content": content})
            return
        parts = expect_list(content, f"{param}.content")
        if role == "assistant":
            self.assistant_text(parts, f"{param}.content")
        else:
            converted = [self.part(part, f"{param}.content[{i}]") for i, part in enumerate(parts)]
            self.messages.append({"role": role, "content": converted})

    def assistant_text(self, parts: list[Any], param: str) -> None:
        texts, refusals = [], []
        for index, part in enumerate(parts):
            part = expect_dict(part, f"{param}[{index}]")
            kind = part.get("type")
            if kind in ("output_text", "input_text", "text"):
                texts.append(expect_str(part.get("text"), f"{param}[{index}].text"))
            elif kind == "refusal":
                refusals.append(expect_str(part.get("refusal"), f"{param}[{index}].refusal"))
            else:
                raise invalid(f"{param}[{index}].type", "expected 'output_text' or 'refusal'")
        message: JSONObject = {"role": "assistant", "content": "".join(texts)}
        if refusals:
            message["refusal"] = "".join(refusals)
        self.messages.append(message)

    def part(self, part: Any, param: str) -> JSONObject:
        part = expect_dict(part, param)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            return {"type": "text", "text": expect_str(part.get("text"), f"{param}.text")}
        if kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                if part.get("file_id") is not None:
                    self.refusals.append(_unsupported("An image given by file_id", f"{param}"))
                    return {"type": "image_url", "image_url": {"url": ""}}
                raise invalid(f"{param}.image_url", "expected a URL or a data URL")
            image: JSONObject = {"url": url}
            detail = _DETAILS.get(str(part.get("detail")))
            if detail is not None:
                image["detail"] = detail
            return {"type": "image_url", "image_url": image}
        if kind == "input_file":
            return self.file(part, param)
        if kind == "input_audio":
            audio = expect_dict(part.get("input_audio"), f"{param}.input_audio")
            return {"type": "input_audio", "input_audio": audio}
        raise invalid(f"{param}.type", f"unknown content part type {kind!r}")

    def file(self, part: JSONObject, param: str) -> JSONObject:
        file: JSONObject = {}
        if isinstance(part.get("file_data"), str):
            file["file_data"] = part["file_data"]
        elif isinstance(part.get("file_id"), str):
            file["file_id"] = part["file_id"]
        elif part.get("file_url") is not None:
            self.refusals.append(_unsupported("A file given by file_url", f"{param}.file_url"))
        else:
            raise invalid(param, "expected 'file_data', 'file_id' or 'file_url'")
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}

    def function_call(self, item: JSONObject, param: str) -> None:
        call = {
            "id": expect_str(item.get("call_id"), f"{param}.call_id"),
            "type": "function",
            "function": {
                "name": expect_str(item.get("name"), f"{param}.name"),
                "arguments": expect_str(item.get("arguments", ""), f"{param}.arguments"),
            },
        }
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant" and "refusal" not in last:
            last.setdefault("tool_calls", []).append(call)
            if last.get("content") == "":
                last["content"] = None
        else:
            self.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})

    def function_output(self, item: JSONObject, param: str) -> None:
        output = item.get("output")
        if isinstance(output, list):
            texts = []
            for index, part in enumerate(output):
                part = expect_dict(part, f"{param}.output[{index}]")
                if part.get("type") != "input_text":
                    what = f"A function_call_output part of type {part.get('type')!r}"
                    self.refusals.append(_unsupported(what, f"{param}.output[{index}]"))
                    continue
                texts.append(expect_str(part.get("text"), f"{param}.output[{index}].text"))
            output = "".join(texts)
        self.messages.append(
            {
                "role": "tool",
                "tool_call_id": expect_str(item.get("call_id"), f"{param}.call_id"),
                "content": expect_str(output, f"{param}.output"),
            }
        )

    def tools(self, tools: Any) -> list[JSONObject]:
        converted = []
        for index, tool in enumerate(expect_list(tools, "tools")):
            tool = expect_dict(tool, f"tools[{index}]")
            kind = tool.get("type")
            if kind != "function":
                self.refusals.append(_unsupported(f"The hosted tool {kind!r}", f"tools[{index}]"))
                converted.append(tool)
                continue
            function: JSONObject = {"name": expect_str(tool.get("name"), f"tools[{index}].name")}
            for name in ("description", "parameters", "strict"):
                if tool.get(name) is not None:
                    function[name] = tool[name]
            converted.append({"type": "function", "function": function})
        return converted

    def tool_choice(self, choice: Any) -> Any:
        if choice is None or choice in ("none", "auto", "required"):
            return choice
        choice = expect_dict(choice, "tool_choice")
        kind = choice.get("type")
        if kind == "function":
            name = expect_str(choice.get("name"), "tool_choice.name")
            return {"type": "function", "function": {"name": name}}
        if kind == "allowed_tools":
            names = []
            for index, tool in enumerate(expect_list(choice.get("tools"), "tool_choice.tools")):
                tool = expect_dict(tool, f"tool_choice.tools[{index}]")
                if tool.get("type") != "function":
                    what = f"Allowing the hosted tool {tool.get('type')!r}"
                    self.refusals.append(_unsupported(what, f"tool_choice.tools[{index}]"))
                    continue
                name = expect_str(tool.get("name"), f"tool_choice.tools[{index}].name")
                names.append({"type": "function", "function": {"name": name}})
            mode = choice.get("mode", "auto")
            return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": names}}
        self.refusals.append(_unsupported(f"A tool_choice of type {kind!r}", "tool_choice"))
        return "auto"


def _response_format(text: Any) -> JSONObject | None:
    if text is None:
        return None
    config = expect_dict(text, "text").get("format")
    if config is None:
        return None
    config = expect_dict(config, "text.format")
    kind = config.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: JSONObject = {
            "name": expect_str(config.get("name"), "text.format.name"),
            "schema": expect_dict(config.get("schema"), "text.format.schema"),
        }
        for name in ("description", "strict"):
            if config.get(name) is not None:
                schema[name] = config[name]
        return {"type": "json_schema", "json_schema": schema}
    raise invalid("text.format.type", "expected 'text', 'json_object' or 'json_schema'")


def input_items(body: JSONObject) -> list[JSONObject]:
    """`input` as a list of items (a string is one user message): what a stored turn keeps."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(expect_list(value, "input"))


def responses_to_chat(body: JSONObject, history: Sequence[JSONObject] = ()) -> ChatRequest:
    """A Responses request (with the items of earlier turns, if any) as a chat request.

    Raises InvalidRequest naming the malformed parameter; what only a native backend can do is
    returned in `ChatRequest.unsupported` (see ChatRequest.for_chat_backend).
    """
    translation = _Translation()
    instructions = body.get("instructions")
    if instructions is not None:
        text = expect_str(instructions, "instructions")
        translation.messages.append({"role": "system", "content": text})
    for index, item in enumerate(history):
        translation.item(item, f"previous_response_id (item {index})")
    value = body.get("input")
    items = [value] if isinstance(value, str) else expect_list(value, "input")
    for index, item in enumerate(items):
        if isinstance(item, str):
            translation.messages.append({"role": "user", "content": item})
        else:
            translation.item(item, f"input[{index}]")
    if not translation.messages:
        if not translation.refusals:
            raise invalid("input", "expected a string or a non-empty list of items")
        # Every item needs a native backend; the body is only inspected, never sent.
        translation.messages.append({"role": "user", "content": ""})
    chat: JSONObject = {"model": body.get("model"), "messages": translation.messages}
    for name in _STATEFUL:
        if body.get(name):
            translation.refusals.append(_unsupported(f"'{name}'", name))
    if body.get("tools"):
        chat["tools"] = translation.tools(body["tools"])
        choice = translation.tool_choice(body.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    for name in _PASSED:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return ChatRequest(chat, tuple(translation.refusals))
