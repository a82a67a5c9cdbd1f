"""Round trips keep text, tool calls and usage, for any reply and any way a stream splits it.

A chat reply becomes a Response (or a Message), whole and streamed; the SDK's own stream
accumulator must rebuild the whole one; and sent back as the next turn's history, it must
become the same chat assistant message again.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from router.core.model import Usage
from router.core.translate import (
    MessagesStream,
    ResponsesStream,
    chat_to_message,
    chat_to_response,
    items_to_store,
    messages_to_chat,
    messages_usage,
    responses_to_chat,
    responses_usage,
    usage_from_chat,
    usage_from_messages,
    usage_from_responses,
)
from tests.unit.chat_fixtures import Call, Reply, chunks, completion, usage_object

RESPONSE_EVENT = TypeAdapter(ResponseStreamEvent)
MESSAGE_EVENT = TypeAdapter(RawMessageStreamEvent)
SETTINGS = settings(max_examples=60, deadline=None)

pieces = st.lists(st.text(min_size=1, max_size=12), max_size=4)
SAFE_INTEGER = 2**53 - 1
"""I-JSON's range (RFC 7493): beyond it, JSON parsers (orjson, the SDKs' jiter) differ."""
json_values = st.one_of(
    st.integers(-SAFE_INTEGER, SAFE_INTEGER), st.text(max_size=8), st.booleans(), st.none()
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


@st.composite
def calls(draw: st.DrawFn) -> list[Call]:
    found = []
    for index in range(draw(st.integers(0, 3))):
        arguments = json.dumps(draw(st.dictionaries(names, json_values, max_size=3)))
        cuts = sorted(draw(st.lists(st.integers(0, len(arguments)), max_size=3)))
        bounds = [0, *cuts, len(arguments)]
        split = [arguments[a:b] for a, b in pairwise(bounds) if b > a]
        found.append(Call(f"call_{index}", draw(names), split))
    return found


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    prompt = draw(st.integers(0, 2_000_000))
    completion_tokens = draw(st.integers(0, 200_000))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        cached_tokens=draw(st.integers(0, prompt)),
        reasoning_tokens=draw(st.integers(0, completion_tokens)),
    )


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    tool_calls = draw(calls())
    usage = draw(usages())
    finish = "tool_calls" if tool_calls else draw(st.sampled_from(["stop", "length"]))
    return Reply(
        text=draw(pieces),
        calls=tool_calls,
        reasoning=draw(pieces),
        finish=finish,
        usage=usage_object(
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.reasoning_tokens,
        ),
    )


RESPONSES_REQUEST = {"model": "auto", "input": "Go.", "stream": True}
MESSAGES_REQUEST = {
    "model": "auto",
    "max_tokens": 512,
    "messages": [{"role": "user", "content": "Go."}],
    "thinking": {"type": "enabled", "budget_tokens": 256},
}


def _chat_message(reply: Reply) -> dict[str, Any]:
    """The assistant turn a chat client would send back for this reply."""
    text = "".join(reply.text)
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.calls
        ]
    elif not text:
        message["content"] = ""
    return message


@SETTINGS
@given(replies())
def test_responses_round_trip(reply: Reply) -> None:
    whole = chat_to_response(
        completion(reply), RESPONSES_REQUEST, response_id="resp_p", created_at=1
    )
    machine = ResponsesStream(
        RESPONSES_REQUEST, response_id="resp_p", created_at=1, clock=lambda: 1
    )
    events = [event for chunk in chunks(reply) for event in machine.feed(chunk)] + machine.finish()
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(RESPONSE_EVENT.validate_python(event))
    streamed = events[-1]["response"]
    assert streamed == whole

    assert usage_from_responses(whole.get("usage")) == usage_from_chat(reply.usage)
    next_turn = responses_to_chat(
        {"model": "auto", "input": "And?"}, items_to_store(RESPONSES_REQUEST, whole)
    )
    said = [_chat_message(reply)] if reply.text or reply.calls else []
    assert next_turn.for_chat_backend()["messages"] == [
        {"role": "user", "content": "Go."},
        *said,
        {"role": "user", "content": "And?"},
    ]


@SETTINGS
@given(replies())
def test_messages_round_trip(reply: Reply) -> None:
    whole = chat_to_message(completion(reply), MESSAGES_REQUEST, message_id="msg_p")
    machine = MessagesStream(MESSAGES_REQUEST, message_id="msg_p")
    events = [event for chunk in chunks(reply) for event in machine.feed(chunk)] + machine.finish()
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        if event["type"] != "ping":
            parsed = MESSAGE_EVENT.validate_python(event)
            snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    streamed = snapshot.to_dict(exclude_none=True)
    assert streamed["content"] == whole["content"]
    assert (streamed["stop_reason"], streamed["usage"]) == (whole["stop_reason"], whole["usage"])

    assert usage_from_messages(whole["usage"]) == usage_from_chat(reply.usage)
    follow_up = {
        **MESSAGES_REQUEST,
        "messages": [
            *MESSAGES_REQUEST["messages"],
            {"role": "assistant", "content": whole["content"]},
            {"role": "user", "content": "And?"},
        ],
    }
    sent_back = messages_to_chat(follow_up).for_chat_backend()["messages"][1]
    expected = _chat_message(reply)
    for call in expected.get("tool_calls", ()):
        call["function"]["arguments"] = json.dumps(
            json.loads(call["function"]["arguments"] or "{}"), separators=(",", ":")
        )
    for call in sent_back.get("tool_calls", ()):
        call["function"]["arguments"] = json.dumps(
            json.loads(call["function"]["arguments"]), separators=(",", ":")
        )
    assert sent_back == expected


@given(usages())
def test_usage_round_trips_through_every_shape(usage: Usage) -> None:
    assert usage_from_responses(responses_usage(usage)) == usage
    assert usage_from_messages(messages_usage(usage)) == usage


def _delta_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


chunk_steps = st.one_of(
    pieces.map(lambda p: _delta_chunk({"content": "".join(p)})),
    pieces.map(lambda p: _delta_chunk({"reasoning_content": "".join(p)})),
    pieces.map(lambda p: _delta_chunk({"refusal": "".join(p)})),
    st.tuples(st.integers(0, 2), names).map(
        lambda t: _delta_chunk(
            {"tool_calls": [{"index": t[0], "id": f"c{t[0]}", "function": {"name": t[1]}}]}
        )
    ),
    st.tuples(st.integers(0, 2), st.text(max_size=6)).map(
        lambda t: _delta_chunk({"tool_calls": [{"index": t[0], "function": {"arguments": t[1]}}]})
    ),
    st.sampled_from(["stop", "length", "tool_calls"]).map(lambda f: _delta_chunk({}, f)),
    st.just({"choices": [], "usage": usage_object(10, 5)}),
    st.sampled_from(
        [None, "garbage", {}, {"choices": "x"}, {"choices": [7]}, {"choices": [{"delta": 3}]}]
    ),
)


@SETTINGS
@given(st.lists(chunk_steps, max_size=12), st.booleans())
def test_any_chunk_sequence_starts_and_stops_exactly_once(steps: list[Any], cut: bool) -> None:
    from router.errors import UpstreamTimeout

    error = UpstreamTimeout("cut") if cut else None
    responses = ResponsesStream(
        RESPONSES_REQUEST, response_id="resp_f", created_at=1, clock=lambda: 1
    )
    messages = MessagesStream(MESSAGES_REQUEST, message_id="msg_f")
    out_r = [event for step in steps for event in responses.feed(step)] + responses.finish(
        error=error
    )
    out_m = [event for step in steps for event in messages.feed(step)] + messages.finish(
        error=error
    )
    assert responses.finish() == [] and messages.finish() == []

    kinds = [event["type"] for event in out_r]
    terminal = {"response.completed", "response.incomplete", "response.failed"}
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in terminal and sum(kind in terminal for kind in kinds) == 1
    assert (kinds[-1] == "response.failed") == (cut or "earlier tool call" in str(out_r[-1]))
    assert [event["sequence_number"] for event in out_r] == list(range(len(out_r)))
    added = [e["output_index"] for e in out_r if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in out_r if e["type"] == "response.output_item.done"]
    assert added == done == list(range(len(added)))
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in out_r:
        state.handle_event(RESPONSE_EVENT.validate_python(event))

    kinds = [event["type"] for event in out_m]
    assert kinds[:2] == ["message_start", "ping"]
    assert kinds[-1] in ("message_stop", "error") and kinds.count("message_start") == 1
    assert kinds.count("message_stop") + kinds.count("error") == 1
    starts = [e["index"] for e in out_m if e["type"] == "content_block_start"]
    stops = [e["index"] for e in out_m if e["type"] == "content_block_stop"]
    assert starts == stops == list(range(len(starts)))
    for event in out_m:
        if event["type"] not in ("ping", "error"):
            MESSAGE_EVENT.validate_python(event)
