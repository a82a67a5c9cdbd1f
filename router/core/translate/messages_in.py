"""An Anthropic Messages request as a chat-completions request.

Mapped: `system` (a string or text blocks) as a system message; content blocks: text, image
(base64 as a data URL, or a URL), document (a base64 PDF as a file part, plain text as text),
tool_use as tool calls, tool_result as `tool` messages (`is_error` as an "Error: " prefix; the
images and documents a tool returns follow in a user message, since a tool message holds text
only); tools (`input_schema` as `parameters`) and tool_choice (auto, any as required, tool,
none; `disable_parallel_tool_use` as `parallel_tool_calls: false`); `stop_sequences` as
`stop`; `max_tokens`; temperature and top_p; `top_k` as is (vLLM, llama.cpp, SGLang and
Ollama read it; a strict OpenAI server would refuse it); `metadata.user_id` as `user`;
`output_config` (`format` as a json_schema response_format, `effort` as `reasoning_effort`);
and `stream` (with usage on the final chunk).

`thinking` has no chat-completions field: the backend reasons as it is configured to, and
when the client enabled thinking its reasoning comes back as thinking blocks. Thinking blocks
of earlier turns are left out, as a chat backend cannot take them back; `cache_control` is a
caching hint with no chat equivalent. Server tools (web search, code execution, bash, text
editor, ...), their blocks, `container` and `mcp_servers` are refusals for a backend that
speaks only chat completions, never dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.core.translate.chat import ChatRequest
from router.core.translate.errors import (
    UnsupportedFeature,
    expect_dict,
    expect_list,
    expect_str,
    invalid,
)
from router.types import JSONObject

_PASSED = ("temperature", "top_p", "top_k")
_NATIVE_ONLY = (
    "Remove it, or send the request to a model whose backend speaks the Messages API "
    "natively; this one is served through chat completions."
)
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _unsupported(what: str, param: str) -> UnsupportedFeature:
    return UnsupportedFeature(f"{what} is not supported here. {_NATIVE_ONLY}", param=param)


def _texts(value: Any, param: str) -> str:
    """A string, or text blocks joined by newlines (system prompts, tool results)."""
    if isinstance(value, str):
        return value
    texts = []
    for index, block in enumerate(expect_list(value, param)):
        block = expect_dict(block, f"{param}[{index}]")
        if block.get("type") != "text":
            raise invalid(f"{param}[{index}].type", "expected 'text'")
        texts.append(expect_str(block.get("text"), f"{param}[{index}].text"))
    return "\n".join(texts)


class _Translation:
    __slots__ = ("messages", "refusals")

    def __init__(self) -> None:
        self.messages: list[JSONObject] = []
        self.refusals: list[UnsupportedFeature] = []

    def message(self, message: Any, param: str) -> None:
        message = expect_dict(message, param)
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            self.messages.append({"role": "system", "content": _texts(content, f"{param}.content")})
        elif role not in ("user", "assistant"):
            raise invalid(f"{param}.role", "expected 'user' or 'assistant'")
        elif isinstance(content, str):
            self.messages.append({"role": role, "content": content})
        elif role == "user":
            self.user(expect_list(content, f"{param}.content"), f"{param}.content")
        else:
            self.assistant(expect_list(content, f"{param}.content"), f"{param}.content")

    def user(self, blocks: list[Any], param: str) -> None:
        parts: list[JSONObject] = []
        for index, block in enumerate(blocks):
            where = f"{param}[{index}]"
            block = expect_dict(block, where)
            if block.get("type") == "tool_result":
                parts.extend(self.tool_result(block, where))
            else:
                parts.append(self.part(block, where))
        if parts:
            self.messages.append({"role": "user", "content": parts})

    def part(self, block: JSONObject, param: str) -> JSONObject:
        kind = block.get("type")
        if kind == "text":
            return {"type": "text", "text": expect_str(block.get("text"), f"{param}.text")}
        if kind == "image":
            return self.image(expect_dict(block.get("source"), f"{param}.source"), param)
        if kind == "document":
            return self.document(block, param)
        if isinstance(kind, str):
            self.refusals.append(_unsupported(f"A content block of type {kind!r}", param))
            return {"type": "text", "text": ""}
        raise invalid(f"{param}.type", "expected a string")

    def image(self, source: JSONObject, param: str) -> JSONObject:
        kind = source.get("type")
        if kind == "base64":
            media = expect_str(source.get("media_type"), f"{param}.source.media_type")
            data = expect_str(source.get("data"), f"{param}.source.data")
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
        if kind == "url":
            url = expect_str(source.get("url"), f"{param}.source.url")
            return {"type": "image_url", "image_url": {"url": url}}
        self.refusals.append(_unsupported(f"An image source of type {kind!r}", f"{param}.source"))
        return {"type": "image_url", "image_url": {"url": ""}}

    def document(self, block: JSONObject, param: str) -> JSONObject:
        source = expect_dict(block.get("source"), f"{param}.source")
        kind = source.get("type")
        if kind == "base64":
            media = expect_str(source.get("media_type"), f"{param}.source.media_type")
            data = expect_str(source.get("data"), f"{param}.source.data")
            title = block.get("title")
            file: JSONObject = {"file_data": f"data:{media};base64,{data}"}
            file["filename"] = title if isinstance(title, str) and title else "document.pdf"
            return {"type": "file", "file": file}
        if kind == "text":
            return {"type": "text", "text": expect_str(source.get("data"), f"{param}.source.data")}
        if kind == "content":
            text = _texts(source.get("content"), f"{param}.source.content")
            return {"type": "text", "text": text}
        self.refusals.append(_unsupported(f"A document source of type {kind!r}", f"{param}.source"))
        return {"type": "file", "file": {"file_id": ""}}

    def tool_result(self, block: JSONObject, param: str) -> list[JSONObject]:
        """Appends the `tool` message; returns what a tool message cannot hold."""
        call_id = expect_str(block.get("tool_use_id"), f"{param}.tool_use_id")
        content = block.get("content", "")
        texts, attachments = [], []
        if isinstance(content, str):
            texts.append(content)
        else:
            for index, item in enumerate(expect_list(content, f"{param}.content")):
                item = expect_dict(item, f"{param}.content[{index}]")
                part = self.part(item, f"{param}.content[{index}]")
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    attachments.append(part)
        text = "\n".join(texts)
        if block.get("is_error"):
            text = f"Error: {text}"
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        return attachments

    def assistant(self, blocks: list[Any], param: str) -> None:
        texts: list[str] = []
        calls: list[JSONObject] = []
        for index, block in enumerate(blocks):
            where = f"{param}[{index}]"
            block = expect_dict(block, where)
            kind = block.get("type")
            if kind == "text":
                texts.append(expect_str(block.get("text"), f"{where}.text"))
            elif kind == "tool_use":
                tool_input = block.get("input", {})
                calls.append(
                    {
                        "id": expect_str(block.get("id"), f"{where}.id"),
                        "type": "function",
                        "function": {
                            "name": expect_str(block.get("name"), f"{where}.name"),
                            "arguments": orjson.dumps(tool_input).decode(),
                        },
                    }
                )
            elif kind in ("thinking", "redacted_thinking"):
                continue
            elif isinstance(kind, str):
                self.refusals.append(_unsupported(f"A content block of type {kind!r}", where))
            else:
                raise invalid(f"{where}.type", "expected a string")
        message: JSONObject = {"role": "assistant", "content": "".join(texts) or None}
        if calls:
            message["tool_calls"] = calls
        elif message["content"] is None:
            message["content"] = ""
        self.messages.append(message)

    def tools(self, tools: Any) -> list[JSONObject]:
        converted = []
        for index, tool in enumerate(expect_list(tools, "tools")):
            tool = expect_dict(tool, f"tools[{index}]")
            kind = tool.get("type")
            if kind not in (None, "custom"):
                self.refusals.append(_unsupported(f"The server tool {kind!r}", f"tools[{index}]"))
                converted.append(tool)
                continue
            function: JSONObject = {
                "name": expect_str(tool.get("name"), f"tools[{index}].name"),
                "parameters": expect_dict(tool.get("input_schema"), f"tools[{index}].input_schema"),
            }
            for name in ("description", "strict"):
                if tool.get(name) is not None:
                    function[name] = tool[name]
            converted.append({"type": "function", "function": function})
        return converted


def _tool_choice(choice: Any, chat: JSONObject) -> None:
    choice = expect_dict(choice, "tool_choice")
    kind = choice.get("type")
    if kind == "tool":
        name = expect_str(choice.get("name"), "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif kind in _TOOL_CHOICES:
        chat["tool_choice"] = _TOOL_CHOICES[kind]
    else:
        raise invalid("tool_choice.type", "expected 'auto', 'any', 'tool' or 'none'")
    if choice.get("disable_parallel_tool_use"):
        chat["parallel_tool_calls"] = False


def _output_config(config: Any, chat: JSONObject) -> None:
    config = expect_dict(config, "output_config")
    output_format = config.get("format")
    if output_format is not None:
        output_format = expect_dict(output_format, "output_config.format")
        if output_format.get("type") != "json_schema":
            raise invalid("output_config.format.type", "expected 'json_schema'")
        schema = expect_dict(output_format.get("schema"), "output_config.format.schema")
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }
    if config.get("effort") is not None:
        chat["reasoning_effort"] = config["effort"]


def messages_to_chat(body: JSONObject) -> ChatRequest:
    """A Messages request as a chat request; raises InvalidRequest naming the malformed
    parameter, and returns what only a native backend can do in `ChatRequest.unsupported`."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens", "the Messages API requires a positive integer")
    translation = _Translation()
    if body.get("system") is not None:
        system = _texts(body["system"], "system")
        translation.messages.append({"role": "system", "content": system})
    messages = expect_list(body.get("messages"), "messages")
    if not messages:
        raise invalid("messages", "expected a non-empty list of messages")
    for index, message in enumerate(messages):
        translation.message(message, f"messages[{index}]")
    chat: JSONObject = {
        "model": body.get("model"),
        "messages": translation.messages,
        "max_tokens": max_tokens,
    }
    if body.get("tools"):
        chat["tools"] = translation.tools(body["tools"])
    if body.get("tool_choice") is not None and "tools" in chat:
        _tool_choice(body["tool_choice"], chat)
    if body.get("stop_sequences"):
        stops = expect_list(body["stop_sequences"], "stop_sequences")
        chat["stop"] = [expect_str(stop, f"stop_sequences[{i}]") for i, stop in enumerate(stops)]
    for name in _PASSED:
        if body.get(name) is not None:
            chat[name] = body[name]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    if body.get("output_config") is not None:
        _output_config(body["output_config"], chat)
    for name in ("container", "mcp_servers"):
        if body.get(name):
            translation.refusals.append(_unsupported(f"'{name}'", name))
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return ChatRequest(chat, tuple(translation.refusals))


def thinking_enabled(body: JSONObject) -> bool:
    """Whether the client asked to see the model's reasoning as thinking blocks."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
