"""Price versions and their propagation, key records and team budgets, on every store."""

from __future__ import annotations

import asyncio

from router.core.model import Price
from router.store.base import KeyRecord, Limits, Period
from tests.contract.builders import key_budget, team_budget
from tests.contract.conftest import StoreEnv


def price(model: str, effective_from: float = 0.0, input_per_mtok: int = 2_000_000) -> Price:
    return Price(model, 0, effective_from, input_per_mtok, 8_000_000, 500_000, 0)


async def test_versions_are_numbered_per_model_oldest_first(env: StoreEnv) -> None:
    first = await env.store.add_price(price("full"))
    second = await env.store.add_price(price("full", 2_000_000_000.0, 3_000_000))
    other = await env.store.add_price(price("mini", input_per_mtok=50_000))
    assert (first.version, second.version, other.version) == (1, 2, 1)
    prices = await env.store.prices()
    assert [p.version for p in prices["full"]] == [1, 2]
    assert prices["full"][1] == Price("full", 2, 2_000_000_000.0, 3_000_000, 8_000_000, 500_000, 0)
    assert prices["mini"] == [other]


async def test_large_prices_and_no_cached_rate_round_trip(env: StoreEnv) -> None:
    big = Price("huge", 0, 1_764_000_000.125, 987_654_321_012_345, 1, None, 12_345_678_901)
    stored = await env.store.add_price(big)
    assert (await env.store.prices())["huge"] == [stored]
    assert stored.input_per_mtok == 987_654_321_012_345
    assert stored.cached_input_per_mtok is None
    assert stored.effective_from == 1_764_000_000.125


async def test_a_price_added_by_one_replica_reaches_another(env: StoreEnv) -> None:
    peer = env.peer()
    seen: asyncio.Queue[Price] = asyncio.Queue()

    async def listener(p: Price) -> None:
        if p.model == "watched":
            await seen.put(p)

    peer.watch_prices(listener)
    added = await env.store.add_price(price("watched"))
    got = await asyncio.wait_for(seen.get(), timeout=2.0)
    assert got == added
    second = await env.store.add_price(price("watched", input_per_mtok=1))
    while (got := await asyncio.wait_for(seen.get(), timeout=2.0)) != second:
        assert got == added  # a resubscription may replay what was already seen


async def test_a_failing_listener_does_not_stop_others(env: StoreEnv) -> None:
    seen = asyncio.Event()

    def broken(p: Price) -> None:
        raise RuntimeError("listener bug")

    def good(p: Price) -> None:
        if p.model == "m":
            seen.set()

    env.store.watch_prices(broken)
    env.store.watch_prices(good)
    await env.store.add_price(price("m"))
    await asyncio.wait_for(seen.wait(), timeout=2.0)


def record(key_id: str, key_hash: str, team: str = "team-a", **kw: object) -> KeyRecord:
    return KeyRecord(key_id, key_hash, team, **kw)  # type: ignore[arg-type]


async def test_keys_by_hash_and_id(env: StoreEnv) -> None:
    rec = record(
        "k1",
        "a" * 64,
        name="svc",
        tags=frozenset({"batch", "eu"}),
        budgets=(
            key_budget(5_000_000, key_id="k1"),
            key_budget(1, Period.ROLLING, key_id="k1", window_s=300, soft=1),
        ),
        limits=Limits(rpm=10, tpm=None, max_concurrency=2),
        created_at=1.5,
    )
    await env.store.put_key(rec)
    await env.store.put_key(record("k2", "b" * 64, team="team-b", created_at=2.0))
    assert await env.store.key_by_hash("a" * 64) == rec
    assert await env.store.key_by_id("k1") == rec
    assert await env.store.key_by_hash("c" * 64) is None
    assert await env.store.key_by_id("nope") is None
    assert [r.key_id for r in await env.store.list_keys()] == ["k1", "k2"]


async def test_rotating_a_key_retires_its_old_hash(env: StoreEnv) -> None:
    await env.store.put_key(record("k1", "a" * 64))
    await env.store.put_key(record("k1", "d" * 64, disabled=True))
    assert await env.store.key_by_hash("a" * 64) is None
    rotated = await env.store.key_by_hash("d" * 64)
    assert rotated is not None and rotated.disabled
    assert [r.key_hash for r in await env.store.list_keys()] == ["d" * 64]


async def test_team_budgets(env: StoreEnv) -> None:
    assert await env.store.team_budgets("team-a") == ()
    budgets = (team_budget(5_000_000), team_budget(9, Period.ROLLING, window_s=60))
    await env.store.set_team_budgets("team-a", budgets)
    assert await env.store.team_budgets("team-a") == budgets
    await env.store.set_team_budgets("team-a", ())
    assert await env.store.team_budgets("team-a") == ()
