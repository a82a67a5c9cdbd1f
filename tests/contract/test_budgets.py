"""Reservations, settlement, release and reconciliation against budgets, on every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.store.base import Denial, Limits, Period
from tests.contract.builders import (
    KEY,
    TEAM,
    admit_request,
    key_budget,
    settlement,
    team_budget,
)
from tests.contract.conftest import StoreEnv, wait_for


async def ledger_of(env: StoreEnv) -> list[str]:
    return [f"{e.request_id}:{e.status}:{e.cost}" async for e in env.store.ledger()]


async def test_admit_reserves_on_every_budget(env: StoreEnv) -> None:
    budgets = (key_budget(1000), team_budget(5000, Period.MONTH))
    result = await env.store.admit(admit_request("r1", budgets, 300))
    assert result.admitted
    assert [(s.spent, s.reserved) for s in result.budgets] == [(0, 300), (0, 300)]
    status = await env.store.budget_status(TEAM, budgets)
    assert [(s.spent, s.reserved, s.remaining) for s in status] == [(0, 300, 700), (0, 300, 4700)]


async def test_room_is_spent_plus_reserved_plus_reserve_up_to_the_hard_limit(env: StoreEnv) -> None:
    budgets = (key_budget(1000),)
    assert (await env.store.admit(admit_request("r1", budgets, 600))).admitted
    assert (await env.store.admit(admit_request("r2", budgets, 400))).admitted
    denied = await env.store.admit(admit_request("r3", budgets, 1))
    assert not denied.admitted
    assert denied.denied_by is Denial.BUDGET
    assert denied.denied_budget is not None
    assert denied.denied_budget.remaining == 0


async def test_all_or_nothing_when_one_budget_has_no_room(env: StoreEnv) -> None:
    budgets = (key_budget(1000), team_budget(250))
    result = await env.store.admit(admit_request("r1", budgets, 300, limits=Limits(rpm=1)))
    assert not result.admitted
    assert result.denied_by is Denial.BUDGET
    assert result.denied_budget is not None and result.denied_budget.budget == budgets[1]
    status = await env.store.budget_status(TEAM, budgets)
    assert [s.reserved for s in status] == [0, 0]
    # The denied request did not count against RPM either.
    assert (await env.store.admit(admit_request("r2", budgets, 200, limits=Limits(rpm=1)))).admitted


async def test_settle_swaps_reservation_for_actual_cost_once(env: StoreEnv) -> None:
    budgets = (key_budget(1000), team_budget(5000))
    await env.store.admit(admit_request("r1", budgets, 300))
    status = await env.store.settle(settlement("r1", budgets, 120))
    assert [(s.spent, s.reserved) for s in status] == [(120, 0), (120, 0)]
    again = await env.store.settle(settlement("r1", budgets, 120))
    assert [(s.spent, s.reserved) for s in again] == [(120, 0), (120, 0)]
    assert await ledger_of(env) == ["r1:ok:120"]


async def test_settle_may_exceed_the_reservation(env: StoreEnv) -> None:
    """A served request is always charged what it cost, even beyond its worst case."""
    budgets = (key_budget(1000),)
    await env.store.admit(admit_request("r1", budgets, 300))
    status = await env.store.settle(settlement("r1", budgets, 1500))
    assert (status[0].spent, status[0].reserved) == (1500, 0)
    assert not (await env.store.admit(admit_request("r2", budgets, 1))).admitted


async def test_settle_without_reservation_still_charges(env: StoreEnv) -> None:
    """A request admitted while the store was unreachable is charged when replayed."""
    budgets = (key_budget(1000),)
    status = await env.store.settle(settlement("r-offline", budgets, 70))
    assert (status[0].spent, status[0].reserved) == (70, 0)
    await env.store.settle(settlement("r-offline", budgets, 70))
    assert (await env.store.budget_status(TEAM, budgets))[0].spent == 70


async def test_duplicate_admit_does_not_reserve_twice(env: StoreEnv) -> None:
    budgets = (key_budget(1000),)
    await env.store.admit(admit_request("r1", budgets, 300))
    again = await env.store.admit(admit_request("r1", budgets, 300))
    assert again.admitted
    assert (await env.store.budget_status(TEAM, budgets))[0].reserved == 300


async def test_release_drops_reservation_without_charge_or_ledger(env: StoreEnv) -> None:
    budgets = (key_budget(1000),)
    await env.store.admit(admit_request("r1", budgets, 300))
    await env.store.release("r1", KEY, TEAM, budgets)
    status = await env.store.budget_status(TEAM, budgets)
    assert (status[0].spent, status[0].reserved) == (0, 0)
    await env.store.release("r1", KEY, TEAM, budgets)
    assert await ledger_of(env) == []
    assert await env.store.stale_reservations(0) == []


async def test_release_after_settle_changes_nothing(env: StoreEnv) -> None:
    budgets = (key_budget(1000),)
    await env.store.admit(admit_request("r1", budgets, 300))
    await env.store.settle(settlement("r1", budgets, 100))
    await env.store.release("r1", KEY, TEAM, budgets)
    status = await env.store.budget_status(TEAM, budgets)
    assert (status[0].spent, status[0].reserved) == (100, 0)


async def test_orphans_are_reconciled_at_the_reserved_amount(env: StoreEnv) -> None:
    budgets = (key_budget(1000), team_budget(5000))
    await env.store.admit(admit_request("orphan", budgets, 300))
    await env.store.admit(admit_request("live", budgets, 200))
    if env.is_memory:
        assert await env.store.stale_reservations(60) == []
        env.advance(120)
        await env.store.admit(admit_request("fresh", budgets, 100))
        stale = await env.store.stale_reservations(60)
        assert sorted(stale) == [("live", TEAM, 200), ("orphan", TEAM, 300)]
    else:
        assert await env.store.stale_reservations(3600) == []
        stale = await env.store.stale_reservations(0)
        assert ("orphan", TEAM, 300) in stale
    entry = await env.store.reconcile("orphan", TEAM)
    assert entry is not None
    assert (entry.status, entry.cost, entry.key_id, entry.team) == ("reconciled", 300, KEY, TEAM)
    assert await env.store.reconcile("orphan", TEAM) is None
    status = await env.store.budget_status(TEAM, budgets)
    assert status[0].spent == 300
    # A late settle of the reconciled request is a no-op: it was already charged.
    await env.store.settle(settlement("orphan", budgets, 10))
    status = await env.store.budget_status(TEAM, budgets)
    assert status[0].spent == 300
    assert "orphan:reconciled:300" in await ledger_of(env)
    assert all(rid != "orphan" for rid, _, _ in await env.store.stale_reservations(0))


async def test_reconcile_of_a_settled_request_is_none(env: StoreEnv) -> None:
    budgets = (key_budget(1000),)
    await env.store.admit(admit_request("r1", budgets, 300))
    await env.store.settle(settlement("r1", budgets, 50))
    assert await env.store.reconcile("r1", TEAM) is None
    assert await ledger_of(env) == ["r1:ok:50"]


def _next_midnight(ts: float) -> float:
    day = datetime.fromtimestamp(ts, UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _next_month(ts: float) -> float:
    d = datetime.fromtimestamp(ts, UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


async def test_calendar_periods_reset_at_utc_boundaries(env: StoreEnv) -> None:
    budgets = (key_budget(1000, Period.DAY), key_budget(1000, Period.MONTH))
    before = await env.now()
    result = await env.store.admit(admit_request("r1", budgets, 10))
    after = await env.now()
    day, month = result.budgets
    assert day.resets_at in {_next_midnight(before), _next_midnight(after)}
    assert month.resets_at in {_next_month(before), _next_month(after)}


async def test_month_boundary_in_december_and_leap_february(env: StoreEnv) -> None:
    if not env.is_memory:
        return  # Redis TIME cannot be moved; the same Lua runs for every date.
    budgets = (key_budget(1000, Period.MONTH),)
    for when, expected in [
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2028, 2, 10, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC)),
    ]:
        env.advance(when.timestamp() - env.now_sync())
        status = await env.store.budget_status(TEAM, budgets)
        assert status[0].resets_at == expected.timestamp()


async def test_settle_lands_in_the_day_of_admission(env: StoreEnv) -> None:
    """Admitted at 23:59:59 UTC, settled after midnight: the spend belongs to the day it was
    admitted (and reserved) in, and the new day starts clean."""
    if not env.is_memory:
        return  # covered for Redis in test_redis.py by ageing the reservation record
    budgets = (key_budget(1000, Period.DAY),)
    env.advance(_next_midnight(env.now_sync()) - 1 - env.now_sync())
    await env.store.admit(admit_request("r1", budgets, 900))
    env.advance(2)
    fresh = await env.store.budget_status(TEAM, budgets)
    assert (fresh[0].spent, fresh[0].reserved) == (0, 0)
    await env.store.settle(settlement("r1", budgets, 800))
    today = await env.store.budget_status(TEAM, budgets)
    assert (today[0].spent, today[0].reserved) == (0, 0)
    assert (await env.store.admit(admit_request("r2", budgets, 1000))).admitted
    env.advance(-2)
    yesterday = await env.store.budget_status(TEAM, budgets)
    assert (yesterday[0].spent, yesterday[0].reserved) == (800, 0)


async def test_rolling_window_forgets_old_spend(env: StoreEnv) -> None:
    if env.is_memory:
        budgets = (key_budget(1000, Period.ROLLING, window_s=3600),)
        await env.store.admit(admit_request("r1", budgets, 600))
        status = await env.store.settle(settlement("r1", budgets, 600))
        assert status[0].spent == 600
        assert status[0].resets_at is not None
        assert env.now_sync() + 3600 <= status[0].resets_at <= env.now_sync() + 3660
        env.advance(1800)
        assert not (await env.store.admit(admit_request("r2", budgets, 500))).admitted
        env.advance(1861)
        status = await env.store.budget_status(TEAM, budgets)
        assert (status[0].spent, status[0].resets_at) == (0, None)
        assert (await env.store.admit(admit_request("r3", budgets, 500))).admitted
        return
    budgets = (key_budget(1000, Period.ROLLING, window_s=1),)
    await env.store.admit(admit_request("r1", budgets, 600))
    assert (await env.store.settle(settlement("r1", budgets, 600)))[0].spent == 600

    async def forgotten() -> bool:
        return (await env.store.budget_status(TEAM, budgets))[0].spent == 0

    await wait_for(forgotten, timeout=3.0)
    assert (await env.store.admit(admit_request("r2", budgets, 900))).admitted


async def test_rolling_reservation_is_held_until_settled(env: StoreEnv) -> None:
    budgets = (team_budget(1000, Period.ROLLING, window_s=60),)
    await env.store.admit(admit_request("r1", budgets, 700))
    assert not (await env.store.admit(admit_request("r2", budgets, 400))).admitted
    await env.store.release("r1", KEY, TEAM, budgets)
    assert (await env.store.admit(admit_request("r2", budgets, 400))).admitted


async def test_budgets_of_different_teams_are_independent(env: StoreEnv) -> None:
    a = (team_budget(100, team="a"),)
    b = (team_budget(100, team="b"),)
    assert (await env.store.admit(admit_request("r1", a, 100, team="a"))).admitted
    assert (await env.store.admit(admit_request("r2", b, 100, team="b"))).admitted
    assert not (await env.store.admit(admit_request("r3", a, 1, team="a"))).admitted
