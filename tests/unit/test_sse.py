"""SSE framing and stream metering: events survive any chunking; usage and text are seen."""

from __future__ import annotations

import orjson
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
