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
json_values = st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.none())
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
