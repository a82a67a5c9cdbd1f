"""The Redis supply store: breakers, capacity leases and provider quotas shared by every
replica. Each multi-key change is one Lua script from router/supply/lua (run by SHA) over
keys that share the backend's hash tag, `<prefix>:{b:<backend>}:...`, so it also runs on
Redis Cluster. Time inside scripts is Redis TIME."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

from redis.exceptions import RedisClusterException, RedisError

from router.core.model import BreakerState
from router.store.base import StoreError
from router.store.redis_url import RedisClient
from router.supply.model import BreakerView, Force, Outcome, Slot, SyncView
from router.supply.settings import SupplySettings

_VERBS = ("record", "probe", "acquire", "sync", "force")


@cache
def script_source(verb: str) -> str:
    """`_lib.lua` followed by the script named by its verb."""
    lua = resources.files("router.supply").joinpath("lua")
    return (
        lua.joinpath("_lib.lua").read_text("utf-8")
        + "\n"
        + lua.joinpath(f"{verb}.lua").read_text("utf-8")
    )


@contextmanager
def _guard(op: str) -> Iterator[None]:
    """Every Redis failure leaves the store as StoreError, naming the operation."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
        raise StoreError(f"redis supply {op} failed: {type(exc).__name__}: {exc}") from exc


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _breaker_args(settings: SupplySettings) -> list[str]:
    b = settings.breaker
    return [
        str(b.consecutive_failures),
        repr(b.failure_rate),
        str(b.min_requests),
        _ms(b.window_s),
        _ms(b.cooldown_s),
        str(b.half_open_probes),
        _ms(settings.retry.max_retry_after_s),
    ]


def _view(reply: Sequence[Any]) -> BreakerView:
    return BreakerView(
        state=BreakerState(reply[0]),
        open_for=int(reply[1]) / 1000,
        hold_for=int(reply[2]) / 1000,
        forced=Force(reply[3]),
        draining=reply[4] == "1",
    )


def _fraction(raw: str) -> float | None:
    return None if raw == "" else float(raw)


class RedisSupplyStore:
    """Supply store over a redis-py asyncio client created with decode_responses=True."""

    def __init__(self, client: RedisClient, *, key_prefix: str) -> None:
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            raise ValueError(f"key prefix {key_prefix!r} must be non-empty and free of braces")
        # redis-py types replies as unions; with decode_responses every reply is str.
        self._client: Any = client
        self._prefix = key_prefix
        self._scripts = {verb: client.register_script(script_source(verb)) for verb in _VERBS}
        self._initialized = False
        self._initializing = asyncio.Lock()

    async def _ready(self) -> None:
        """Connect once before the first command: redis-py's cluster client races when
        several first commands start its lazy initialisation at once."""
        if self._initialized:
            return
        async with self._initializing:
            if not self._initialized:
                with _guard("initialize"):
                    await self._client.initialize()
                self._initialized = True

    def _key(self, backend: str, name: str) -> str:
        return f"{self._prefix}:{{b:{quote(backend, safe='-_.@')}}}:{name}"

    def _breaker_keys(self, backend: str) -> list[str]:
        return [self._key(backend, "breaker"), self._key(backend, "permits")]

    async def _run(self, verb: str, keys: list[str], args: list[str]) -> Any:
        await self._ready()
        with _guard(verb):
            return await self._scripts[verb](keys=keys, args=args)

    async def record(self, backend: str, outcome: Outcome, settings: SupplySettings) -> BreakerView:
        retry_after = "" if outcome.retry_after is None else _ms(outcome.retry_after)
        reply = await self._run(
            "record",
            self._breaker_keys(backend),
            [
                *_breaker_args(settings),
                str(outcome.successes),
                str(outcome.failures),
                retry_after,
                outcome.probe_id or "",
            ],
        )
        return _view(reply)

    async def try_probe(
        self, backend: str, probe_id: str, ttl_s: float, settings: SupplySettings
    ) -> tuple[bool, BreakerView]:
        reply = await self._run(
            "probe", self._breaker_keys(backend), [*_breaker_args(settings), probe_id, _ms(ttl_s)]
        )
        return reply[0] == "1", _view(reply[1:])

    async def acquire(
        self, backend: str, lease_id: str, tokens: int, settings: SupplySettings
    ) -> Slot:
        capacity, quota = settings.capacity, settings.quota
        reply = await self._run(
            "acquire",
            [self._key(backend, "leases"), self._key(backend, "quota")],
            [
                lease_id,
                _opt(capacity.max_in_flight if capacity else None),
                _ms(capacity.lease_ttl_s if capacity else 0),
                _opt(quota.rpm if quota else None),
                _opt(quota.tpm if quota else None),
                str(tokens),
            ],
        )
        verdict, retry_ms = reply[0], int(reply[3])
        return Slot(
            granted=verdict == "ok",
            denied_by=None if verdict == "ok" else verdict,
            in_flight=int(reply[1]),
            quota_left=_fraction(reply[2]),
            retry_after=retry_ms / 1000 if retry_ms else None,
        )

    async def release(self, backend: str, lease_id: str) -> None:
        await self._ready()
        with _guard("release"):
            await self._client.zrem(self._key(backend, "leases"), lease_id)

    async def sync(
        self, backend: str, successes: int, leases: Sequence[str], settings: SupplySettings
    ) -> SyncView:
        capacity, quota = settings.capacity, settings.quota
        reply = await self._run(
            "sync",
            [
                *self._breaker_keys(backend),
                self._key(backend, "leases"),
                self._key(backend, "quota"),
            ],
            [
                *_breaker_args(settings),
                str(successes),
                _ms(capacity.lease_ttl_s if capacity else 0),
                _opt(quota.rpm if quota else None),
                _opt(quota.tpm if quota else None),
                *leases,
            ],
        )
        return SyncView(_view(reply[:5]), int(reply[5]), _fraction(reply[6]))

    async def force(self, backend: str, force: Force, settings: SupplySettings) -> BreakerView:
        reply = await self._run(
            "force", self._breaker_keys(backend), [*_breaker_args(settings), force.value]
        )
        return _view(reply)

    async def drain(self, backend: str, draining: bool) -> None:
        await self._ready()
        with _guard("drain"):
            await self._client.hset(
                self._key(backend, "breaker"), "drain", "1" if draining else "0"
            )

    async def close(self) -> None:
        with _guard("close"):
            await self._client.aclose()
