"""Build the supply manager once at start-up: the store from the store URL (through one
explicit map of schemes), each backend's settings from the config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from router.backends.base import Backend
from router.metrics import Metrics
from router.store.redis_url import SCHEMES, connect
from router.supply.clock import Clock, MonotonicClock
from router.supply.manager import SupplyManager
from router.supply.memory import MemorySupplyStore
from router.supply.redis_store import RedisSupplyStore
from router.supply.store import SupplyStore

if TYPE_CHECKING:
    from router.config import RouterConfig


def _memory(url: str, key_prefix: str, timeout_s: float, clock: Clock) -> SupplyStore:
    return MemorySupplyStore(clock)


def _redis(url: str, key_prefix: str, timeout_s: float, clock: Clock) -> SupplyStore:
    return RedisSupplyStore(connect(url, timeout_s).client, key_prefix=key_prefix)


_OPENERS: dict[str, Callable[[str, str, float, Clock], SupplyStore]] = {
    "memory": _memory,
    **dict.fromkeys(SCHEMES, _redis),
}


def open_supply_store(url: str, *, key_prefix: str, timeout_s: float, clock: Clock) -> SupplyStore:
    scheme = url.partition("://")[0]
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise ValueError(
            f"unsupported store URL scheme {scheme!r}; use one of {', '.join(sorted(_OPENERS))}"
        )
    return opener(url, key_prefix, timeout_s, clock)


def build_supply(
    config: RouterConfig,
    backends: Mapping[str, Backend],
    *,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
) -> SupplyManager:
    """The manager for every configured backend, sharing state through `store.url`."""
    clock = clock or MonotonicClock()
    store = open_supply_store(
        config.store.url,
        key_prefix=config.store.key_prefix,
        timeout_s=config.store.timeout_s,
        clock=clock,
    )
    settings = {name: backend.supply for name, backend in config.backends.items()}
    return SupplyManager(settings, store, backends, clock=clock, metrics=metrics)
