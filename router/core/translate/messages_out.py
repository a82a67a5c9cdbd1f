"""A chat completion as an Anthropic Message.

Content: the backend's reasoning as a thinking block (only when the request enabled
thinking), its text (a refusal is text too), and each tool call as a tool_use block whose
`input` is the parsed arguments: arguments that are not a JSON object cannot be a tool_use,
so they are a 502, like any reply the router cannot read. Stop reasons: `stop` is
`end_turn`, or `stop_sequence` when the backend says which sequence matched (vLLM's
`stop_reason`); `length` is `max_tokens`; tool calls are `tool_use`; `content_filter` is
`refusal`.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.core.model import Usage
from router.core.translate.chat import read_completion
from router.core.translate.messages_in import thinking_enabled
from router.core.translate.usage import messages_usage
from router.errors import UpstreamFailed
from router.types import JSONObject

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(
    request: JSONObject, finish_reason: str | None, matched: Any, tool_calls: bool
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a chat finish reason."""
    if tool_calls and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use", None
    reason = _STOP_REASONS.get(finish_reason or "stop", "end_turn")
    sequences = request.get("stop_sequences")
    if reason == "end_turn" and isinstance(sequences, list) and matched in sequences:
        return "stop_sequence", str(matched)
    return reason, None


def tool_input(arguments: str, name: str) -> JSONObject:
    """Tool-call arguments as a tool_use `input`; empty arguments are an empty object."""
    if not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamFailed(
            f"The backend called the tool {name!r} with arguments that are not a JSON object; "
            "they cannot be given as a tool_use input. Retry the request."
        )
    return parsed


def message_envelope(message_id: str, model: str) -> JSONObject:
    """A Message with no content and no stop reason yet, as `message_start` carries it."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def chat_to_message(
    completion: Any, request: JSONObject, *, message_id: str, usage: Usage | None = None
) -> JSONObject:
    """A chat completion as the Message answering `request`; `usage` is the router's own
    count, used when the backend reported none. Raises UpstreamFailed on an unreadable reply."""
    reply = read_completion(completion, f"toolu_{message_id.removeprefix('msg_')}_")
    content: list[JSONObject] = []
    if reply.reasoning and thinking_enabled(request):
        content.append({"type": "thinking", "thinking": reply.reasoning, "signature": ""})
    text = reply.text + reply.refusal
    if text:
        content.append({"type": "text", "text": text})
    for call in reply.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.call_id,
                "name": call.name,
                "input": tool_input(call.arguments, call.name),
            }
        )
    message = message_envelope(message_id, reply.model or str(request.get("model") or ""))
    message["content"] = content
    reason, sequence = stop_reason(
        request, reply.finish_reason, reply.stop_reason, bool(reply.tool_calls)
    )
    message["stop_reason"] = reason
    message["stop_sequence"] = sequence
    final_usage = reply.usage or usage or Usage(prompt_tokens=0, completion_tokens=0)
    message["usage"] = messages_usage(final_usage)
    return message
