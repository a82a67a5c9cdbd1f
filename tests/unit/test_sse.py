"""SSE framing and stream metering: events survive any chunking; usage and text are seen."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.backends.sse import SSEFramer
from router.server.stream_meter import StreamMeter, usage_from

EVENTS = [
    b'data: {"choices":[{"delta":{"content":"hel"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
]


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_framer_reassembles_events_however_chunked(cuts):
    stream = b"".join(EVENTS)
    framer = SSEFramer()
    out: list[bytes] = []
    position = 0
    for size in cuts:
        out.extend(framer.feed(stream[position : position + size]))
        position += size
    out.extend(framer.feed(stream[position:]))
    assert out == EVENTS
    assert framer.pending == b""


def test_framer_normalises_crlf_and_keeps_a_cut_event_pending():
    framer = SSEFramer()
    assert framer.feed(b"data: 1\r\n\r\ndata: 2") == [b"data: 1\n\n"]
    assert framer.pending == b"data: 2"


def _chunk(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    payload = {
        "id": "chatcmpl-7f3a",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "mini-upstream",
        "choices": [choice],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


UPSTREAM_STREAM = [
    b": ping\n\n",
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "The quarter"}),
    _chunk({"content": " closed under budget."}),
    _chunk({}, finish_reason="stop"),
    b'data: {"id":"chatcmpl-7f3a","object":"chat.completion.chunk","created":1735689600,'
    b'"model":"mini-upstream","choices":[],'
    b'"usage":{"prompt_tokens":21,"completion_tokens":6,"total_tokens":27}}\n\n',
    b"data: [DONE]\n\n",
]
"""A stream as vLLM sends it when asked for usage: a keep-alive, the role, the text, the
chunk with `finish_reason`, the usage-only chunk, then `[DONE]`."""
WHOLE_EVENTS = [event for event in UPSTREAM_STREAM if not event.startswith(b":")]


def _relayed(reads: list[bytes]) -> list[bytes]:
    """What a client that did not ask for usage receives when the upstream's bytes arrive
    in `reads`: framed, then metered (the usage-only chunk is dropped)."""
    framer = SSEFramer()
    meter = StreamMeter(strip_usage_chunk=True)
    out = []
    for read in reads:
        for event in framer.feed(read):
            if event.startswith(b":"):
                continue
            forwarded = meter.observe(event)
            if forwarded is not None:
                out.append(forwarded)
    assert framer.pending == b""
    assert meter.done and meter.usage is not None and meter.usage.completion_tokens == 6
    return out


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_every_split_of_a_real_stream_relays_the_final_chunk(line_end: bytes) -> None:
    stream = b"".join(UPSTREAM_STREAM).replace(b"\n", line_end)
    expected = [event for event in WHOLE_EVENTS if b'"usage"' not in event]
    assert any(b'"finish_reason":"stop"' in event for event in expected)
    for offset in range(len(stream) + 1):
        reads = [stream[:offset], stream[offset:]]
        assert _relayed(reads) == expected, f"split at byte {offset}"
    assert _relayed([stream[i : i + 1] for i in range(len(stream))]) == expected


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_every_split_yields_the_same_events(line_end: bytes) -> None:
    stream = b"".join(UPSTREAM_STREAM).replace(b"\n", line_end)
    for offset in range(len(stream) + 1):
        framer = SSEFramer()
        events = framer.feed(stream[:offset]) + framer.feed(stream[offset:])
        assert events == UPSTREAM_STREAM, f"split at byte {offset}"


def test_a_crlf_split_across_reads_is_one_line_end() -> None:
    framer = SSEFramer()
    assert framer.feed(b"data: 1\r\n\r") == [b"data: 1\n\n"]
    assert framer.feed(b"\ndata: 2\r") == []
    assert framer.feed(b"") == []
    assert framer.feed(b"\n\r\n") == [b"data: 2\n\n"]


def test_meter_strips_usage_chunk_it_added_and_keeps_usage():
    meter = StreamMeter(strip_usage_chunk=True)
    forwarded = [meter.observe(event) for event in EVENTS]
    assert forwarded[2] is None
    assert forwarded[0] == EVENTS[0] and forwarded[3] == EVENTS[3]
    assert meter.usage is not None and meter.usage.completion_tokens == 2
    assert meter.text == "hello" and meter.done


def test_meter_keeps_usage_chunk_the_client_asked_for():
    meter = StreamMeter(strip_usage_chunk=False)
    assert [meter.observe(event) for event in EVENTS] == EVENTS


def test_usage_on_a_chunk_with_choices_is_never_dropped():
    event = b"data: " + orjson.dumps(
        {
            "choices": [{"delta": {"content": "x"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
    )
    meter = StreamMeter(strip_usage_chunk=True)
    assert meter.observe(event + b"\n\n") is not None
    assert meter.usage is not None


def test_usage_from_reads_cached_tokens_and_rejects_junk():
    usage = usage_from(
        {
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 4},
            }
        }
    )
    assert usage is not None and usage.cached_tokens == 4
    assert usage_from({"usage": {"prompt_tokens": "10"}}) is None
    assert usage_from({"usage": None}) is None
