"""Redis SIGKILLed under steady load from four openai SDK clients, then restarted on the same
port (its AOF is fsynced, so it comes back with what it acknowledged). The outage is 3 s
here (3.5 s in fail mode open, so the journal's backoff is past its 3 s retry); the 10 s
run is `python -m tests.faults.soak`.

Each scenario runs once per module; the tests below read its report.
"""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.scenarios import OutageReport, run_outage
from tests.faults.support import (
    HELLO,
    admin,
    durable_redis,
    fault_config,
    healthy,
    start_router,
)

CLOSED_DOWN_S = 3.0
OPEN_DOWN_S = 3.5


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> OutageReport:
    return run_outage(tmp_path_factory.mktemp("closed"), mode="closed", down_s=CLOSED_DOWN_S)


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> OutageReport:
    return run_outage(tmp_path_factory.mktemp("open"), mode="open", down_s=OPEN_DOWN_S)


def _unshaped(report: OutageReport) -> list[tuple[int, str | None]]:
    return [(o.status, o.code) for o in report.outcomes if o.status != 200 and not o.shaped]


def test_closed_the_router_survives_without_a_traceback(closed: OutageReport) -> None:
    assert closed.router_alive
    assert closed.problems == []
    assert _unshaped(closed) == []


def test_closed_turns_requests_away_with_openai_shaped_503s(closed: OutageReport) -> None:
    during = closed.during
    refused = [o for o in during if o.status != 200]
    assert len(during) > 50
    assert {(o.status, o.code) for o in refused} == {(503, "state_store_unavailable")}
    # Only requests admitted just before the kill may still have been served.
    assert len(refused) >= 0.95 * len(during)


def test_closed_recovers_within_a_second_of_redis_returning(closed: OutageReport) -> None:
    assert closed.recovery_s is not None and closed.recovery_s < 1.0
    late = [o for o in closed.after if o.started > closed.back_at + 1.0]
    assert late and all(o.status == 200 for o in late)


def test_closed_every_served_request_is_charged_and_nothing_else(closed: OutageReport) -> None:
    books = closed.books
    assert closed.served == set(books.ledger_ids)
    assert books.ledger_cost == books.spent > 0
    assert books.reserved == sum(closed.leaked.values())
    by_id = {o.request_id: o for o in closed.outcomes}
    for request_id in closed.leaked:
        # The one known leak (test_redis_slow.py::test_a_lost_admission_reply_then_a_
        # refused_retry_is_released): an admission that landed as Redis died, whose retry
        # was refused, answered 503 and never given back.
        refused = by_id[request_id]
        assert refused.status == 503 and abs(refused.ended - closed.killed_at) < 1.0


def test_open_keeps_serving_through_the_outage(opened: OutageReport) -> None:
    assert opened.router_alive and opened.problems == []
    assert len(opened.during) > 50
    assert {o.status for o in opened.outcomes} == {200}


def test_open_replays_its_journal_so_the_books_add_up(opened: OutageReport) -> None:
    books = opened.books
    assert opened.journal_replayed_after_s is not None
    assert opened.served == set(books.ledger_ids)
    assert books.ledger_cost == books.spent > 0
    assert (books.reserved, books.reservations) == (0, 0)
    assert opened.leaked == {}


def test_open_journal_replay_starts_as_soon_as_redis_is_back(opened: OutageReport) -> None:
    """Replay is woken by the first call that finds Redis answering, then goes through the
    journal 32 settlements at a time: allow 1 s plus 1 ms a settlement (replayed one round
    trip at a time under this load, it took over 2 ms a settlement)."""
    assert opened.journal_replayed_after_s is not None and opened.journal_size > 100
    assert opened.journal_replayed_after_s <= 1.0 + 0.001 * opened.journal_size


def test_open_keeps_serving_a_known_key_past_the_key_cache(tmp_path: Path) -> None:
    """A store-issued key seen before the outage keeps working after its 5 s cache entry
    expires, from the last record the router saw."""
    with (
        durable_redis() as server,
        FakeUpstream(model="mini-upstream") as mini,
        FakeUpstream(model="full-upstream") as full,
    ):
        router = start_router(
            fault_config(mini.base_url, full.base_url, server.url, fail_mode="open"), tmp_path
        )
        try:
            key = admin(router, "POST", "/admin/keys", json={"team": "apps"}).json()["key"]
            client = openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0, timeout=10)
            client.chat.completions.create(model="auto", messages=HELLO)
            server.kill()
            until = time.monotonic() + 6.5
            while time.monotonic() < until:
                client.chat.completions.create(model="auto", messages=HELLO)
                time.sleep(0.25)  # a client's pace, not a synchronisation
            assert healthy(router)
        finally:
            router.stop()
