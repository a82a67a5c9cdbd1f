"""The Redis store on Redis Cluster (scripts whose keys share one slot) and via Sentinel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from router.core.model import Price
from router.store.base import KeyRecord, Limits, Period, Store
from router.store.factory import open_store
from tests.contract.builders import KEY, TEAM, admit_request, key_budget, settlement, team_budget
from tests.redis_servers import RedisCluster, RedisSentinel, redis_binaries_available

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not redis_binaries_available(), reason="redis-server not installed"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster(masters=3) as running:
        yield running


async def scenario(store: Store, peer: Store) -> None:
    """Every script and read path once, across two teams that hash to different slots."""
    seen: asyncio.Queue[Price] = asyncio.Queue()
    peer.watch_prices(seen.put_nowait)
    added = await store.add_price(Price("full", 0, 0.0, 2_000_000, 8_000_000, 500_000))
    while (await asyncio.wait_for(seen.get(), 3.0)) != added:
        pass
    assert (await peer.prices())["full"] == [added]

    await store.put_key(KeyRecord(KEY, "h" * 64, TEAM))
    assert (await peer.key_by_hash("h" * 64)) == KeyRecord(KEY, "h" * 64, TEAM)
    await store.set_team_budgets("team-b", (team_budget(10, team="team-b"),))
    assert len(await peer.team_budgets("team-b")) == 1

    limits = Limits(rpm=100, tpm=10_000, max_concurrency=5)
    for team in (TEAM, "team-b", "team-c"):
        budgets = (key_budget(1000), team_budget(5000, Period.ROLLING, team=team, window_s=600))
        assert (
            await store.admit(admit_request(f"{team}-1", budgets, 300, team=team, limits=limits))
        ).admitted
        assert (
            await peer.admit(admit_request(f"{team}-2", budgets, 300, team=team, limits=limits))
        ).admitted
        assert (
            await store.admit(admit_request(f"{team}-3", budgets, 300, team=team, limits=limits))
        ).admitted
        status = await store.settle(settlement(f"{team}-1", budgets, 100, team=team))
        assert [(s.spent, s.reserved) for s in status] == [(100, 600), (100, 600)]
        await peer.release(f"{team}-2", KEY, team, budgets)
    stale = await store.stale_reservations(0)
    assert sorted(rid for rid, _, _ in stale) == ["team-a-3", "team-b-3", "team-c-3"]
    for rid, team, _ in stale:
        entry = await peer.reconcile(rid, team)
        assert entry is not None and entry.cost == 300
    ledger = [e async for e in peer.ledger()]
    assert sorted(e.request_id for e in ledger) == sorted(
        f"{t}-{n}" for t in (TEAM, "team-b", "team-c") for n in (1, 3)
    )
    assert [e.ts for e in ledger] == sorted(e.ts for e in ledger)


async def test_cluster(cluster: RedisCluster) -> None:
    prefix = f"rt-test-{uuid.uuid4().hex[:8]}"
    store = open_store(cluster.url, key_prefix=prefix, timeout_s=2.0)
    peer = open_store(
        f"redis+cluster://127.0.0.1:{cluster.ports[1]},127.0.0.1:{cluster.ports[2]}",
        key_prefix=prefix,
        timeout_s=2.0,
    )
    try:
        await scenario(store, peer)
    finally:
        await store.close()
        await peer.close()


async def test_sentinel() -> None:
    with RedisSentinel() as sentinel:
        store = open_store(sentinel.url, key_prefix="rt-test-sentinel", timeout_s=2.0)
        peer = open_store(sentinel.url, key_prefix="rt-test-sentinel", timeout_s=2.0)
        try:
            await scenario(store, peer)
        finally:
            await store.close()
            await peer.close()
