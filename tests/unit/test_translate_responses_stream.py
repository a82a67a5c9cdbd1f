"""Chat chunks in, Responses stream events out: the event sequence, each event against
OpenAI's spec, the openai SDK's own stream accumulator, and exactly-once start and stop."""

from __future__ import annotations

from typing import Any

import pytest
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response
from pydantic import TypeAdapter

from router.core.model import Usage
from router.core.translate import ResponsesStream, chat_to_response
from router.errors import UpstreamFailed, UpstreamTimeout
from tests.unit import openai_spec
from tests.unit.chat_fixtures import MODEL, Call, Reply, chunks, completion, usage_object

REQUEST = {"model": "auto", "input": "Weather?", "stream": True}


def _machine(request: dict[str, Any] = REQUEST) -> ResponsesStream:
    return ResponsesStream(
        request, response_id="resp_s1", created_at=1_700_000_000, clock=lambda: 1_700_000_009
    )


def _run(reply: Reply, request: dict[str, Any] = REQUEST) -> list[dict[str, Any]]:
    machine = _machine(request)
    events = [event for chunk in chunks(reply) for event in machine.feed(chunk)]
    return events + machine.finish()


def _check(events: list[dict[str, Any]]) -> Response:
    """Every event valid per the spec, numbered in order, and the SDK's accumulator agrees."""
    for event in events:
        openai_spec.assert_valid_event(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    from openai.types.responses import ResponseStreamEvent

    parse = TypeAdapter(ResponseStreamEvent).validate_python
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(parse(event))
    final = events[-1]["response"]
    return Response.model_validate(final)


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def test_text_stream_event_sequence() -> None:
    events = _run(Reply(text=["Sun", "ny."]))
    assert _types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == [
        "Sun",
        "ny.",
    ]
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["model"] == MODEL
    )
    response = _check(events)
    assert response.output_text == "Sunny."
    assert response.status == "completed" and response.completed_at == 1_700_000_009
    assert events[-1]["response"]["usage"]["total_tokens"] == 32


def test_tool_calls_stream_their_arguments() -> None:
    reply = Reply(
        text=["Checking."],
        calls=[
            Call("call_a", "weather", ['{"city":', '"Paris"}']),
            Call("call_b", "weather", ['{"city":"Rome"}']),
        ],
        finish="tool_calls",
    )
    events = _run(
        reply,
        {
            **REQUEST,
            "tools": [{"type": "function", "name": "weather", "parameters": {}, "strict": False}],
        },
    )
    calls = [e for e in events if e["type"].startswith("response.function_call_arguments")]
    assert [(e["type"].rsplit(".", 1)[1], e["output_index"]) for e in calls] == [
        ("delta", 1),
        ("delta", 1),
        ("done", 1),
        ("delta", 2),
        ("done", 2),
    ]
    assert calls[2]["arguments"] == '{"city":"Paris"}' and calls[2]["name"] == "weather"
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert [(item["type"], item["id"]) for item in added] == [
        ("message", "msg_s1_0"),
        ("function_call", "fc_s1_1"),
        ("function_call", "fc_s1_2"),
    ]
    response = _check(events)
    assert [(c.call_id, c.arguments) for c in response.output if c.type == "function_call"] == [
        ("call_a", '{"city":"Paris"}'),
        ("call_b", '{"city":"Rome"}'),
    ]


def test_reasoning_streams_as_a_reasoning_item() -> None:
    events = _run(Reply(reasoning=["Think", "ing."], text=["Done."]))
    assert _types(events)[2:8] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
    ]
    response = _check(events)
    assert response.output[0].type == "reasoning" and response.output_text == "Done."


def test_stream_and_whole_reply_give_the_same_response() -> None:
    reply = Reply(
        reasoning=["Hmm."],
        text=["Let me ", "check."],
        calls=[Call("call_a", "weather", ['{"city":', '"Paris"}'])],
        finish="tool_calls",
        usage=usage_object(prompt=50, completion=20, cached=10, reasoning=5),
    )
    streamed = _run(reply)[-1]["response"]
    whole = chat_to_response(
        completion(reply), REQUEST, response_id="resp_s1", created_at=1_700_000_000
    )
    for response in (streamed, whole):
        response.pop("completed_at")
    assert streamed == whole


def test_length_finish_is_incomplete() -> None:
    events = _run(Reply(text=["Once upon"], finish="length"))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete"
    _check(events)


def test_a_cut_stream_fails_once_and_closes_what_it_opened() -> None:
    machine = _machine()
    stream = chunks(Reply(text=["Half", " a sentence"]))
    events = [event for chunk in stream[:2] for event in machine.feed(chunk)]
    error = UpstreamTimeout("The backend stopped sending; retry the request.")
    events += machine.finish(error=error)
    assert _types(events)[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": error.message}
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == "Half"
    for event in events:
        openai_spec.assert_valid_event(event)
    assert machine.finished and machine.error is error
    assert machine.finish() == [] and machine.finish(error=error) == []
    assert machine.feed(stream[2]) == []


def test_a_stream_that_never_started_still_starts_and_fails_exactly_once() -> None:
    machine = _machine()
    events = machine.finish(error=UpstreamFailed("The backend closed the connection."))
    assert _types(events) == ["response.created", "response.in_progress", "response.failed"]
    for event in events:
        openai_spec.assert_valid_event(event)


def test_an_empty_stream_completes_with_no_output() -> None:
    machine = _machine()
    events = machine.feed({"model": MODEL, "choices": []}) + machine.finish()
    assert _types(events) == ["response.created", "response.in_progress", "response.completed"]
    assert events[-1]["response"]["output"] == []
    _check(events)


def test_router_usage_is_used_only_when_the_upstream_reports_none() -> None:
    counted = Usage(prompt_tokens=11, completion_tokens=4, counted=True)
    silent = _machine()
    for chunk in chunks(Reply(text=["Hi"], usage=None)):
        silent.feed(chunk)
    final = silent.finish(usage=counted)[-1]
    assert final["response"]["usage"]["total_tokens"] == 15
    openai_spec.assert_valid_event(final)
    reporting = _machine()
    for chunk in chunks(Reply(text=["Hi"])):
        reporting.feed(chunk)
    assert reporting.usage == Usage(prompt_tokens=25, completion_tokens=7)
    assert reporting.finish(usage=counted)[-1]["response"]["usage"]["total_tokens"] == 32


def test_an_interleaved_tool_call_fragment_fails_the_stream() -> None:
    machine = _machine()
    fragments = [
        {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}},
        {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}},
        {"index": 0, "function": {"arguments": "}"}},
    ]
    events = []
    for fragment in fragments:
        events += machine.feed({"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})
    assert events[-1]["type"] == "response.failed"
    assert "earlier tool call" in events[-1]["response"]["error"]["message"]
    assert machine.finished and isinstance(machine.error, UpstreamFailed)
    assert machine.finish() == []
    for event in events:
        openai_spec.assert_valid_event(event)


def test_calls_without_index_or_id_still_assemble() -> None:
    machine = _machine()
    events = []
    for fragment in (
        {"function": {"name": "f", "arguments": '{"a":'}},
        {"function": {"arguments": "1}"}},
    ):
        events += machine.feed({"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})
    events += machine.finish()
    item = events[-1]["response"]["output"][0]
    assert (item["name"], item["arguments"], item["call_id"]) == ("f", '{"a":1}', "call_s1_0")
    _check(events)


@pytest.mark.parametrize("pieces", [["Hi"], ["a", "b", "c"]])
def test_refusal_streams_as_a_refusal_part(pieces: list[str]) -> None:
    machine = _machine()
    events = machine.feed({"model": MODEL, "choices": []})
    for piece in pieces:
        events += machine.feed({"choices": [{"index": 0, "delta": {"refusal": piece}}]})
    events += machine.finish()
    assert "response.refusal.done" in _types(events)
    part = events[-1]["response"]["output"][0]["content"][0]
    assert part == {"type": "refusal", "refusal": "".join(pieces)}
    _check(events)
