"""Request -> Features: what a chat completion asks for, read off the JSON body alone.

Nothing is downloaded or decoded: an image, audio clip or file counts as a fixed (or
length-proportional) number of tokens, documented below, and text is bounded by byte counts
so the tokenizer only runs when a decision needs the exact number.

Prompt tokens are defined as OpenAI's cookbook counts them: every text (message content, a
sender's name, tool-call names and arguments, tool definitions as compact JSON) tokenized on
its own, plus 4 tokens per message (3 framing tokens and the role), 1 per `name`, and 3 that
prime the reply.

Real-time audio: the chat API has no session mode, so a request counts as real-time audio
when it asks for audio output *and* streams it; a backend without real-time audio can still
return audio whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from router.core.model import Features, Modality, PromptSize
from router.core.tokens import TokenCounter
from router.errors import InvalidRequest

MESSAGE_TOKENS = 4
NAME_TOKENS = 1
REPLY_TOKENS = 3
IMAGE_TOKENS = 1445
"""An image at `detail` high or auto: OpenAI's largest tile count (85 + 8 x 170)."""
IMAGE_LOW_TOKENS = 85
AUDIO_B64_CHARS_PER_TOKEN = 2000
"""About 10 tokens a second for 128 kbit/s MP3; more for WAV, so generous for the rest."""
FILE_TOKENS = 256
"""A file known only by id, and the floor for inline files."""
FILE_B64_CHARS_PER_TOKEN = 24

PREFER_HEADER = "x-router-prefer"
_PREFERENCES = frozenset({"cost", "quality", "latency"})
_TEXT = frozenset({Modality.TEXT})
_OUTPUTS = {"text": Modality.TEXT, "audio": Modality.AUDIO}
_TOOL_CHOICES = frozenset({"none", "auto", "required"})
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})


def _invalid(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid '{param}': {what}.", param=param, code="invalid_request_body")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


class _Prompt:
    """Collects prompt texts and the tokens that need no tokenizer."""

    __slots__ = ("fixed", "modalities", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.fixed = REPLY_TOKENS
        self.modalities: set[Modality] = set()

    def text(self, value: Any, param: str) -> None:
        self.string(value, param)
        self.modalities.add(Modality.TEXT)

    def string(self, value: Any, param: str) -> None:
        """Text the model reads that is not content: names, tool calls."""
        if not isinstance(value, str):
            raise _invalid(param, "expected a string")
        self.texts.append(value)

    def part(self, part: Any, param: str) -> None:
        if not isinstance(part, dict):
            raise _invalid(param, "expected a content part object")
        kind = part.get("type")
        if kind in ("text", "input_text"):
            self.text(part.get("text"), f"{param}.text")
        elif kind == "refusal":
            self.text(part.get("refusal"), f"{param}.refusal")
        elif kind in ("image_url", "input_image"):
            self.image(part, param)
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
                raise _invalid(f"{param}.input_audio", "expected an object with 'data'")
            self.fixed += _ceil_div(len(audio["data"]), AUDIO_B64_CHARS_PER_TOKEN)
            self.modalities.add(Modality.AUDIO)
        elif kind in ("file", "input_file"):
            file = part.get("file", part)
            data = file.get("file_data") if isinstance(file, dict) else None
            self.fixed += (
                max(FILE_TOKENS, _ceil_div(len(data), FILE_B64_CHARS_PER_TOKEN))
                if isinstance(data, str)
                else FILE_TOKENS
            )
            self.modalities.add(Modality.FILE)
        else:
            raise _invalid(f"{param}.type", f"unknown content part type {kind!r}")

    def image(self, part: dict[str, Any], param: str) -> None:
        image = part.get("image_url")
        if isinstance(image, dict):
            url, detail = image.get("url"), image.get("detail")
        else:
            url, detail = image, part.get("detail")
        if not isinstance(url, str) and part.get("file_id") is None:
            raise _invalid(f"{param}.image_url", "expected a URL or an object with 'url'")
        self.fixed += IMAGE_LOW_TOKENS if detail == "low" else IMAGE_TOKENS
        self.modalities.add(Modality.IMAGE)

    def message(self, message: Any, param: str) -> None:
        if not isinstance(message, dict):
            raise _invalid(param, "expected a message object")
        if not isinstance(message.get("role"), str):
            raise _invalid(f"{param}.role", "expected a string")
        self.fixed += MESSAGE_TOKENS
        content = message.get("content")
        if isinstance(content, str):
            self.text(content, f"{param}.content")
        elif isinstance(content, list):
            for index, part in enumerate(content):
                self.part(part, f"{param}.content[{index}]")
        elif content is not None:
            raise _invalid(f"{param}.content", "expected a string or a list of content parts")
        name = message.get("name")
        if name is not None:
            self.string(name, f"{param}.name")
            self.fixed += NAME_TOKENS
        calls = message.get("tool_calls")
        if calls is not None:
            self.tool_calls(calls, f"{param}.tool_calls")

    def tool_calls(self, calls: Any, param: str) -> None:
        if not isinstance(calls, list):
            raise _invalid(param, "expected a list")
        for index, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                raise _invalid(f"{param}[{index}].function", "expected an object")
            self.string(function.get("name", ""), f"{param}[{index}].function.name")
            self.string(function.get("arguments", ""), f"{param}[{index}].function.arguments")

    def size(self, counter: TokenCounter) -> PromptSize:
        texts, fixed = self.texts, self.fixed
        lower, upper = counter.bounds(texts)
        return PromptSize(
            fixed + lower,
            fixed + upper,
            lambda: fixed + counter.count_texts(texts),
            lambda limit: fixed + counter.word_bound(texts, limit - fixed),
        )


def _int_param(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _invalid(name, "expected a positive integer")
    return value


def _bool_param(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(name, "expected true or false")
    return value


def _tools(body: Mapping[str, Any], prompt: _Prompt) -> tuple[int, bool]:
    """(function-style tools, image generation requested); their JSON counts as prompt."""
    tools = body.get("tools")
    if tools is None:
        return 0, False
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise _invalid("tools", "expected a list of tool objects")
    if not tools:
        return 0, False
    prompt.texts.append(orjson.dumps(tools).decode())
    image_tools = sum(1 for tool in tools if tool.get("type") == "image_generation")
    return len(tools) - image_tools, image_tools > 0


def _tool_choice(body: Mapping[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if choice is None or (isinstance(choice, str) and choice in _TOOL_CHOICES):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("type"), str):
        return str(choice["type"])
    raise _invalid("tool_choice", "expected 'none', 'auto', 'required' or a tool object")


def _response_format(body: Mapping[str, Any]) -> str | None:
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind not in _RESPONSE_FORMATS:
        raise _invalid("response_format", "expected type 'text', 'json_object' or 'json_schema'")
    return str(kind)


def _outputs(body: Mapping[str, Any]) -> frozenset[Modality]:
    requested = body.get("modalities")
    audio = body.get("audio") is not None
    if requested is None:
        return frozenset({Modality.TEXT, Modality.AUDIO}) if audio else _TEXT
    if not isinstance(requested, list) or not all(
        isinstance(item, str) and item in _OUTPUTS for item in requested
    ):
        raise _invalid("modalities", "expected a list of 'text' and 'audio'")
    outputs = {_OUTPUTS[item] for item in requested}
    if audio:
        outputs.add(Modality.AUDIO)
    return frozenset(outputs) or _TEXT


def inspect(body: Mapping[str, Any], headers: Mapping[str, str], counter: TokenCounter) -> Features:
    """Read a chat completion request; raise InvalidRequest naming the malformed param."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "expected a non-empty list of messages")
    prompt = _Prompt()
    for index, message in enumerate(messages):
        prompt.message(message, f"messages[{index}]")
    tools, image_generation = _tools(body, prompt)
    outputs = _outputs(body)
    if image_generation:
        outputs |= {Modality.IMAGE}
    stream = _bool_param(body, "stream")
    response_format = _response_format(body)
    max_completion_tokens = _int_param(body, "max_completion_tokens")
    max_tokens = _int_param(body, "max_tokens")
    prefer = headers.get(PREFER_HEADER, "").strip().lower()
    return Features(
        input_modalities=frozenset(prompt.modalities),
        output_modalities=outputs,
        prompt=prompt.size(counter),
        max_output_tokens=max_tokens if max_completion_tokens is None else max_completion_tokens,
        tools=tools,
        tool_choice=_tool_choice(body),
        json_schema=response_format == "json_schema",
        json_object=response_format == "json_object",
        stream=stream,
        image_generation=image_generation,
        realtime_audio=stream and Modality.AUDIO in outputs,
        prefer=prefer if prefer in _PREFERENCES else None,
        message_count=len(messages),
    )
