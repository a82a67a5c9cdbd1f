"""Micro-benchmark of API translation: the CPU a Responses or Messages request adds over the
same request sent as a chat completion.

Run `python -m bench.micro_translate`. Each line is the median of many timed calls
(time.perf_counter_ns). Per API it times a typical request translated to chat, a typical
completion translated back, and a 50-chunk stream (each chunk decoded, fed to the state
machine, its events encoded as SSE) against the chat relay's own work on the same stream.
The added CPU is stated against the router's CPU per chat request from the full benchmark
(bench/run.sh; README: 0.343 ms JSON, 0.433 ms SSE for a 10-event stream, at 32
connections, on a quiet machine), with the chat relay's work on 40 more events added for the
stream. A busy machine slows every figure measured here but not that quiet baseline, so
the shares are upper bounds there; the first line (the pure core, 7.9 µs when quiet) shows
how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.micro_core import PRINCIPAL, SHIPPED, SNAPSHOT, _body, _engine, _report, median_ns
from router.core.inspect import inspect
from router.core.tokens import TokenCounter
from router.core.translate import (
    MessagesStream,
    ResponsesStream,
    chat_to_message,
    chat_to_response,
    encode_events,
    messages_to_chat,
    responses_to_chat,
)
from router.server.stream_meter import StreamMeter

WORDS = ("The quarterly figures show a modest rise in costs across every region, " * 4).split()
TEXT = " ".join(WORDS)
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city"],
}
QUESTION = "Summarise the attached meeting notes in three bullet points, then check the weather."

RESPONSES_REQUEST: dict[str, Any] = {
    "model": "auto",
    "instructions": "You are a helpful assistant. Answer briefly.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"},
    ],
    "tools": [
        {"type": "function", "name": "weather", "parameters": SCHEMA, "strict": False},
        {"type": "function", "name": "calendar", "parameters": SCHEMA, "strict": False},
    ],
    "max_output_tokens": 512,
    "temperature": 0.2,
}
MESSAGES_REQUEST: dict[str, Any] = {
    "model": "auto",
    "max_tokens": 512,
    "system": "You are a helpful assistant. Answer briefly.",
    "messages": [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21 C"}
            ],
        },
    ],
    "tools": [
        {"name": "weather", "input_schema": SCHEMA},
        {"name": "calendar", "input_schema": SCHEMA},
    ],
    "temperature": 0.2,
}
USAGE = {"prompt_tokens": 180, "completion_tokens": 48, "total_tokens": 228}
COMPLETION_PAYLOAD: dict[str, Any] = orjson.loads(
    orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": TEXT},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )
)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _stream() -> list[bytes]:
    """50 SSE data payloads: a role chunk, 47 words, the finish reason, the usage."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": " " + word}) for word in WORDS[:47]]
    chunks.append(_chunk({}, "stop"))
    chunks.append({**_chunk({}), "choices": [], "usage": USAGE})
    return [orjson.dumps(chunk) for chunk in chunks]


STREAM = _stream()
SSE_EVENTS = [b"data: " + payload + b"\n\n" for payload in STREAM]


def responses_json() -> None:
    """What a Responses request adds on the JSON path: both translations, the body encoded.
    The chat path decodes the request and the completion too, so neither is counted."""
    responses_to_chat(RESPONSES_REQUEST).for_chat_backend()
    orjson.dumps(
        chat_to_response(
            COMPLETION_PAYLOAD, RESPONSES_REQUEST, response_id="resp_1", created_at=1.0
        )
    )


def messages_json() -> None:
    messages_to_chat(MESSAGES_REQUEST).for_chat_backend()
    orjson.dumps(chat_to_message(COMPLETION_PAYLOAD, MESSAGES_REQUEST, message_id="msg_1"))


def responses_stream() -> None:
    """A translated relay: each chunk decoded, fed, its events encoded. The machine keeps the
    usage and the generated text, so it replaces the chat relay's StreamMeter."""
    machine = ResponsesStream(RESPONSES_REQUEST, response_id="resp_1", created_at=1.0)
    for payload in STREAM:
        encode_events(machine.feed(orjson.loads(payload)))
    encode_events(machine.finish())


def messages_stream() -> None:
    machine = MessagesStream(MESSAGES_REQUEST, message_id="msg_1")
    for payload in STREAM:
        encode_events(machine.feed(orjson.loads(payload)))
    encode_events(machine.finish())


def chat_relay() -> None:
    """What the chat relay does per streamed event: the meter decodes and reads each one."""
    meter = StreamMeter(strip_usage_chunk=False)
    for event in SSE_EVENTS:
        meter.observe(event)


def interleaved_medians(calls: tuple[Callable[[], object], ...], runs: int) -> list[float]:
    """Medians of calls timed in turn, so a machine busy with other work slows each alike."""
    samples: list[list[int]] = [[] for _ in calls]
    for _ in range(runs):
        for call, timings in zip(calls, samples, strict=True):
            start = time.perf_counter_ns()
            call()
            timings.append(time.perf_counter_ns() - start)
    return [statistics.median(timings) for timings in samples]


def _calibrate(runs: int) -> None:
    """The pure core's short-prompt inspection and decision, 7.9 µs on a quiet machine."""
    engine, counter = _engine(SHIPPED), TokenCounter()
    body = _body("Summarise the attached meeting notes in three bullet points.")
    now = median_ns(lambda: engine.decide(inspect(body, {}, counter), PRINCIPAL, SNAPSHOT), runs)
    _report("how busy: short prompt inspect + decide (quiet: 7.9 µs)", now)


def _share(label: str, added_ns: float, baseline_us: float) -> None:
    added = added_ns / 1000
    print(f"{label:<58}{added:7.1f} µs  {100 * added / baseline_us:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--chat-json-us", type=float, default=343.0)
    parser.add_argument("--chat-sse-us", type=float, default=433.0)
    parser.add_argument("--runs", type=int, default=5_000)
    args = parser.parse_args()
    runs = args.runs
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    _calibrate(runs)

    singles = {
        "Responses request -> chat": lambda: responses_to_chat(RESPONSES_REQUEST),
        "chat completion -> Response": lambda: chat_to_response(
            COMPLETION_PAYLOAD, RESPONSES_REQUEST, response_id="resp_1", created_at=1.0
        ),
        "Messages request -> chat": lambda: messages_to_chat(MESSAGES_REQUEST),
        "chat completion -> Message": lambda: chat_to_message(
            COMPLETION_PAYLOAD, MESSAGES_REQUEST, message_id="msg_1"
        ),
    }
    for label, call in singles.items():
        _report(label, median_ns(call, runs))
    chat_body = responses_to_chat(RESPONSES_REQUEST).body
    counter = TokenCounter()
    _report(
        "inspect (routing features) of the translated body",
        median_ns(lambda: inspect(chat_body, {}, counter), runs),
    )
    relay, responses_relay, messages_relay = interleaved_medians(
        (chat_relay, responses_stream, messages_stream), runs // 5
    )
    translated = {"Responses": responses_relay, "Messages": messages_relay}
    _report("chat relay, 50 events (StreamMeter)", relay)
    for api, cost in translated.items():
        _report(f"{api} relay, 50 chunks (decode, state machine, encode)", cost)

    sse = args.chat_sse_us + 40 * relay / 50 / 1000
    print(
        f"\nadded CPU per request, against the chat path's own "
        f"{args.chat_json_us:.0f} µs (JSON) and {sse:.0f} µs (SSE: {args.chat_sse_us:.0f} µs "
        "for 10 events, plus 40 more):"
    )
    _share(
        "Responses JSON: both translations, body encoded",
        median_ns(responses_json, runs),
        args.chat_json_us,
    )
    _share(
        "Messages JSON: both translations, body encoded",
        median_ns(messages_json, runs),
        args.chat_json_us,
    )
    requests = {"Responses": responses_to_chat, "Messages": messages_to_chat}
    bodies = {"Responses": RESPONSES_REQUEST, "Messages": MESSAGES_REQUEST}
    for api, cost in translated.items():
        translate, body = requests[api], bodies[api]
        request = median_ns(lambda translate=translate, body=body: translate(body), runs)
        _share(f"{api} SSE, 50 chunks: request + relay - chat relay", request + cost - relay, sse)
        _share(f"{api} SSE, 50 chunks, StreamMeter kept as well", request + cost, sse)


if __name__ == "__main__":
    main()
