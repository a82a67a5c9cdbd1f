"""The Accountant over every store: worst-case reservations, admission-time prices, clear
429s, one round trip each way, and no lost charge when the store goes away."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from router.accounting import Accountant
from router.core.model import BudgetLeft, Price, Usage
from router.errors import BudgetExceeded, NoBackendAvailable, RateLimited, StoreUnavailable
from router.pricing import PriceBook
from router.store.base import KeyRecord, Limits, Period, Store, StoreError
from tests.contract.builders import key_budget, team_budget
from tests.contract.conftest import StoreEnv, wait_for

MINI = Price("mini", 1, 0.0, 50_000, 200_000)
FULL = Price("full", 1, 0.0, 2_000_000, 8_000_000, 500_000)
CANDIDATES = [("mini", "mini"), ("full", "full")]


class Flaky:
    """A store whose async methods can be switched off, and which counts calls."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False
        self.time_out_after_applying = False
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self.down:
                raise StoreError(f"{name}: store is down")
            result = await attr(*args, **kwargs)
            if self.time_out_after_applying:
                raise StoreError(f"{name}: timed out", maybe_applied=True)
            return result

        return call


def key(**overrides: Any) -> KeyRecord:
    fields: dict[str, Any] = {
        "key_id": "key-1",
        "key_hash": "h" * 64,
        "team": "team-a",
        "name": "svc",
    }
    fields.update(overrides)
    return KeyRecord(**fields)


def accountant(env: StoreEnv, store: Any = None, **kwargs: Any) -> Accountant:
    clock: Callable[[], float] = env.clock if env.clock is not None else time.time
    book = PriceBook([MINI, FULL], clock=clock)
    return Accountant(store or env.store, book, clock=clock, **kwargs)


async def test_reserves_the_worst_case_over_candidates_on_key_and_team(env: StoreEnv) -> None:
    await env.store.set_team_budgets("team-a", (team_budget(5_000_000),))
    acct = accountant(env)
    k = key(budgets=(key_budget(1_000_000),))
    admission = await acct.admit("r1", k, CANDIDATES, 1000, 500)
    # full: 1000 * 2.00 + 500 * 8.00 per Mtok = $0.006
    assert admission.reserved == 6000
    assert admission.prices == {"mini": MINI, "full": FULL}
    assert [b.scope_id for b in admission.budgets] == ["key-1", "team-a"]
    key_left, team_left = acct.budget_left(k)
    assert key_left is not None and key_left.remaining == 1_000_000 - 6000
    assert team_left is not None and team_left.remaining == 5_000_000 - 6000


async def test_settle_charges_at_the_admission_time_price(env: StoreEnv) -> None:
    acct = accountant(env)
    k = key(budgets=(key_budget(1_000_000),))
    admission = await acct.admit("r1", k, CANDIDATES, 1000, 500)
    acct._prices.apply(Price("full", 2, 0.0, 20_000_000, 80_000_000))  # later, 10x dearer
    entry = await acct.settle(
        admission,
        "full",
        Usage(1000, 100, cached_tokens=800),
        rule="r",
        fallbacks=["mini"],
        latency_ms=12,
    )
    # 200 * 2.00 + 800 * 0.50 + 100 * 8.00 per Mtok = $0.0016
    assert (entry.cost, entry.price_version, entry.model) == (1600, 1, "full")
    assert entry.fallbacks == ("mini",)
    assert acct.budget_left(k) == (BudgetLeft(1_000_000 - 1600, 1_000_000), None)
    ledger = [e async for e in env.store.ledger()]
    assert [(e.request_id, e.cost, e.extra["reserved"]) for e in ledger] == [("r1", 1600, "6000")]


async def test_budget_denial_says_which_budget_what_is_left_and_when_it_resets(
    memory_env: StoreEnv,
) -> None:
    """In-process store only: the reset time is predictable only on a clock the test moves."""
    env = memory_env
    await env.store.set_team_budgets("x", (team_budget(5_000_000, team="x"),))
    acct = accountant(env)
    k = key(team="x")
    first = await acct.admit("r1", k, [("full", "full")], 0, 610_000)  # $4.88
    await acct.settle(first, "full", Usage(0, 610_000), rule="r", fallbacks=[], latency_ms=1)
    with pytest.raises(BudgetExceeded) as caught:
        await acct.admit("r2", k, [("full", "full")], 0, 100_000)
    error = caught.value
    assert error.status == 429
    assert error.message == (
        "Team 'x' daily budget of $5.00 has $0.12 left and this request may cost up to "
        "$0.80; resets at 2026-11-26T00:00:00Z. Lower max_tokens or ask your admin to "
        "raise the budget."
    )
    assert error.retry_after == 12 * 3600


async def test_rate_limits_are_429_with_retry_after(env: StoreEnv) -> None:
    acct = accountant(env)
    k = key(limits=Limits(rpm=1, tpm=10_000))
    await acct.admit("r1", k, CANDIDATES, 10, 10)
    with pytest.raises(RateLimited) as caught:
        await acct.admit("r2", k, CANDIDATES, 10, 10)
    assert "1 requests per minute" in caught.value.message
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    with pytest.raises(RateLimited, match="Lower max_tokens"):
        await acct.admit("r3", key(key_id="k2", limits=Limits(tpm=100)), CANDIDATES, 50, 51)


async def test_unpriced_model_is_never_served_free(env: StoreEnv) -> None:
    acct = accountant(env)
    with pytest.raises(NoBackendAvailable) as caught:
        await acct.admit("r1", key(), [("mini", "mini"), ("odd", "unpriced")], 10, 10)
    assert caught.value.code == "price_unknown"
    assert "unpriced" in caught.value.message


async def test_one_store_round_trip_to_admit_and_one_to_settle(env: StoreEnv) -> None:
    store = Flaky(env.store)
    acct = accountant(env, store)
    k = key(budgets=(key_budget(1_000_000),))
    await acct.release(await acct.admit("warm", k, CANDIDATES, 10, 10))
    store.calls.clear()
    admission = await acct.admit("r1", k, CANDIDATES, 10, 10)
    assert store.calls == ["admit"]
    await acct.settle(admission, "mini", Usage(10, 10), rule="r", fallbacks=[], latency_ms=1)
    assert store.calls == ["admit", "settle"]
    acct.budget_left(k)
    assert store.calls == ["admit", "settle"]


async def test_fail_closed_is_503(env: StoreEnv) -> None:
    store = Flaky(env.store)
    store.down = True
    acct = accountant(env, store)
    with pytest.raises(StoreUnavailable, match="unreachable; retry shortly"):
        await acct.admit("r1", key(), CANDIDATES, 10, 10)


async def test_an_admission_that_timed_out_after_landing_is_given_back(env: StoreEnv) -> None:
    """Closed mode answers 503; a reservation the store made anyway must not be charged."""
    store = Flaky(env.store)
    acct = accountant(env, store, replay_interval_s=0.01)
    k = key(budgets=(key_budget(1_000_000),))
    await acct.release(await acct.admit("warm", k, CANDIDATES, 10, 10))
    store.time_out_after_applying = True
    with pytest.raises(StoreUnavailable):
        await acct.admit("r1", k, CANDIDATES, 1000, 1000)
    assert (await env.store.budget_status("team-a", k.budgets))[0].reserved > 0
    store.time_out_after_applying = False
    await asyncio.wait_for(_drained(acct), 2.0)
    status = await env.store.budget_status("team-a", k.budgets)
    assert (status[0].spent, status[0].reserved) == (0, 0)
    assert await env.store.stale_reservations(0) == []


async def test_a_settlement_the_store_misses_is_journaled_and_replayed(
    env: StoreEnv, caplog: pytest.LogCaptureFixture
) -> None:
    store = Flaky(env.store)
    acct = accountant(env, store, replay_interval_s=0.01)
    k = key(budgets=(key_budget(1_000_000),))
    admission = await acct.admit("r1", k, CANDIDATES, 10, 10)
    store.down = True
    with caplog.at_level(logging.ERROR, "router.accounting"):
        entry = await acct.settle(
            admission, "mini", Usage(1000, 1000), rule="r", fallbacks=[], latency_ms=1
        )
    assert acct.journal_size == 1
    assert '"request_id": "r1"' in caplog.text
    store.down = False
    await asyncio.wait_for(_drained(acct), 2.0)
    status = await env.store.budget_status("team-a", admission.budgets)
    assert (status[0].spent, status[0].reserved) == (entry.cost, 0)
    assert [e.request_id async for e in env.store.ledger()] == ["r1"]


async def test_fail_open_admits_locally_and_charges_when_the_store_is_back(env: StoreEnv) -> None:
    store = Flaky(env.store)
    acct = accountant(env, store, fail_mode="open", replay_interval_s=0.01)
    k = key(budgets=(key_budget(1_000_000),))
    await acct.release(await acct.admit("warm", k, CANDIDATES, 10, 10))
    store.down = True
    admission = await acct.admit("r1", k, CANDIDATES, 10, 10)
    assert admission.local
    released = await acct.admit("r2", k, CANDIDATES, 10, 10)
    await acct.release(released)
    entry = await acct.settle(
        admission, "full", Usage(100, 100), rule="r", fallbacks=[], latency_ms=1
    )
    assert acct.journal_size == 1
    store.down = False
    await asyncio.wait_for(_drained(acct), 2.0)
    status = await env.store.budget_status("team-a", admission.budgets)
    assert (status[0].spent, status[0].reserved) == (entry.cost, 0)
    (ledgered,) = [e async for e in env.store.ledger()]
    assert ledgered.extra["admission"] == "local"


class Concurrent(Flaky):
    """Flaky, and settlements overlap: records the most in flight at once, and fails each
    request id listed in `fail_once` on its first try."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.fail_once: set[str] = set()
        self.in_flight = self.most_in_flight = 0

    async def settle(self, settlement: Any) -> Any:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the other settlements of a batch start
            if self.down:
                raise StoreError("settle: store is down")
            if settlement.entry.request_id in self.fail_once:
                self.fail_once.discard(settlement.entry.request_id)
                raise StoreError("settle: one lost reply")
            return await self.inner.settle(settlement)
        finally:
            self.in_flight -= 1


async def test_the_journal_replays_in_concurrent_batches_and_keeps_what_failed(
    env: StoreEnv,
) -> None:
    store = Concurrent(env.store)
    acct = accountant(env, store, replay_interval_s=0.01)
    k = key(budgets=(key_budget(10_000_000),))
    admissions = [await acct.admit(f"r{i}", k, CANDIDATES, 10, 10) for i in range(100)]
    store.down = True
    entries = [
        await acct.settle(a, "mini", Usage(100, 10), rule="r", fallbacks=[], latency_ms=1)
        for a in admissions
    ]
    assert acct.journal_size == 100
    store.fail_once = {f"r{i}" for i in range(0, 100, 7)}
    store.down = False
    await asyncio.wait_for(_drained(acct), 5.0)
    assert store.fail_once == set() and store.most_in_flight > 1
    status = await env.store.budget_status("team-a", k.budgets)
    assert (status[0].spent, status[0].reserved) == (sum(e.cost for e in entries), 0)
    ids = [e.request_id async for e in env.store.ledger()]
    assert sorted(ids) == sorted(f"r{i}" for i in range(100))


async def test_a_failed_release_is_retried(env: StoreEnv) -> None:
    store = Flaky(env.store)
    acct = accountant(env, store, replay_interval_s=0.01)
    k = key(budgets=(key_budget(1_000_000),))
    admission = await acct.admit("r1", k, CANDIDATES, 10, 10)
    store.down = True
    await acct.release(admission)
    store.down = False
    await asyncio.wait_for(_drained(acct), 2.0)
    status = await env.store.budget_status("team-a", admission.budgets)
    assert (status[0].spent, status[0].reserved) == (0, 0)


async def test_team_budget_changes_reach_admission(env: StoreEnv) -> None:
    acct = accountant(env, team_budget_ttl_s=0.0)
    k = key()
    await acct.release(await acct.admit("r0", k, CANDIDATES, 10, 10))
    await env.store.set_team_budgets("team-a", (team_budget(1, Period.MONTH),))
    attempts = iter(range(1000))

    async def denied() -> bool:
        try:
            await acct.release(await acct.admit(f"r{next(attempts)}", k, CANDIDATES, 10, 10))
        except BudgetExceeded as error:
            assert "Team 'team-a' monthly budget of $0.000001" in error.message
            return True
        return False

    await wait_for(denied, timeout=2.0, interval=0.005)


async def _drained(acct: Accountant) -> None:
    while acct.journal_size:
        await asyncio.sleep(0.01)
