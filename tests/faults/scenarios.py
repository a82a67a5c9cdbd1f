"""Fault scenarios run end to end, sized by their caller: the suite runs them short, the soak
script (`python -m tests.faults.soak`) runs them at full length and prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.fake_upstream import FakeUpstream
from tests.faults.support import (
    HELLO,
    Books,
    Load,
    Outcome,
    admin,
    durable_redis,
    error_shape_ok,
    fault_config,
    healthy,
    log_lines,
    log_problems,
    read_books,
    set_team_budget,
    start_router,
    wait_for,
)
from tests.redis_servers import RedisServer
from tests.router_process import CLIENT_KEY, RouterProcess

JOURNAL_REPLAYED = "journal replayed"
_PENDING = re.compile(r"journal replay deferred \((\d+) pending\)")


@dataclass(frozen=True, slots=True)
class OutageReport:
    """What steady load saw while Redis was killed and brought back on the same port."""

    mode: str
    down_s: float
    outcomes: list[Outcome]
    killed_at: float
    back_at: float
    """monotonic time at which the restarted Redis answered PING."""
    back_at_wall: float
    books: Books
    books_converged_s: float
    """After the load stopped: until every served request was in the ledger and the
    ledger matched the budget counters."""
    leaked: dict[str, int]
    """Reservations left in Redis: request id -> micro-dollars."""
    journal_replayed_after_s: float | None
    """From Redis answering again to the router logging its journal fully replayed."""
    journal_size: int
    """The most settlements and releases the journal held at once."""
    router_alive: bool
    problems: list[str]
    """Log lines of unhandled errors or tracebacks."""

    @property
    def served(self) -> set[str]:
        return {o.request_id for o in self.outcomes if o.status == 200}

    @property
    def during(self) -> list[Outcome]:
        """Requests sent while Redis was down."""
        return [o for o in self.outcomes if self.killed_at <= o.started and o.ended <= self.back_at]

    @property
    def after(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.started >= self.back_at]

    @property
    def recovery_s(self) -> float | None:
        """From Redis answering again to the first success of a request sent after it."""
        ends = [o.ended for o in self.after if o.status == 200]
        return min(ends) - self.back_at if ends else None


def leaked_reservations(server: RedisServer, prefix: str) -> dict[str, int]:
    """Reservations left in Redis: request id -> micro-dollars."""
    out: dict[str, int] = {}
    with server.sync_client(decode_responses=True) as client:
        for key in client.scan_iter(match=f"{prefix}:*:res", count=1000):
            for request_id, raw in client.hgetall(key).items():
                out[request_id] = int(json.loads(raw)["amount"])
    return out


def run_outage(
    workdir: Path,
    *,
    mode: str,
    down_s: float,
    clients: int = 4,
    answers_after: int = 100,
    after_s: float = 2.0,
    converge_timeout_s: float = 40.0,
) -> OutageReport:
    """Steady SDK load; SIGKILL Redis for `down_s`; restart it on the same port; keep the
    load on for `after_s` more, and until `answers_after` requests sent after the restart
    were answered."""
    with (
        durable_redis() as server,
        FakeUpstream(model="mini-upstream") as mini,
        FakeUpstream(model="full-upstream") as full,
    ):
        config = fault_config(mini.base_url, full.base_url, server.url, fail_mode=mode)
        prefix = config["store"]["key_prefix"]
        router = start_router(config, workdir)
        try:
            set_team_budget(router)
            load = Load(router, clients).start()
            try:
                load.wait_answers(clients * 10)
                server.kill()
                killed_at = time.monotonic()
                time.sleep(down_s)  # the outage itself: a duration, not a synchronisation
                server.start()
                back_at, back_at_wall = time.monotonic(), time.time()
                wait_for(
                    lambda: (
                        time.monotonic() > back_at + after_s
                        and sum(o.started >= back_at for o in load.snapshot()) >= answers_after
                    ),
                    60,
                    f"{answers_after} answers after the restart",
                )
            finally:
                outcomes = load.stop()
            served = {o.request_id for o in outcomes if o.status == 200}
            started = time.monotonic()

            def converged() -> bool:
                books = read_books(router, server, prefix)
                return served <= books.ledger_ids and books.ledger_cost == books.spent

            wait_for(
                converged,
                converge_timeout_s,
                "every served request in the ledger",
                interval=0.1,
                state=lambda: read_books(router, server, prefix),
            )
            books_converged_s = time.monotonic() - started
            books = read_books(router, server, prefix)
            leaked = leaked_reservations(server, prefix)
            alive = healthy(router)
        finally:
            router.stop()
        lines = log_lines(router)
        replays = [
            line["ts"]
            for line in lines
            if line["msg"].startswith(JOURNAL_REPLAYED) and line["ts"] >= back_at_wall
        ]
        pending = [
            int(found.group(1))
            for line in lines
            if (found := _PENDING.search(line["msg"])) is not None
        ]
        return OutageReport(
            mode,
            down_s,
            outcomes,
            killed_at,
            back_at,
            back_at_wall,
            books,
            books_converged_s,
            leaked,
            # log ts are rounded to the ms
            max(0.0, min(replays) - back_at_wall) if replays else None,
            max(pending, default=0),
            alive,
            log_problems(router),
        )


FAULTS: tuple[dict[str, Any], ...] = (
    {},
    {"latency_ms": 30},
    {"chunk_delay_ms": 5},
    {"fail_status": 500, "fail_fraction": "1/3"},
    {"fail_status": 503, "fail_fraction": "1/2", "retry_after": None},
    {"fail_status": 429, "fail_fraction": "1/4", "retry_after": None},
    {"garbage": True},
    {"cut_after_chunks": 2},
    {"omit_usage": True},
    {"ignore_include_usage": True},
    {"stall_s": 0.6},
)
"""What the upstreams are told to do, a few at a time, while the churn runs."""
_CALM = {
    "latency_ms": 0.0,
    "chunk_delay_ms": 0.0,
    "fail_status": None,
    "fail_fraction": None,
    "garbage": False,
    "cut_after_chunks": None,
    "omit_usage": False,
    "ignore_include_usage": False,
    "stall_s": 0.0,
    "retry_after": 1.0,
}
KINDS = ("complete", "stream", "hang_up", "client_timeout", "cancel")


@dataclass(slots=True)
class ChurnReport:
    """What a churn of mixed, abandoned and failing requests left behind."""

    sent: int
    elapsed_s: float
    kinds: Counter[str]
    statuses: Counter[int]
    """Status of every request whose answer head the client read."""
    unshaped: list[str]
    """Error answers not in OpenAI's shape (must be empty)."""
    served: set[str]
    """Non-streaming requests answered 200: each must be in the ledger."""
    sent_ids: set[str]
    books: Books
    drained_s: float
    """After the last request: until nothing was reserved, leased or in flight."""
    in_flight: dict[str, int]
    duplicate_ledger_rows: int
    problems: list[str]


async def _churn_one(
    client: httpx.AsyncClient, kind: str, request_id: str, rng: random.Random, report: ChurnReport
) -> None:
    body = {
        "model": rng.choice(("auto", "auto", "mini", "full")),
        "messages": HELLO,
        "stream": kind in ("stream", "hang_up", "cancel") and rng.random() < 0.8,
    }
    headers = {"x-request-id": request_id}
    timeout = httpx.Timeout(30.0)
    if kind == "client_timeout":
        timeout = httpx.Timeout(rng.uniform(0.001, 0.05))
    try:
        async with client.stream(
            "POST", "/chat/completions", json=body, headers=headers, timeout=timeout
        ) as resp:
            report.statuses[resp.status_code] += 1
            if kind == "hang_up":
                async for _ in resp.aiter_raw():
                    break
                return
            content = await resp.aread()
    except httpx.TimeoutException:
        return
    if resp.status_code != 200:
        try:
            shaped = error_shape_ok(orjson.loads(content))
        except orjson.JSONDecodeError:
            shaped = False
        if not shaped:
            report.unshaped.append(f"{resp.status_code} {content[:200]!r}")
    elif not body["stream"]:
        report.served.add(request_id)


async def _churn(
    router: RouterProcess, count: int, concurrency: int, seed: int, report: ChurnReport
) -> None:
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=router.base_url, limits=limits, headers={"authorization": f"Bearer {CLIENT_KEY}"}
    ) as client:

        async def one(index: int) -> None:
            async with gate:
                kind = rng.choice(KINDS)
                request_id = f"churn-{seed}-{index}"
                report.kinds[kind] += 1
                report.sent_ids.add(request_id)
                work = asyncio.ensure_future(_churn_one(client, kind, request_id, rng, report))
                if kind == "cancel":
                    await asyncio.wait((work,), timeout=rng.uniform(0.0, 0.05))
                    work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work

        await asyncio.gather(*(one(index) for index in range(count)))


def _stir(fakes: tuple[FakeUpstream, ...], stop: threading.Event, seed: int) -> None:
    """Reconfigure the upstreams with a random fault every 50 ms until stopped."""
    rng = random.Random(seed)
    while not stop.wait(0.05):
        fake = rng.choice(fakes)
        fake.configure(**{**_CALM, **rng.choice(FAULTS)})
    for fake in fakes:
        fake.configure(**_CALM)


def churn_config(mini_url: str, full_url: str, redis_url: str) -> dict[str, Any]:
    """Quick timeouts, a capacity cap on Mini (so its leases are exercised) and breakers
    that never open (so faults keep reaching the upstreams)."""
    config = fault_config(mini_url, full_url, redis_url)
    for name, backend in config["backends"].items():
        backend["timeouts"] = {"connect_s": 1, "first_byte_s": 0.5, "read_s": 1}
        backend["supply"] = {
            "breaker": {"consecutive_failures": 10**6, "min_requests": 10**6},
            "retry": {"attempts": 0},
            **(
                {"capacity": {"max_in_flight": 8, "overflow": "fallback"}} if name == "mini" else {}
            ),
        }
    return config


def run_churn(workdir: Path, *, count: int, concurrency: int = 32, seed: int = 7) -> ChurnReport:
    """`count` requests of every kind (finished, streamed, hung up on, timed out by the
    client, cancelled) against upstreams that fail at random; then the books."""
    with (
        durable_redis() as server,
        FakeUpstream(model="mini-upstream") as mini,
        FakeUpstream(model="full-upstream") as full,
    ):
        config = churn_config(mini.base_url, full.base_url, server.url)
        prefix = config["store"]["key_prefix"]
        router = start_router(config, workdir)
        report = ChurnReport(
            count,
            0.0,
            Counter(),
            Counter(),
            [],
            set(),
            set(),
            read_books(router, server, prefix),
            0.0,
            {},
            0,
            [],
        )
        try:
            set_team_budget(router)
            stop = threading.Event()
            stirrer = threading.Thread(target=_stir, args=((mini, full), stop, seed))
            stirrer.start()
            started = time.monotonic()
            try:
                asyncio.run(_churn(router, count, concurrency, seed, report))
            finally:
                stop.set()
                stirrer.join()
            report.elapsed_s = time.monotonic() - started
            ended = time.monotonic()

            def drained() -> bool:
                books = read_books(router, server, prefix)
                report.in_flight = in_flight(router)
                return (
                    (books.reservations, books.key_leases, books.supply_leases, books.reserved)
                    == (0, 0, 0, 0)
                    and books.ledger_cost == books.spent
                    and not any(report.in_flight.values())
                )

            wait_for(
                drained,
                30,
                "nothing reserved, leased or in flight",
                interval=0.1,
                state=lambda: (read_books(router, server, prefix), in_flight(router)),
            )
            report.drained_s = time.monotonic() - ended
            report.books = read_books(router, server, prefix)
            report.duplicate_ledger_rows = report.books.ledger_rows - len(report.books.ledger_ids)
        finally:
            router.stop()
        report.problems = log_problems(router)
        return report


def in_flight(router: RouterProcess) -> dict[str, int]:
    """Each backend's in-flight count as the router sees it (GET /admin/backends)."""
    resp = admin(router, "GET", "/admin/backends")
    resp.raise_for_status()
    return {name: int(view["in_flight"]) for name, view in resp.json()["backends"].items()}
