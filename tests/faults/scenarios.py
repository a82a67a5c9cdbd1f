"""Fault scenarios run end to end, sized by their caller: the suite runs them short, the soak
script (`python -m tests.faults.soak`) runs them at full length and prints the figures.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fake_upstream import FakeUpstream
from tests.faults.support import (
    Books,
    Load,
    Outcome,
    durable_redis,
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

JOURNAL_REPLAYED = "journal replayed"


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
    router_alive: bool
    problems: list[str]
    """Log lines of unhandled errors or tracebacks."""

    @property
    def served(self) -> set[str]:
        return {o.request_id for o in self.outcomes if o.status == 200}

    @property
    def during(self) -> list[Outcome]:
        """Requests sent while Redis was down."""
        return [o for o in self.outcomes
                if self.killed_at <= o.started and o.ended <= self.back_at]

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


def run_outage(workdir: Path, *, mode: str, down_s: float, clients: int = 4,
               answers_after: int = 100, after_s: float = 2.0,
               converge_timeout_s: float = 40.0) -> OutageReport:
    """Steady SDK load; SIGKILL Redis for `down_s`; restart it on the same port; keep the
    load on for `after_s` more, and until `answers_after` requests sent after the restart
    were answered."""
    with durable_redis() as server, FakeUpstream(model="mini-upstream") as mini, \
            FakeUpstream(model="full-upstream") as full:
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
                wait_for(lambda: time.monotonic() > back_at + after_s and sum(
                    o.started >= back_at for o in load.snapshot()) >= answers_after, 60,
                    f"{answers_after} answers after the restart")
            finally:
                outcomes = load.stop()
            served = {o.request_id for o in outcomes if o.status == 200}
            started = time.monotonic()

            def converged() -> bool:
                books = read_books(router, server, prefix)
                return served <= books.ledger_ids and books.ledger_cost == books.spent

            wait_for(converged, converge_timeout_s, "every served request in the ledger",
                     interval=0.1, state=lambda: read_books(router, server, prefix))
            books_converged_s = time.monotonic() - started
            books = read_books(router, server, prefix)
            leaked = leaked_reservations(server, prefix)
            alive = healthy(router)
        finally:
            router.stop()
        lines = log_lines(router)
        replays = [line["ts"] for line in lines
                   if line["msg"].startswith(JOURNAL_REPLAYED) and line["ts"] >= back_at_wall]
        return OutageReport(mode, down_s, outcomes, killed_at, back_at, back_at_wall, books,
                            books_converged_s, leaked,
                            # log ts are rounded to the ms
                            max(0.0, min(replays) - back_at_wall) if replays else None,
                            alive, log_problems(router))
