"""Chat chunks in, Anthropic stream events out: the event sequence, each event through the
anthropic SDK's types and its own stream accumulator, and exactly-once start and stop."""

from __future__ import annotations

from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import ErrorResponse, RawMessageStreamEvent
from pydantic import TypeAdapter

from router.core.model import Usage
from router.core.translate import MessagesStream, chat_to_message
from router.errors import BudgetExceeded, UpstreamTimeout
from tests.unit.chat_fixtures import MODEL, Call, Reply, chunks, completion, usage_object

EVENT = TypeAdapter(RawMessageStreamEvent)
REQUEST = {
    "model": "auto",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Hi"}],
    "stream": True,
}


def _run(reply: Reply, request: dict[str, Any] = REQUEST) -> list[dict[str, Any]]:
    machine = MessagesStream(request, message_id="msg_s1", input_tokens=21)
    events = [event for chunk in chunks(reply) for event in machine.feed(chunk)]
    return events + machine.finish()


def _accumulate(events: list[dict[str, Any]]) -> Any:
    """The Message the anthropic SDK builds from the events (it parses each one first)."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        if event["type"] == "ping":
            continue
        parsed = EVENT.validate_python(event)
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def test_text_stream_event_sequence() -> None:
    events = _run(Reply(text=["Sun", "ny."]))
    assert _types(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]["message"]
    assert (start["id"], start["model"], start["usage"]) == (
        "msg_s1",
        MODEL,
        {"input_tokens": 21, "output_tokens": 0},
    )
    assert events[3]["delta"] == {"type": "text_delta", "text": "Sun"}
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"]["input_tokens"] == 25 and events[-2]["usage"]["output_tokens"] == 7
    message = _accumulate(events)
    assert message.content[0].text == "Sunny." and message.usage.input_tokens == 25


def test_tool_calls_stream_as_input_json_deltas() -> None:
    reply = Reply(
        text=["Checking."],
        calls=[
            Call("call_a", "weather", ['{"city":', '"Paris"}']),
            Call("call_b", "weather", ['{"city":"Rome"}']),
        ],
        finish="tool_calls",
    )
    events = _run(reply)
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [(e["index"], e["content_block"]["type"]) for e in starts] == [
        (0, "text"),
        (1, "tool_use"),
        (2, "tool_use"),
    ]
    assert starts[1]["content_block"] == {
        "type": "tool_use",
        "id": "call_a",
        "name": "weather",
        "input": {},
    }
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert stops == [0, 1, 2]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    message = _accumulate(events)
    assert [(block.type, getattr(block, "input", None)) for block in message.content] == [
        ("text", None),
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"city": "Rome"}),
    ]


def test_stream_and_whole_reply_give_the_same_message() -> None:
    request = REQUEST | {
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stop_sequences": ["END"],
    }
    reply = Reply(
        reasoning=["Hmm", "."],
        text=["Let me ", "check."],
        calls=[Call("call_a", "weather", ['{"city":', '"Paris"}'])],
        finish="tool_calls",
        usage=usage_object(prompt=50, completion=20, cached=10),
    )
    streamed = _accumulate(_run(reply, request)).to_dict()
    whole = chat_to_message(completion(reply), request, message_id="msg_s1")
    assert streamed["content"] == whole["content"]
    assert streamed["usage"] == whole["usage"]
    assert (streamed["stop_reason"], streamed["stop_sequence"]) == (
        whole["stop_reason"],
        whole["stop_sequence"],
    )


def test_thinking_only_when_enabled() -> None:
    reply = Reply(reasoning=["Hmm."], text=["Hi"])
    assert [
        e["content_block"]["type"] for e in _run(reply) if e["type"] == "content_block_start"
    ] == ["text"]
    enabled = REQUEST | {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    events = _run(reply, enabled)
    assert events[2]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[3]["delta"] == {"type": "thinking_delta", "thinking": "Hmm."}
    assert _accumulate(events).content[0].thinking == "Hmm."


def test_stop_sequence_and_max_tokens() -> None:
    request = REQUEST | {"stop_sequences": ["END"]}
    assert _run(Reply(text=["Hi"], stop_reason="END"), request)[-2]["delta"] == {
        "stop_reason": "stop_sequence",
        "stop_sequence": "END",
    }
    assert _run(Reply(text=["Hi"], finish="length"))[-2]["delta"]["stop_reason"] == "max_tokens"


def test_a_cut_stream_ends_with_one_error_event() -> None:
    machine = MessagesStream(REQUEST, message_id="msg_s1")
    stream = chunks(Reply(text=["Half", " a sentence"]))
    events = [event for chunk in stream[:2] for event in machine.feed(chunk)]
    events += machine.finish(
        error=UpstreamTimeout("The backend stopped sending; retry the request.")
    )
    assert _types(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "error",
    ]
    assert events[-1] == {
        "type": "error",
        "error": {
            "type": "timeout_error",
            "message": "The backend stopped sending; retry the request.",
        },
    }
    ErrorResponse.model_validate(events[-1])
    assert machine.finish() == [] and machine.feed(stream[2]) == []


def test_a_stream_that_never_started_starts_and_fails_exactly_once() -> None:
    machine = MessagesStream(REQUEST, message_id="msg_s1")
    events = machine.finish(error=BudgetExceeded("The key's daily budget is spent."))
    assert _types(events) == ["message_start", "ping", "error"]
    assert events[-1]["error"]["type"] == "rate_limit_error"
    assert machine.finish(error=BudgetExceeded("again")) == []


def test_router_usage_fills_in_when_the_upstream_reports_none() -> None:
    machine = MessagesStream(REQUEST, message_id="msg_s1", input_tokens=21)
    for chunk in chunks(Reply(text=["Hi"], usage=None)):
        machine.feed(chunk)
    events = machine.finish(usage=Usage(prompt_tokens=19, completion_tokens=3, counted=True))
    assert events[-2]["usage"]["input_tokens"] == 19 and events[-2]["usage"]["output_tokens"] == 3
    silent = MessagesStream(REQUEST, message_id="msg_s2", input_tokens=21)
    assert silent.finish()[-2]["usage"] == {
        "input_tokens": 21,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_tool_ids_missing_upstream_are_generated() -> None:
    machine = MessagesStream(REQUEST, message_id="msg_s1")
    events = machine.feed(
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f"}}]}}
            ]
        }
    )
    assert events[-1]["content_block"]["id"] == "toolu_s1_0"


def test_generated_text_includes_unrendered_reasoning_for_counting() -> None:
    machine = MessagesStream(REQUEST, message_id="msg_s1")
    for chunk in chunks(
        Reply(reasoning=["Hmm. "], text=["Hi"], calls=[Call("c", "f", ['{"a":1}'])], usage=None)
    ):
        machine.feed(chunk)
    assert machine.generated_text() == 'Hmm. Hi{"a":1}'
    assert machine.usage is None
