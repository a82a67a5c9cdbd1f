"""What only the Redis store can show: slots, secrets at rest, failures, reconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources

import pytest
import redis.asyncio
from redis.crc import key_slot

from router.core.model import Price
from router.keys import generate_key, hash_key
from router.store.base import KeyRecord, Limits, Period, StoreError
from router.store.factory import open_store
from router.store.memory import MemoryStore
from router.store.redis import RedisStore
from router.store.windows import DAY_MS
from tests.contract.builders import KEY, TEAM, admit_request, key_budget, settlement
from tests.contract.conftest import REDIS_URL, StoreEnv, dump_prefix, redis_store_env
from tests.redis_servers import RedisServer, free_port, redis_binaries_available

needs_binaries = pytest.mark.skipif(
    not redis_binaries_available(), reason="redis-server binaries not installed"
)


@pytest.fixture
async def redis_env() -> AsyncIterator[StoreEnv]:
    async with redis_store_env() as store_env:
        yield store_env


async def test_plaintext_key_is_never_stored(redis_env: StoreEnv) -> None:
    store = redis_env.store
    for pepper in (None, "server-pepper"):
        plaintext, key_id = generate_key()
        record = KeyRecord(
            key_id,
            hash_key(plaintext, pepper),
            TEAM,
            name="svc",
            budgets=(key_budget(1_000_000, key_id=key_id),),
        )
        await store.put_key(record)
        await store.admit(admit_request("r-" + key_id, record.budgets, 10, key_id=key_id))
        await store.settle(settlement("r-" + key_id, record.budgets, 5, key_id=key_id))
        dump = repr(await dump_prefix(redis_env.prefix))
        assert record.key_hash in dump
        assert plaintext not in dump
        assert plaintext.removeprefix("sk-rt-") not in dump


async def test_every_key_of_a_team_shares_one_slot(redis_env: StoreEnv) -> None:
    budgets = (key_budget(1000), key_budget(1000, Period.ROLLING, window_s=60))
    limits = Limits(rpm=5, tpm=100, max_concurrency=2)
    await redis_env.store.admit(admit_request("r1", budgets, 10, limits=limits))
    await redis_env.store.admit(admit_request("r2", budgets, 10, limits=limits))
    await redis_env.store.settle(settlement("r1", budgets, 5))
    async with redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True) as client:
        keys = [k async for k in client.scan_iter(match=f"{redis_env.prefix}:*{{t:{TEAM}}}*")]
    assert len(keys) >= 8
    assert {key_slot(k.encode()) for k in keys} == {key_slot(f"t:{TEAM}".encode())}


async def test_settle_lands_in_the_day_of_admission(redis_env: StoreEnv) -> None:
    """Age a reservation into yesterday (Redis TIME cannot be moved): its spend must land in
    yesterday's counters, the ones it reserved on, not today's."""
    budgets = (key_budget(1000, Period.DAY),)
    await redis_env.store.admit(admit_request("r1", budgets, 900))
    names = redis_env.store._names  # type: ignore[attr-defined]
    async with redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True) as client:
        record = json.loads(await client.hget(names.reservations(TEAM), "r1"))
        key, reserved_field, spent_field = record["budgets"][0][:3]
        today = int(spent_field[2:])
        record["budgets"][0][1:3] = [f"r:{today - 1}", f"s:{today - 1}"]
        await client.hset(names.reservations(TEAM), "r1", json.dumps(record))
        await client.hdel(key, reserved_field)
        await client.hset(key, f"r:{today - 1}", 900)
        await redis_env.store.settle(settlement("r1", budgets, 800))
        fields = await client.hgetall(key)
    assert fields == {f"s:{today - 1}": "800"}
    status = await redis_env.store.budget_status(TEAM, budgets)
    assert (status[0].spent, status[0].reserved) == (0, 0)
    assert status[0].resets_at == (today + 1) * DAY_MS / 1000


def test_lua_scripts_name_their_keys_argv_and_units() -> None:
    lua = resources.files("router.store").joinpath("lua")
    for script in lua.iterdir():
        text = script.read_text()
        assert text.startswith("-- "), script.name
        head = text.split("\n\n")[0]
        assert "KEYS" in head and "ARGV" in head, script.name
        assert "ms" in head or "micro-dollars" in head, script.name


async def test_unreachable_redis_is_a_store_error() -> None:
    store = open_store(
        f"redis://127.0.0.1:{free_port()}/0", key_prefix="rt-test-down", timeout_s=0.2
    )
    try:
        with pytest.raises(StoreError) as caught:
            await store.admit(admit_request("r1"))
        assert not caught.value.maybe_applied
        with pytest.raises(StoreError):
            await store.ping()
    finally:
        await store.close()


@needs_binaries
async def test_a_hung_redis_times_out_as_a_store_error() -> None:
    with RedisServer() as server:
        store = open_store(server.url, key_prefix="rt-test-hang", timeout_s=0.2)
        try:
            await store.ping()
            with server.frozen():
                started = asyncio.get_running_loop().time()
                with pytest.raises(StoreError) as caught:
                    await store.admit(admit_request("r1", (key_budget(1000),)))
                assert asyncio.get_running_loop().time() - started < 2.0
                assert caught.value.maybe_applied
        finally:
            await store.close()


@needs_binaries
async def test_price_watch_survives_a_redis_restart() -> None:
    with RedisServer() as server:
        writer = open_store(server.url, key_prefix="rt-test-watch", timeout_s=0.5)
        reader = open_store(server.url, key_prefix="rt-test-watch", timeout_s=0.5)
        seen: asyncio.Queue[Price] = asyncio.Queue()
        reader.watch_prices(seen.put_nowait)
        try:
            first = await writer.add_price(Price("m", 0, 0.0, 1, 2))
            assert await asyncio.wait_for(seen.get(), 2.0) == first
            server.kill()
            server.start()
            second = await writer.add_price(Price("after-restart", 0, 0.0, 3, 4))
            while (got := await asyncio.wait_for(seen.get(), 5.0)) != second:
                pass
            assert got == second
        finally:
            await writer.close()
            await reader.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://user:secret@127.0.0.1:6380/1",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        "redis+cluster://:p%40ss@[::1]:7000",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
        "redis+sentinel://:pw@127.0.0.1:26379/mymaster/2?sentinel_password=s",
    ],
)
async def test_factory_maps_redis_urls_to_the_redis_store(url: str) -> None:
    store = open_store(url, key_prefix="rt-test", timeout_s=0.5)
    assert isinstance(store, RedisStore)
    await store.close()


async def test_factory_maps_memory_and_rejects_the_rest() -> None:
    assert isinstance(open_store("memory://", key_prefix="p", timeout_s=1), MemoryStore)
    with pytest.raises(ValueError, match="unsupported store URL scheme"):
        open_store("mongodb://x", key_prefix="p", timeout_s=1)
    with pytest.raises(ValueError, match="service name"):
        open_store("redis+sentinel://127.0.0.1:26379", key_prefix="p", timeout_s=1)
    with pytest.raises(ValueError, match="braces"):
        open_store("redis://127.0.0.1:6379", key_prefix="{p}", timeout_s=1)


async def test_settle_without_reservation_for_an_unknown_key_lease_is_harmless(
    redis_env: StoreEnv,
) -> None:
    status = await redis_env.store.settle(settlement("lost", (), 5))
    assert status == ()
    await redis_env.store.release("lost", KEY, TEAM, ())
