"""A slow or hung Redis: paused (CLIENT PAUSE), frozen (SIGSTOP: connects succeed, nothing
answers), or behind a proxy that delays bytes or loses replies. `store.timeout_s` must fire
and every request must be answered within a small multiple of it, never hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.scenarios import leaked_reservations
from tests.faults.support import (
    HELLO,
    error_shape_ok,
    fault_config,
    log_problems,
    read_books,
    set_team_budget,
    start_router,
    wait_for,
)
from tests.faults.tcp_proxy import Mode, TcpProxy
from tests.redis_servers import RedisServer
from tests.router_process import CLIENT_KEY, RouterProcess

TIMEOUT_S = 0.25
ANSWER_WITHIN_S = 8 * TIMEOUT_S
"""Admission and settlement are one round trip each, retried once: four timeouts at most,
doubled for a loaded CI machine."""
PAUSE_S = 1.5


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as redis_server:
        yield redis_server


@pytest.fixture
def start(
    tmp_path: Path, fakes: tuple[FakeUpstream, FakeUpstream], server: RedisServer
) -> Iterator[Callable[..., tuple[RouterProcess, str]]]:
    """Start a router on `url` (the Redis, or a proxy in front of it) in a fail mode."""
    started: list[RouterProcess] = []
    mini, full = fakes

    def run(url: str, fail_mode: str) -> tuple[RouterProcess, str]:
        config = fault_config(
            mini.base_url, full.base_url, url, fail_mode=fail_mode, timeout_s=TIMEOUT_S
        )
        started.append(start_router(config, tmp_path))
        set_team_budget(started[-1])
        return started[-1], config["store"]["key_prefix"]

    yield run
    for router in started:
        router.stop()
        assert log_problems(router) == []


def ask(
    router: RouterProcess, request_id: str | None = None, **body: Any
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    resp = httpx.post(
        f"{router.base_url}/chat/completions",
        timeout=30,
        headers=headers,
        json={"model": "auto", "messages": HELLO, **body},
    )
    return resp, time.monotonic() - started


def assert_refused_fast(resp: httpx.Response, took: float) -> None:
    assert resp.status_code == 503, resp.text
    assert error_shape_ok(resp.json())
    assert resp.json()["error"]["code"] == "state_store_unavailable"
    assert took < ANSWER_WITHIN_S


def test_paused_redis_closed_mode_answers_503_within_the_store_timeout(start, server):
    router, prefix = start(server.url, "closed")
    assert ask(router)[0].status_code == 200
    server.pause(PAUSE_S)
    assert_refused_fast(*ask(router, stream=True))
    wait_for(lambda: ask(router)[0].status_code == 200, 5, "Redis to answer again")
    wait_for(
        lambda: read_books(router, server, prefix).reservations == 0,
        10,
        "no reservation left",
        state=lambda: read_books(router, server, prefix),
    )


def test_paused_redis_open_mode_serves_within_the_store_timeouts(start, server):
    router, prefix = start(server.url, "open")
    server.pause(PAUSE_S)
    resp, took = ask(router, stream=True)
    assert resp.status_code == 200 and took < ANSWER_WITHIN_S
    assert resp.text.rstrip().endswith("data: [DONE]")

    def settled() -> bool:
        try:
            books = read_books(router, server, prefix)
        except httpx.HTTPStatusError as exc:  # the ledger is unreadable until the pause ends
            assert exc.response.status_code == 503 and error_shape_ok(exc.response.json())
            return False
        return books.ledger_rows == 1 and books.reservations == 0

    wait_for(
        settled,
        10,
        "the journaled settlement to land",
        state=lambda: read_books(router, server, prefix),
    )


def test_frozen_redis_never_hangs_a_request_or_readiness(start, server):
    router, prefix = start(server.url, "closed")
    assert ask(router)[0].status_code == 200
    with server.frozen():
        assert_refused_fast(*ask(router))
        started = time.monotonic()
        ready = httpx.get(f"{router.url}/readyz", timeout=10)
        assert ready.status_code == 503 and time.monotonic() - started < ANSWER_WITHIN_S
        assert httpx.get(f"{router.url}/healthz", timeout=5).status_code == 200
    assert ask(router)[0].status_code == 200
    wait_for(
        lambda: read_books(router, server, prefix).reservations == 0,
        10,
        "no reservation left",
        state=lambda: read_books(router, server, prefix),
    )


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_slow_network_to_redis_is_cut_off_by_the_store_timeout(start, server, mode):
    with TcpProxy(server.port) as proxy:
        router, prefix = start(proxy.url, mode)
        assert ask(router)[0].status_code == 200
        proxy.set(Mode.DELAY, delay_s=TIMEOUT_S * 4)
        resp, took = ask(router)
        assert took < ANSWER_WITHIN_S
        if mode == "closed":
            assert_refused_fast(resp, took)
        else:
            assert resp.status_code == 200
        proxy.set(Mode.PASS)
        # Bytes held back keep their order, so a new command waits behind them until then.
        wait_for(lambda: proxy.delaying == 0, 5, "the held-back bytes to be passed on")
        assert ask(router)[0].status_code == 200
        served = 3 if mode == "open" else 2

        def settled() -> bool:
            books = read_books(router, server, prefix)
            return (books.ledger_rows, books.reservations) == (
                served,
                0,
            ) and books.ledger_cost == books.spent

        wait_for(
            settled, 10, "the books to settle", state=lambda: read_books(router, server, prefix)
        )


def test_a_lost_admission_reply_is_released(start, server):
    """A connection lost after the admit was sent may have reserved: the 503 it gives is
    followed by a release, or the reservation would be charged at reconcile."""
    with TcpProxy(server.port) as proxy:
        router, prefix = start(proxy.url, "closed")
        assert ask(router)[0].status_code == 200
        proxy.set(Mode.LOSE_REPLIES)
        assert_refused_fast(*ask(router))
        assert proxy.lost_replies >= 1
        proxy.set(Mode.PASS)
        assert ask(router)[0].status_code == 200
        wait_for(
            lambda: not leaked_reservations(server, prefix),
            3,
            "the landed reservation to be released",
            state=lambda: leaked_reservations(server, prefix),
        )


def test_an_admission_retried_after_a_lost_reply_reserves_once(start, server):
    """redis-py resends an admit whose reply was lost; the retry must be recognised as the
    same admission (its 'dup'), not another request's, or the first reservation leaks."""
    with TcpProxy(server.port) as proxy:
        router, prefix = start(proxy.url, "closed")
        proxy.set(Mode.LOSE_REPLIES, match=b"lose-one-admit-reply", count=1)
        resp, _ = ask(router, request_id="lose-one-admit-reply")
        assert resp.status_code == 200, resp.text
        assert proxy.lost_replies == 1

        def balanced() -> bool:
            books = read_books(router, server, prefix)
            return (books.ledger_rows, books.reservations) == (
                1,
                0,
            ) and books.ledger_cost == books.spent

        wait_for(
            balanced,
            3,
            "one charge and no reservation left",
            state=lambda: read_books(router, server, prefix),
        )


def test_a_lost_admission_reply_then_a_refused_retry_is_released(start, server):
    with TcpProxy(server.port) as proxy:
        router, prefix = start(proxy.url, "closed")
        assert ask(router)[0].status_code == 200
        proxy.set(Mode.LOSE_REPLIES, match=b"lost-then-refused", count=1, then_refuse=True)
        assert_refused_fast(*ask(router, request_id="lost-then-refused"))
        assert proxy.lost_replies == 1
        proxy.listen()
        wait_for(lambda: ask(router)[0].status_code == 200, 5, "Redis reachable again")
        wait_for(
            lambda: not leaked_reservations(server, prefix),
            3,
            "the landed reservation to be released",
            state=lambda: leaked_reservations(server, prefix),
        )
