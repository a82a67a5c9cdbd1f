"""A chat completion as an OpenAI Response object, and the pieces a streamed Response shares.

Output items: the backend's reasoning (`reasoning_content`) as a reasoning item, its text
and its refusal each as an assistant message, each tool call as a function_call item, in the
order a stream of the same reply gives them. The status
follows the finish reason: `length` and `content_filter` make an incomplete Response, with
the reason in `incomplete_details`. Item ids derive from the Response id, so a translation is
a pure function of its inputs. The Response echoes the request's settings, as OpenAI's does.
"""

from __future__ import annotations

from typing import Any

from router.core.model import Usage
from router.core.translate.chat import Reply, read_completion
from router.core.translate.responses_in import input_items
from router.core.translate.usage import responses_usage
from router.types import JSONObject

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_PREFIXES = {"reasoning": "rs", "text": "msg", "refusal": "msg", "tool": "fc"}


def item_id(response_id: str, kind: str, position: int) -> str:
    """`msg_<response>_<n>`, `fc_...`, `rs_...`: unique within and across Responses."""
    return f"{_PREFIXES[kind]}_{response_id.removeprefix('resp_')}_{position}"


def outcome(finish_reason: str | None) -> tuple[str, JSONObject | None]:
    """(status, incomplete_details) for a chat finish reason."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return ("completed", None) if reason is None else ("incomplete", {"reason": reason})


def text_part(text: str) -> JSONObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(refusal: str) -> JSONObject:
    return {"type": "refusal", "refusal": refusal}


def message_item(identifier: str, parts: list[JSONObject], status: str) -> JSONObject:
    return {
        "type": "message",
        "id": identifier,
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def reasoning_item(identifier: str, text: str | None, status: str) -> JSONObject:
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {
        "type": "reasoning",
        "id": identifier,
        "summary": [],
        "content": content,
        "status": status,
    }


def function_call_item(
    identifier: str, call_id: str, name: str, arguments: str, status: str
) -> JSONObject:
    return {
        "type": "function_call",
        "id": identifier,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _echo_tools(tools: Any) -> list[JSONObject]:
    """Function tools as a Response lists them: `parameters` and `strict` always present."""
    echoed = []
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "function":
            tool = {"parameters": None, "strict": None, **tool}
        echoed.append(tool)
    return echoed


def _text_config(request: JSONObject) -> JSONObject:
    text = request.get("text")
    config: JSONObject = {"format": {"type": "text"}}
    if isinstance(text, dict):
        config.update((key, value) for key, value in text.items() if value is not None)
    return config


def _setting(request: JSONObject, name: str, default: Any) -> Any:
    value = request.get(name)
    return default if value is None else value


def response_envelope(
    request: JSONObject, *, response_id: str, created_at: float, model: str
) -> JSONObject:
    """A Response in progress, with no output yet: the request's settings echoed."""
    reasoning = request.get("reasoning")
    envelope: JSONObject = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": _setting(request, "parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": reasoning if isinstance(reasoning, dict) else None,
        "store": _setting(request, "store", True),
        "temperature": _setting(request, "temperature", 1.0),
        "text": _text_config(request),
        "tool_choice": _setting(request, "tool_choice", "auto"),
        "tools": _echo_tools(request.get("tools")),
        "top_p": _setting(request, "top_p", 1.0),
        "truncation": _setting(request, "truncation", "disabled"),
        "metadata": _setting(request, "metadata", {}),
    }
    if isinstance(request.get("user"), str):
        envelope["user"] = request["user"]
    return envelope


def _output(reply: Reply, response_id: str, cut: bool) -> list[JSONObject]:
    """The items, all completed but the last when the reply was cut short."""
    output: list[JSONObject] = []
    if reply.reasoning:
        identifier = item_id(response_id, "reasoning", len(output))
        output.append(reasoning_item(identifier, reply.reasoning, "completed"))
    for part in (
        text_part(reply.text) if reply.text else None,
        refusal_part(reply.refusal) if reply.refusal else None,
    ):
        if part is not None:
            identifier = item_id(response_id, "text", len(output))
            output.append(message_item(identifier, [part], "completed"))
    for call in reply.tool_calls:
        identifier = item_id(response_id, "tool", len(output))
        output.append(
            function_call_item(identifier, call.call_id, call.name, call.arguments, "completed")
        )
    if cut and output:
        output[-1]["status"] = "incomplete"
    return output


def chat_to_response(
    completion: Any,
    request: JSONObject,
    *,
    response_id: str,
    created_at: float,
    completed_at: float | None = None,
    usage: Usage | None = None,
) -> JSONObject:
    """A chat completion as the Response to `request`; `usage` is the router's own count,
    used when the backend reported none. Raises UpstreamFailed if it has no choice."""
    reply = read_completion(completion, f"call_{response_id.removeprefix('resp_')}_")
    status, incomplete = outcome(reply.finish_reason)
    response = response_envelope(
        request,
        response_id=response_id,
        created_at=created_at,
        model=reply.model or str(request.get("model") or ""),
    )
    response["status"] = status
    response["incomplete_details"] = incomplete
    if status == "completed":
        response["completed_at"] = created_at if completed_at is None else completed_at
    response["output"] = _output(reply, response_id, incomplete is not None)
    final_usage = reply.usage or usage
    if final_usage is not None:
        response["usage"] = responses_usage(final_usage)
    return response


def items_to_store(request: JSONObject, response: JSONObject) -> list[JSONObject]:
    """One turn as `previous_response_id` needs it later: its input items, then its output."""
    return [*input_items(request), *response.get("output", ())]
