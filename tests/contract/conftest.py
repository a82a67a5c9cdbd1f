"""One store contract, run against every store: the in-process store and a real Redis.

Redis tests use the shared server at 127.0.0.1:6379 (override with ROUTER_TEST_REDIS_URL)
under a random key prefix per test, and delete only their own keys afterwards. The memory
store gets a fake clock that tests move forward; Redis keeps its own TIME, so tests that
need time to pass on Redis use very short windows and bounded polling.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio

from router.store.base import Store
from router.store.factory import open_store

REDIS_URL = os.environ.get("ROUTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# A Wednesday noon in UTC, far from any period boundary unless a test moves it there.
START = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def redis_available() -> bool:
    try:
        with redis.Redis.from_url(
            REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        ) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


@dataclass
class StoreEnv:
    """A store under test plus what a test needs to drive it."""

    kind: str
    store: Store
    prefix: str
    clock: FakeClock | None
    _peers: list[Store] = field(default_factory=list)

    @property
    def is_memory(self) -> bool:
        return self.clock is not None

    def advance(self, seconds: float) -> None:
        """Move the memory store's clock; Redis tests must not call this."""
        assert self.clock is not None, "only the memory store has a movable clock"
        self.clock.advance(seconds)

    def now_sync(self) -> float:
        assert self.clock is not None, "only the memory store has a movable clock"
        return self.clock.now

    def peer(self) -> Store:
        """A second handle on the same state, as a second replica would hold. In-process
        state is only shared within one process, so the memory store is its own peer."""
        if self.is_memory:
            return self.store
        peer = open_store(REDIS_URL, key_prefix=self.prefix, timeout_s=2.0)
        self._peers.append(peer)
        return peer

    async def now(self) -> float:
        if self.clock is not None:
            return self.clock.now
        async with redis.asyncio.Redis.from_url(REDIS_URL) as client:
            seconds, micros = await client.time()
        return seconds + micros / 1e6


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 3.0, interval: float = 0.02
) -> None:
    """Bounded polling, for the few expiries that only Redis TIME can bring about."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def delete_prefix(prefix: str) -> None:
    async with redis.asyncio.Redis.from_url(REDIS_URL) as client:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)


async def dump_prefix(prefix: str) -> list[Any]:
    """Every value stored under the prefix, whatever its type."""
    out: list[Any] = []
    async with redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True) as client:
        async for key in client.scan_iter(match=f"{prefix}:*", count=500):
            out.append(key)
            kind = await client.type(key)
            if kind == "string":
                out.append(await client.get(key))
            elif kind == "hash":
                out.append(await client.hgetall(key))
            elif kind == "zset":
                out.append(await client.zrange(key, 0, -1, withscores=True))
            elif kind == "set":
                out.append(await client.smembers(key))
            elif kind == "stream":
                out.append(await client.xrange(key))
            elif kind == "list":
                out.append(await client.lrange(key, 0, -1))
    return out


@asynccontextmanager
async def redis_store_env() -> AsyncIterator[StoreEnv]:
    """A Redis store under a fresh prefix, deleted afterwards."""
    if not redis_available():
        pytest.fail(f"no Redis at {REDIS_URL}: start one (see README)")
    prefix = f"rt-test-{uuid.uuid4().hex[:12]}"
    store = open_store(REDIS_URL, key_prefix=prefix, timeout_s=2.0)
    store_env = StoreEnv("redis", store, prefix, None)
    try:
        yield store_env
    finally:
        for peer in store_env._peers:
            await peer.close()
        await store.close()
        await delete_prefix(prefix)


@asynccontextmanager
async def memory_store_env() -> AsyncIterator[StoreEnv]:
    """The in-process store on a clock the test moves."""
    prefix = f"rt-test-{uuid.uuid4().hex[:12]}"
    clock = FakeClock()
    store = open_store("memory://", key_prefix=prefix, timeout_s=1.0, clock=clock)
    try:
        yield StoreEnv("memory", store, prefix, clock)
    finally:
        await store.close()


@pytest.fixture
async def memory_env() -> AsyncIterator[StoreEnv]:
    async with memory_store_env() as store_env:
        yield store_env


@pytest.fixture(params=["memory", "redis"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[StoreEnv]:
    opened = memory_store_env() if request.param == "memory" else redis_store_env()
    async with opened as store_env:
        yield store_env
