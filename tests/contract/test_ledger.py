"""The ledger: every settled or reconciled request, across teams, in time order."""

from __future__ import annotations

from router.store.base import LedgerEntry
from tests.contract.builders import admit_request, settlement, team_budget
from tests.contract.conftest import StoreEnv


async def entries(
    env: StoreEnv, since: float | None = None, until: float | None = None
) -> list[LedgerEntry]:
    return [e async for e in env.store.ledger(since, until)]


async def test_ledger_merges_teams_in_time_order(env: StoreEnv) -> None:
    order = [("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c"), ("b2", "b")]
    for rid, team in order:
        budgets = (team_budget(10_000, team=team),)
        await env.store.admit(admit_request(rid, budgets, 100, team=team, key_id=f"k-{team}"))
        await env.store.settle(settlement(rid, budgets, 10, team=team, key_id=f"k-{team}"))
        if env.is_memory:
            env.advance(0.01)
    got = await entries(env)
    assert [e.request_id for e in got] == [rid for rid, _ in order]
    assert [e.ts for e in got] == sorted(e.ts for e in got)


async def test_entries_round_trip_every_field(env: StoreEnv) -> None:
    budgets = (team_budget(10_000_000_000_000),)
    await env.store.settle(
        settlement(
            "r1",
            budgets,
            9_007_199_254_740,
            backend="full-eu",
            model="gpt-4.1",
            prompt_tokens=1200,
            completion_tokens=300,
            cached_tokens=1000,
            price_version=7,
            rule="long-context",
            fallbacks=("mini", "full-us"),
            latency_ms=1234,
            status="ok",
            extra={"counted": "1", "reserved": "42"},
        )
    )
    (entry,) = await entries(env)
    expected = settlement(
        "r1",
        budgets,
        9_007_199_254_740,
        backend="full-eu",
        model="gpt-4.1",
        prompt_tokens=1200,
        completion_tokens=300,
        cached_tokens=1000,
        price_version=7,
        rule="long-context",
        fallbacks=("mini", "full-us"),
        latency_ms=1234,
        status="ok",
        extra={"counted": "1", "reserved": "42"},
    ).entry
    assert entry.ts > 0
    assert entry == LedgerEntry(**{**_fields(expected), "ts": entry.ts})


def _fields(entry: LedgerEntry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in entry.__slots__}  # type: ignore[attr-defined]


async def test_ledger_filters_by_time(env: StoreEnv) -> None:
    budgets = (team_budget(10_000),)
    await env.store.settle(settlement("early", budgets, 1))
    (early,) = await entries(env)
    if env.is_memory:
        env.advance(10)
    else:
        await env.store.ping()
    await env.store.settle(settlement("late", budgets, 1))
    late = next(e for e in await entries(env) if e.request_id == "late")
    if late.ts == early.ts:
        return  # same millisecond on Redis: nothing to tell apart
    assert [e.request_id for e in await entries(env, since=late.ts)] == ["late"]
    assert [e.request_id for e in await entries(env, until=early.ts)] == ["early"]
    assert [e.request_id for e in await entries(env, since=early.ts, until=late.ts)] == [
        "early",
        "late",
    ]
