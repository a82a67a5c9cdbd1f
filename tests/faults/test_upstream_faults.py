"""Upstreams that misbehave: garbage, cut streams, no usage, enormous answers, trickles and
stalls. Each ends in a clean OpenAI-shaped error or a correct charge, never a hang, a 500 or
a traceback; after each test the books balance (no reservation left, ledger == spend).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from router.core.tokens import TokenCounter
from tests.fake_upstream import FakeUpstream, default_reply
from tests.faults.support import (
    HELLO,
    error_shape_ok,
    fault_config,
    ledger,
    log_problems,
    read_books,
    set_team_budget,
    start_router,
    wait_for,
)
from tests.redis_servers import RedisServer
from tests.router_process import CLIENT_KEY, RouterProcess

MAX_RESPONSE_BYTES = 256 * 1024
READ_S = 1.5
FIRST_BYTE_S = 1.0


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def setup(
    upstreams: tuple[FakeUpstream, FakeUpstream],
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RouterProcess, str]]:
    mini, full = upstreams
    config = fault_config(mini.base_url, full.base_url, redis_server.url)
    for backend in config["backends"].values():
        backend["max_response_bytes"] = MAX_RESPONSE_BYTES
        backend["timeouts"] = {"connect_s": 1, "first_byte_s": FIRST_BYTE_S, "read_s": READ_S}
        backend["supply"] = {"breaker": {"consecutive_failures": 1000, "min_requests": 1000}}
    router = start_router(config, tmp_path_factory.mktemp("upstream-faults"))
    set_team_budget(router)
    yield router, config["store"]["key_prefix"]
    router.stop()


@pytest.fixture
def router(
    setup: tuple[RouterProcess, str],
    fakes: tuple[FakeUpstream, FakeUpstream],
    redis_server: RedisServer,
) -> Iterator[RouterProcess]:
    """The module's router; after each test its books must balance and its log be clean."""
    router, prefix = setup
    yield router

    def balanced() -> bool:
        books = read_books(router, redis_server, prefix)
        return books.reservations == 0 and books.ledger_cost == books.spent

    wait_for(
        balanced, 10, "the books to balance", state=lambda: read_books(router, redis_server, prefix)
    )
    assert log_problems(router) == []


def sdk(router: RouterProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def post(router: RouterProcess, **body: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    resp = httpx.post(
        f"{router.base_url}/chat/completions",
        timeout=30,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "mini", "messages": HELLO, **body},
    )
    return resp, time.monotonic() - started


def entry(router: RouterProcess, request_id: str) -> dict[str, Any]:
    rows = [row for row in ledger(router) if row["request_id"] == request_id]
    assert len(rows) == 1, rows
    return rows[0]


def charged(router: RouterProcess, request_id: str) -> bool:
    return any(row["request_id"] == request_id for row in ledger(router))


def assert_clean_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert error_shape_ok(resp.json()), resp.text
    assert resp.json()["error"]["code"] == code
    assert "127.0.0.1" not in resp.text and "Traceback" not in resp.text
    assert "x-router-cost-usd" not in resp.headers


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_garbage_json_is_a_clean_502_and_not_charged(router, fakes):
    fakes[0].configure(garbage=True)
    resp, _ = post(router)
    assert_clean_error(resp, 502, "upstream_error")
    assert not charged(router, resp.headers["x-request-id"])


def test_garbage_json_on_auto_falls_back_to_full(router, fakes):
    fakes[0].configure(garbage=True)
    raw = sdk(router).chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert raw.headers["x-router-backend"] == "full"
    assert raw.headers["x-router-fallbacks"] == "mini:upstream_error"
    assert entry(router, raw.headers["x-request-id"])["backend"] == "full"


def test_garbage_instead_of_a_stream_is_a_clean_error_before_any_byte(router, fakes):
    fakes[0].configure(garbage=True)
    resp, _ = post(router, stream=True)
    assert resp.status_code in (502, 503), resp.text
    assert error_shape_ok(resp.json())
    assert not charged(router, resp.headers["x-request-id"])


def test_a_truncated_stream_ends_with_an_error_event_and_charges_what_was_sent(router, fakes):
    fakes[0].configure(cut_after_chunks=3, reply_words=8)
    resp, _ = post(router, stream=True)
    assert resp.status_code == 200
    data = sse_data(resp.text)
    assert "[DONE]" not in data
    assert error_shape_ok(httpx.Response(200, content=data[-1]).json())
    row = entry(router, resp.headers["x-request-id"])
    assert row["status"] == "cut"
    assert row["extra"].get("usage") == "counted"
    assert row["completion_tokens"] == TokenCounter().count_text(
        " ".join(default_reply(8).split()[:3])
    )


def test_the_sdk_raises_on_a_truncated_stream(router, fakes):
    fakes[0].configure(cut_after_chunks=2)
    with pytest.raises(openai.APIError):
        for _ in sdk(router).chat.completions.create(model="mini", messages=HELLO, stream=True):
            pass


def test_a_reply_without_usage_is_charged_by_counting(router, fakes):
    fakes[0].configure(omit_usage=True, reply_words=8)
    raw = sdk(router).chat.completions.with_raw_response.create(model="mini", messages=HELLO)
    assert raw.parse().usage is None
    row = entry(router, raw.headers["x-request-id"])
    assert row["extra"].get("usage") == "counted"
    assert row["completion_tokens"] == TokenCounter().count_text(default_reply(8))
    assert row["prompt_tokens"] > 0 and row["cost_micros"] > 0
    assert raw.headers["x-router-cost-usd"] == row["cost_usd"]


def test_a_stream_without_usage_is_charged_by_counting(router, fakes):
    fakes[0].configure(ignore_include_usage=True, reply_words=8)
    resp, _ = post(router, stream=True)
    assert sse_data(resp.text)[-1] == "[DONE]"
    row = entry(router, resp.headers["x-request-id"])
    assert row["extra"].get("usage") == "counted" and row["status"] == "ok"
    assert row["completion_tokens"] == TokenCounter().count_text(default_reply(8))


def test_an_enormous_answer_is_a_clean_502(router, fakes):
    fakes[0].configure(huge_bytes=4 * MAX_RESPONSE_BYTES)
    resp, took = post(router)
    assert_clean_error(resp, 502, "upstream_error")
    assert took < READ_S


def test_an_enormous_answer_without_content_length_is_a_clean_502(router, fakes):
    fakes[0].configure(
        huge_bytes=4 * MAX_RESPONSE_BYTES, trickle_bytes=64 * 1024, trickle_interval_ms=0
    )
    resp, _ = post(router)
    assert_clean_error(resp, 502, "upstream_error")


def test_an_enormous_stream_is_cut_at_the_response_limit(router, fakes):
    fakes[0].configure(huge_bytes=4 * MAX_RESPONSE_BYTES, reply_words=64)
    resp, _ = post(router, stream=True)
    assert resp.status_code == 200
    assert len(resp.content) < MAX_RESPONSE_BYTES + 64 * 1024
    data = sse_data(resp.text)
    assert "[DONE]" not in data
    assert "over" in httpx.Response(200, content=data[-1]).json()["error"]["message"]
    assert entry(router, resp.headers["x-request-id"])["status"] == "cut"


def test_an_endless_event_is_cut_at_the_response_limit(router, fakes):
    fakes[0].configure(garbage=True, garbage_body=b"data: " + b"x" * (4 * MAX_RESPONSE_BYTES))
    resp, _ = post(router, stream=True)
    assert_clean_error(resp, 502, "upstream_error")


def test_a_slow_trickle_hits_the_read_timeout(router, fakes):
    fakes[0].configure(trickle_bytes=16, trickle_interval_ms=100)
    resp, took = post(router)
    assert_clean_error(resp, 504, "upstream_timeout")
    assert took < READ_S + FIRST_BYTE_S + 1


def test_a_stream_that_stalls_midway_ends_with_an_error_event(router, fakes):
    fakes[0].configure(chunk_delay_ms=(READ_S + 0.5) * 1000, reply_words=3)
    started = time.monotonic()
    resp, _ = post(router, stream=True)
    assert time.monotonic() - started < 2 * READ_S + 1
    data = sse_data(resp.text)
    assert "[DONE]" not in data
    assert "stalled" in httpx.Response(200, content=data[-1]).json()["error"]["message"]
    assert entry(router, resp.headers["x-request-id"])["status"] == "cut"


def test_an_upstream_that_never_answers_is_a_fast_503_or_a_fallback(router, fakes):
    fakes[0].configure(stall_s=5)
    resp, took = post(router)
    assert_clean_error(resp, 503, "no_backend_available")
    assert took < FIRST_BYTE_S + 1
    raw = sdk(router).chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert raw.headers["x-router-backend"] == "full"
