"""Choose the store from one URL, as operators write it: `memory://` for the in-process
store (single router process), or any Redis URL that router/store/redis_url.py reads.

The scheme picks an opener from one explicit map; nothing registers itself on import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from router.store.base import Clock, Store
from router.store.memory import MemoryStore
from router.store.redis import RedisStore
from router.store.redis_url import SCHEMES, connect


@dataclass(frozen=True, slots=True)
class _Options:
    key_prefix: str
    timeout_s: float
    clock: Clock
    max_connections: int


def _memory(parts: SplitResult, opts: _Options) -> Store:
    return MemoryStore(clock=opts.clock)


def _redis(parts: SplitResult, opts: _Options) -> Store:
    connection = connect(parts.geturl(), opts.timeout_s, opts.max_connections)
    return RedisStore(
        connection.client,
        key_prefix=opts.key_prefix,
        on_close=connection.closers,
        scripts=connection.scripts,
    )


_OPENERS: dict[str, Callable[[SplitResult, _Options], Store]] = {
    "memory": _memory,
    **dict.fromkeys(SCHEMES, _redis),
}


def open_store(
    url: str,
    *,
    key_prefix: str,
    timeout_s: float,
    clock: Clock = time.time,
    max_connections: int = 64,
) -> Store:
    """The store named by `url`. Connections open lazily, on first use."""
    parts = urlsplit(url)
    opener = _OPENERS.get(parts.scheme)
    if opener is None:
        raise ValueError(
            f"unsupported store URL scheme {parts.scheme!r}; "
            f"use one of {', '.join(sorted(_OPENERS))}"
        )
    return opener(parts, _Options(key_prefix, timeout_s, clock, max_connections))
