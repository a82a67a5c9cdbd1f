"""Watch a chat stream go by: pick out the usage, keep what was generated (to count tokens
when the upstream reports none), and drop the usage-only chunk the client never asked for.
"""

from __future__ import annotations

import orjson

from router.core.model import Usage

_DATA = b"data:"
_DONE = b"[DONE]"


def usage_from(payload: object) -> Usage | None:
    """OpenAI's `usage` object as a Usage, or None when absent or malformed."""
    if not isinstance(payload, dict):
        return None
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=max(prompt, 0),
        completion_tokens=max(completion, 0),
        cached_tokens=cached if isinstance(cached, int) and cached > 0 else 0,
    )


def generated_text(payload: object) -> str:
    """Content and tool-call arguments of one completion or chunk, for counting tokens."""
    if not isinstance(payload, dict):
        return ""
    parts: list[str] = []
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("delta") or choice.get("message") or {}
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                parts.append(function["arguments"])
    return "".join(parts)


class StreamMeter:
    __slots__ = ("_strip_usage", "_text", "done", "identity", "usage")

    def __init__(self, strip_usage_chunk: bool) -> None:
        self._strip_usage = strip_usage_chunk
        self._text: list[str] = []
        self.usage: Usage | None = None
        self.done = False
        self.identity: dict[str, object] = {}
        """`id`, `created` and `model` of the stream's chunks, to write a chunk of our own."""

    def observe(self, event: bytes) -> bytes | None:
        """The bytes to forward for this event, or None to drop it."""
        for line in event.split(b"\n"):
            if not line.startswith(_DATA):
                continue
            data = line[len(_DATA) :].strip()
            if data == _DONE:
                self.done = True
                continue
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not self.identity and isinstance(payload, dict):
                self.identity = {k: payload[k] for k in ("id", "created", "model") if k in payload}
            usage = usage_from(payload)
            if usage is not None:
                self.usage = usage
                if self._strip_usage and not payload.get("choices"):
                    return None
            text = generated_text(payload)
            if text:
                self._text.append(text)
        return event

    @property
    def text(self) -> str:
        return "".join(self._text)

    def usage_event(self, usage: Usage) -> bytes:
        """A usage-only chunk, as OpenAI sends it last when `include_usage` is set."""
        chunk = {
            **self.identity,
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            },
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
