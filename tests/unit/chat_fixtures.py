"""Chat completions and chunk streams as OpenAI-compatible servers send them, for the
translation tests: a reply is text, reasoning and tool calls, and a finish reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MODEL = "mini-8b"


@dataclass
class Call:
    call_id: str
    name: str
    pieces: Sequence[str]
    """The arguments as the stream splits them; joined in a whole completion."""

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)


@dataclass
class Reply:
    text: Sequence[str] = ()
    calls: Sequence[Call] = ()
    reasoning: Sequence[str] = ()
    finish: str | None = "stop"
    usage: dict[str, Any] | None = field(
        default_factory=lambda: usage_object(prompt=25, completion=7)
    )
    stop_reason: Any = None


def usage_object(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def completion(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.text) or None}
    if reply.reasoning:
        message["reasoning_content"] = "".join(reply.reasoning)
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.calls
        ]
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": reply.finish}
    if reply.stop_reason is not None:
        choice["stop_reason"] = reply.stop_reason
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [choice],
    }
    if reply.usage is not None:
        body["usage"] = reply.usage
    return body


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [choice],
    }


def chunks(reply: Reply) -> list[dict[str, Any]]:
    """The stream of `reply`: a role chunk, reasoning, text, tool calls (name first, then
    argument pieces), the finish reason, and usage in a last chunk with no choices."""
    stream = [_chunk({"role": "assistant", "content": ""})]
    stream += [_chunk({"reasoning_content": piece}) for piece in reply.reasoning]
    stream += [_chunk({"content": piece}) for piece in reply.text]
    for index, call in enumerate(reply.calls):
        head = {"index": index, "id": call.call_id, "type": "function"}
        stream.append(_chunk({"tool_calls": [{**head, "function": {"name": call.name}}]}))
        for piece in call.pieces:
            fragment = {"index": index, "function": {"arguments": piece}}
            stream.append(_chunk({"tool_calls": [fragment]}))
    extra = {} if reply.stop_reason is None else {"stop_reason": reply.stop_reason}
    stream.append(_chunk({}, reply.finish, **extra))
    if reply.usage is not None:
        last = _chunk({})
        last["choices"] = []
        last["usage"] = reply.usage
        stream.append(last)
    return stream
