"""Tests of the fake OpenAI-compatible upstream fixture (tests/fake_upstream.py).

The fake is what the router's resilience and charging tests stand on, so each knob is
checked here against the official ``openai`` SDK (what real clients do) and against raw
HTTP (for the byte-level behaviours the SDK hides: SSE framing, cut streams, garbage).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import aiohttp
import httpx
import openai
import pytest

from tests.fake_upstream import (
    DEFAULT_REPLY_WORDS,
    MESSAGE_OVERHEAD_TOKENS,
    Behaviour,
    FakeUpstream,
    count_prompt_tokens,
    default_reply,
    fake_upstream_process,
    running_fake_upstream,
    split_reply,
)

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is the capital of France"},
]
# 2 + 6 words, plus the per-message overhead for 2 messages.
MESSAGES_PROMPT_TOKENS = 8 + 2 * MESSAGE_OVERHEAD_TOKENS
CHAT = {"model": "m", "messages": MESSAGES}


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    yield from running_fake_upstream()


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


def sse_events(body: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [
        line[len("data: ") :] for line in body.decode().split("\n") if line.startswith("data: ")
    ]


def raw_stream(fake: FakeUpstream, **extra: Any) -> tuple[list[dict[str, Any]], bool]:
    """POST a streaming request with httpx; return (parsed chunks, saw [DONE])."""
    resp = httpx.post(f"{fake.base_url}/chat/completions", json={**CHAT, "stream": True, **extra})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.content)
    done = bool(events) and events[-1] == "[DONE]"
    return [json.loads(e) for e in events if e != "[DONE]"], done


# ----------------------------------------------------------------------------- basics


def test_lifecycle_and_plain_endpoints() -> None:
    with FakeUpstream(model="mini", models=["full"]) as fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
        assert fake.port > 0
        assert httpx.get(f"{fake.root_url}/health").json() == {"status": "ok"}
        models = httpx.get(f"{fake.base_url}/models").json()
        assert models["object"] == "list"
        assert [m["id"] for m in models["data"]] == ["mini", "full"]
        fake.configure(health_status=503)
        assert httpx.get(f"{fake.root_url}/health").status_code == 503
        missing = httpx.get(f"{fake.base_url}/nope")
        assert missing.status_code == 404
        assert "message" in missing.json()["error"]
        assert [r.path for r in fake.other_requests] == [
            "/health",
            "/v1/models",
            "/health",
            "/v1/nope",
        ]
        assert fake.call_count == 0  # only chat completions count as calls
    assert not fake.running
    fake.stop()  # idempotent


def test_non_stream_reply_usage_and_record(fake: FakeUpstream, client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.object == "chat.completion"
    assert resp.model == "m"
    assert resp.choices[0].message.content == default_reply(DEFAULT_REPLY_WORDS)
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == MESSAGES_PROMPT_TOKENS
    assert resp.usage.completion_tokens == DEFAULT_REPLY_WORDS
    assert resp.usage.total_tokens == MESSAGES_PROMPT_TOKENS + DEFAULT_REPLY_WORDS

    rec = fake.last_request
    assert rec is not None
    assert (rec.path, rec.method, rec.status, rec.outcome) == (
        "/v1/chat/completions",
        "POST",
        200,
        "ok",
    )
    assert rec.finished and not rec.stream
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert rec.body["messages"] == MESSAGES and rec.model == "m"
    assert rec.usage == {
        "prompt_tokens": MESSAGES_PROMPT_TOKENS,
        "completion_tokens": DEFAULT_REPLY_WORDS,
        "total_tokens": MESSAGES_PROMPT_TOKENS + DEFAULT_REPLY_WORDS,
    }
    assert (rec.prompt_tokens, rec.completion_tokens) == (
        MESSAGES_PROMPT_TOKENS,
        DEFAULT_REPLY_WORDS,
    )
    assert rec.content == resp.choices[0].message.content
    assert fake.call_count == 1
    assert json.loads(json.dumps(rec.to_dict()))["usage"] == rec.usage


def test_prompt_token_counting_rules() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "  two   words "},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "three more words"},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                    {"type": "text", "text": "one"},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": []},
        ]
    }
    assert count_prompt_tokens(body) == (2 + 4 + 0) + 3 * MESSAGE_OVERHEAD_TOKENS
    assert count_prompt_tokens({}) == 0
    assert "".join(split_reply("a  b c ")) == "a  b c "
    assert len(split_reply("a  b c ")) == 3


def test_reply_cached_tokens_model_and_custom_counter(
    fake: FakeUpstream, client: openai.OpenAI
) -> None:
    fake.configure(
        reply="Hello, dear world!",
        cached_tokens=5,
        response_model="served-model",
        prompt_tokens_fn=lambda body: 100,
    )
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "Hello, dear world!"
    assert resp.model == "served-model"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 100
    assert resp.usage.completion_tokens == 3
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 5
    rec = fake.last_request
    assert rec is not None and rec.cached_tokens == 5
    assert rec.usage is not None and rec.usage["prompt_tokens_details"] == {"cached_tokens": 5}


def test_max_tokens_truncates_with_length(fake: FakeUpstream, client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=3)
    assert resp.choices[0].finish_reason == "length"
    assert resp.choices[0].message.content == default_reply(3)
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    fake.configure(finish_reason="content_filter")
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].finish_reason == "content_filter"


def test_invalid_body_is_400(fake: FakeUpstream) -> None:
    resp = httpx.post(f"{fake.base_url}/chat/completions", content=b"{nope")
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    rec = fake.last_request
    assert rec is not None and rec.body is None and rec.raw_body == b"{nope"
    assert rec.outcome == "error"


def test_constructor_knobs_reset_and_clear(fake: FakeUpstream) -> None:
    with FakeUpstream(behaviour=Behaviour(reply_words=2), latency_ms=1) as f:
        assert f.behaviour.reply_words == 2 and f.behaviour.latency_ms == 1
        f.configure(reply_words=9)
        f.reset()
        assert f.behaviour.reply_words == 2
    with pytest.raises(TypeError, match="no_such_knob"):
        fake.configure(no_such_knob=1)
    with pytest.raises(ValueError):
        fake.fail(503, fraction=2)
    httpx.post(f"{fake.base_url}/chat/completions", json=CHAT)
    assert fake.call_count == 1
    fake.clear()
    assert fake.call_count == 0 and fake.last_request is None and fake.requests == []
    with pytest.raises(TimeoutError):
        fake.wait_for_requests(1, timeout=0.05)


# ----------------------------------------------------------------------------- streaming


def test_stream_without_include_usage_sends_no_usage(fake: FakeUpstream) -> None:
    chunks, done = raw_stream(fake)
    assert done
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all({"id", "created", "model", "choices"} <= c.keys() for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert len(content) == DEFAULT_REPLY_WORDS
    assert "".join(content) == default_reply()
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    rec = fake.last_request
    assert rec is not None and rec.stream and not rec.include_usage
    assert rec.usage is None  # nothing reported ...
    assert (rec.prompt_tokens, rec.completion_tokens) == (
        MESSAGES_PROMPT_TOKENS,
        DEFAULT_REPLY_WORDS,  # ... but the true counts are recorded
    )
    assert rec.chunks_sent == DEFAULT_REPLY_WORDS


async def test_stream_include_usage_async_sdk(fake: FakeUpstream) -> None:
    fake.configure(reply_words=5, cached_tokens=2)
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == (
        default_reply(5)
    )
    *body, last = chunks
    assert all(ch.usage is None for ch in body)
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        MESSAGES_PROMPT_TOKENS,
        5,
    )
    rec = fake.last_request
    assert rec is not None and rec.include_usage
    assert rec.usage == last.usage.model_dump(exclude_none=True)


def test_stream_raw_sse_with_usage_has_null_usage_then_usage_chunk(fake: FakeUpstream) -> None:
    chunks, done = raw_stream(fake, stream_options={"include_usage": True})
    assert done
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == DEFAULT_REPLY_WORDS


def test_stream_quirks(fake: FakeUpstream) -> None:
    # llama.cpp-style: include_usage ignored.
    fake.configure(ignore_include_usage=True)
    chunks, done = raw_stream(fake, stream_options={"include_usage": True})
    assert done and all(c.get("usage") is None for c in chunks)
    assert fake.last_request is not None and fake.last_request.usage is None

    # Usage on the finish chunk, finish on the last content chunk, no [DONE].
    fake.reset()
    fake.configure(usage_in_final_chunk=True, omit_done=True, reply_words=3)
    chunks, done = raw_stream(fake, stream_options={"include_usage": True})
    assert not done
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert all("usage" not in c for c in chunks[:-1])

    fake.reset()
    fake.configure(finish_in_last_content_chunk=True, always_stream_usage=True, reply_words=3)
    chunks, done = raw_stream(fake)
    assert done
    assert chunks[-2]["choices"][0]["delta"]["content"] == " charlie"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3

    fake.reset()
    fake.configure(omit_usage=True)
    chunks, done = raw_stream(fake, stream_options={"include_usage": True})
    assert done and all(c.get("usage") is None for c in chunks)


def test_stream_chunk_count_and_delay(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.configure(reply_words=20, chunk_delay_ms=5)
    start = time.monotonic()
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    pieces = [ch.choices[0].delta.content for ch in stream if ch.choices[0].delta.content]
    assert len(pieces) == 20
    assert time.monotonic() - start >= 20 * 0.005
    rec = fake.last_request
    assert rec is not None and rec.chunks_sent == 20 and rec.completion_tokens == 20


def test_stream_cut_midway(fake: FakeUpstream) -> None:
    fake.configure(cut_after_chunks=3)
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", f"{fake.base_url}/chat/completions", json={**CHAT, "stream": True}
        ) as resp,
    ):
        assert resp.status_code == 200
        for part in resp.iter_bytes():
            received += part
    events = sse_events(received)
    assert "[DONE]" not in events
    assert len(events) == 1 + 3  # role chunk + 3 content chunks
    fake.wait_for_requests(1, finished=True)
    rec = fake.last_request
    assert rec is not None
    assert (rec.outcome, rec.chunks_sent, rec.completion_tokens, rec.usage) == ("cut", 3, 3, None)


def test_stream_cut_via_sdk_raises(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.configure(cut_after_chunks=1)
    got: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for ch in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            got.append(ch.choices[0].delta.content or "")
    assert "".join(got) == "alpha"


async def test_non_stream_cut_aiohttp(fake: FakeUpstream) -> None:
    fake.configure(cut_after_chunks=0)
    url = f"{fake.base_url}/chat/completions"
    async with aiohttp.ClientSession() as session, session.post(url, json=CHAT) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (529, openai.InternalServerError),
    ],
)
def test_retryable_failures_next_n_calls(
    fake: FakeUpstream, client: openai.OpenAI, status: int, exc: type[Exception]
) -> None:
    fake.fail(status, times=2, retry_after=2)
    for _ in range(2):
        with pytest.raises(exc) as info:
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert isinstance(info.value, openai.APIStatusError)
        assert info.value.status_code == status
        assert info.value.response.headers["retry-after"] == "2"
        body = info.value.response.json()
        assert set(body["error"]) == {"message", "type", "param", "code"}
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert [r.status for r in fake.requests] == [status, status, 200]
    assert [r.outcome for r in fake.requests] == ["error", "error", "ok"]
    assert fake.requests[0].usage is None and fake.requests[0].prompt_tokens is None
    assert fake.behaviour.fail_times == 0


def test_sdk_retries_honour_retry_after(fake: FakeUpstream) -> None:
    fake.fail(429, times=2, retry_after=0.01)
    with openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=2) as c:
        resp = c.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == default_reply()
    assert fake.call_count == 3


@pytest.mark.parametrize(
    ("status", "exc", "code"),
    [
        (400, openai.BadRequestError, None),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (404, openai.NotFoundError, "model_not_found"),
    ],
)
def test_non_retryable_errors(
    fake: FakeUpstream, client: openai.OpenAI, status: int, exc: type[Exception], code: str | None
) -> None:
    fake.fail(status)
    for _ in range(3):  # "always"
        with pytest.raises(exc) as info:
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert isinstance(info.value, openai.APIStatusError)
        assert "retry-after" not in info.value.response.headers
        assert info.value.code == code
        assert info.value.type == "invalid_request_error"
    fake.succeed()
    client.chat.completions.create(model="m", messages=MESSAGES)


def test_custom_error_text(fake: FakeUpstream) -> None:
    fake.fail(529, message="busy", error_type="overloaded_error", code="x", retry_after=None)
    resp = httpx.post(f"{fake.base_url}/chat/completions", json=CHAT)
    assert resp.status_code == 529 and "retry-after" not in resp.headers
    assert resp.json() == {
        "error": {"message": "busy", "type": "overloaded_error", "param": None, "code": "x"},
    }


@pytest.mark.parametrize(
    ("fraction", "pattern"),
    [
        (0.5, [True, False] * 3),
        (Fraction(1, 3), [True, False, False] * 2),
        ("2/3", [True, True, False] * 2),
        (1, [True] * 6),
        (0, [False] * 6),
    ],
)
def test_failure_fraction_is_deterministic(
    fake: FakeUpstream, fraction: float | Fraction | str, pattern: list[bool]
) -> None:
    fake.fail(503, fraction=fraction)
    statuses = [
        httpx.post(f"{fake.base_url}/chat/completions", json=CHAT).status_code for _ in pattern
    ]
    assert statuses == [503 if failed else 200 for failed in pattern]


def test_fraction_and_times_combine(fake: FakeUpstream) -> None:
    fake.fail(500, fraction=0.5, times=2)
    statuses = [
        httpx.post(f"{fake.base_url}/chat/completions", json=CHAT).status_code for _ in range(6)
    ]
    assert statuses == [500, 200, 500, 200, 200, 200]


def test_api_key_required() -> None:
    with FakeUpstream(api_key="right") as fake:
        with (
            openai.OpenAI(base_url=fake.base_url, api_key="wrong", max_retries=0) as c,
            pytest.raises(openai.AuthenticationError),
        ):
            c.chat.completions.create(model="m", messages=MESSAGES)
        with openai.OpenAI(base_url=fake.base_url, api_key="right", max_retries=0) as c:
            c.chat.completions.create(model="m", messages=MESSAGES)


# ----------------------------------------------------------------------------- timing


def test_latency(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.configure(latency_ms=80)
    start = time.monotonic()
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - start >= 0.08


def test_stall_times_out_client(fake: FakeUpstream) -> None:
    fake.configure(stall_s=30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fake.base_url}/chat/completions", json=CHAT, timeout=0.2)
    fake.wait_idle(timeout=5)  # the fake notices the client leaving
    rec = fake.last_request
    assert rec is not None and rec.outcome == "client_disconnected" and rec.status is None


def test_stall_is_interrupted_by_stop() -> None:
    fake = FakeUpstream(stall_s=60).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(f"{fake.base_url}/chat/completions", json=CHAT, timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    fake.wait_for_requests(1)
    assert fake.in_flight == 1
    start = time.monotonic()
    fake.stop()
    assert time.monotonic() - start < 2
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert fake.requests[0].outcome == "aborted"


def test_trickle(fake: FakeUpstream) -> None:
    fake.configure(trickle_bytes=64, trickle_interval_ms=2)
    start = time.monotonic()
    parts = 0
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", json=CHAT) as resp:
        data = b""
        for part in resp.iter_raw():
            data += part
            parts += 1
    assert parts > 1
    assert json.loads(data)["choices"][0]["message"]["content"] == default_reply()
    assert time.monotonic() - start >= (len(data) // 64) * 0.002


# ----------------------------------------------------------------------------- bad bodies


def test_garbage_body(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.configure(garbage=True)
    resp = httpx.post(f"{fake.base_url}/chat/completions", json=CHAT)
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        resp.json()
    with pytest.raises(ValueError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    rec = fake.last_request
    assert rec is not None and rec.outcome == "garbage" and rec.usage is None
    fake.configure(garbage_body=b"data: {broken\n\n")
    chunks = httpx.post(f"{fake.base_url}/chat/completions", json={**CHAT, "stream": True})
    assert chunks.headers["content-type"].startswith("text/event-stream")
    assert chunks.content == b"data: {broken\n\n"


def test_200_without_usage(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.configure(omit_usage=True)
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.usage is None
    rec = fake.last_request
    assert rec is not None and rec.usage is None and rec.completion_tokens == DEFAULT_REPLY_WORDS


def test_huge_response(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.configure(huge_bytes=4_000_000, reply_words=4)
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    content = resp.choices[0].message.content
    assert content is not None and 3_900_000 <= len(content) <= 4_000_000
    assert resp.usage is not None and resp.usage.completion_tokens == 4


# ----------------------------------------------------------------------------- concurrency


async def test_in_flight_tracking(fake: FakeUpstream) -> None:
    fake.configure(stall_s=30)
    async with aiohttp.ClientSession() as session:

        async def call() -> int:
            async with session.post(f"{fake.base_url}/chat/completions", json=CHAT) as r:
                await r.read()
                return r.status

        tasks = [asyncio.create_task(call()) for _ in range(10)]
        await asyncio.to_thread(fake.wait_for_requests, 10)
        assert fake.in_flight == 10
        fake.configure(stall_s=0)  # new requests are fast; the stalled ones stay stalled
        assert await call() == 200
        assert fake.max_in_flight == 11
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(fake.wait_idle)
    assert fake.in_flight == 0 and fake.max_in_flight == 11


async def test_throughput_thousands_of_requests(fake: FakeUpstream) -> None:
    n = 2000
    sem = asyncio.Semaphore(64)
    start = time.monotonic()
    async with aiohttp.ClientSession() as session:

        async def call() -> int:
            async with sem, session.post(f"{fake.base_url}/chat/completions", json=CHAT) as r:
                await r.read()
                return r.status

        statuses = await asyncio.gather(*(call() for _ in range(n)))
    elapsed = time.monotonic() - start
    assert statuses == [200] * n
    assert fake.call_count == n
    assert fake.max_in_flight <= 64
    assert elapsed < 5, f"{n} requests took {elapsed:.2f}s"


def test_behaviour_changes_from_another_thread_apply_to_next_request(
    fake: FakeUpstream, client: openai.OpenAI
) -> None:
    thread = threading.Thread(target=fake.configure, kwargs={"reply": "changed"})
    thread.start()
    thread.join()
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "changed"


# ----------------------------------------------------------------------------- process mode


def test_standalone_process_and_remote_control() -> None:
    with fake_upstream_process(model="proc-model", args=["--set", "reply_words=3"]) as remote:
        with openai.OpenAI(base_url=remote.base_url, api_key="k", max_retries=0) as c:
            resp = c.chat.completions.create(model="proc-model", messages=MESSAGES)
            assert resp.choices[0].message.content == default_reply(3)
            remote.fail(503, times=1, retry_after=0.5)
            with pytest.raises(openai.InternalServerError):
                c.chat.completions.create(model="proc-model", messages=MESSAGES)
            remote.configure(reply="ok now")
            resp = c.chat.completions.create(model="proc-model", messages=MESSAGES)
            assert resp.choices[0].message.content == "ok now"
        recs = remote.requests()
        assert [r["status"] for r in recs] == [200, 503, 200]
        assert recs[0]["usage"]["prompt_tokens"] == MESSAGES_PROMPT_TOKENS
        assert remote.stats()["call_count"] == 3
        remote.clear()
        assert remote.requests() == []
        assert remote.process is not None
        proc = remote.process
    assert proc.poll() is not None
