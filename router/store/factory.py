"""Choose the store from one URL, as operators write it.

    memory://                                     in-process (single router process)
    redis://[user:pass@]host:port[/db]            standalone Redis (rediss:// for TLS)
    redis+cluster://[user:pass@]host:port[,host:port...]    Redis Cluster seed nodes
    redis+sentinel://[user:pass@]host:port[,host:port...]/service_name[/db]

The scheme picks an opener from one explicit map; nothing registers itself on import.
Every Redis client gets the same timeouts, decodes replies to str, and retries a failed
command once (safe: every script is idempotent per request_id).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from router.store.base import Clock, Store
from router.store.memory import MemoryStore
from router.store.redis import RedisStore


@dataclass(frozen=True, slots=True)
class _Options:
    key_prefix: str
    timeout_s: float
    clock: Clock
    max_connections: int


def _client_kwargs(opts: _Options) -> dict[str, Any]:
    return {
        "socket_timeout": opts.timeout_s,
        "socket_connect_timeout": opts.timeout_s,
        "decode_responses": True,
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 30,
    }


def _hosts(parts: SplitResult) -> list[tuple[str, int]]:
    hosts = parts.netloc.rpartition("@")[2]
    out = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"store URL host {item!r} must be host:port")
        out.append((host.strip("[]"), int(port)))
    return out


def _credentials(parts: SplitResult) -> dict[str, Any]:
    userinfo, at, _ = parts.netloc.rpartition("@")
    if not at:
        return {}
    user, colon, password = userinfo.partition(":")
    out: dict[str, Any] = {"password": unquote(password)} if colon else {}
    if user:
        out["username"] = unquote(user)
    return out


def _memory(parts: SplitResult, opts: _Options) -> Store:
    return MemoryStore(clock=opts.clock)


def _standalone(parts: SplitResult, opts: _Options) -> Store:
    pool = BlockingConnectionPool.from_url(
        parts.geturl(), max_connections=opts.max_connections, timeout=opts.timeout_s,
        **_client_kwargs(opts))
    return RedisStore(Redis.from_pool(pool), key_prefix=opts.key_prefix)


def _cluster(parts: SplitResult, opts: _Options) -> Store:
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in _hosts(parts)],
        ssl=parts.scheme.startswith("rediss"), max_connections=opts.max_connections,
        **_credentials(parts), **_client_kwargs(opts))
    return RedisStore(client, key_prefix=opts.key_prefix)


def _sentinel(parts: SplitResult, opts: _Options) -> Store:
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a redis+sentinel:// URL needs the service name as its path")
    query = parse_qs(parts.query)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": opts.timeout_s,
                                       "socket_connect_timeout": opts.timeout_s}
    if "sentinel_password" in query:
        sentinel_kwargs["password"] = query["sentinel_password"][0]
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        _hosts(parts), sentinel_kwargs=sentinel_kwargs, **_credentials(parts),
        **_client_kwargs(opts))
    master = sentinel.master_for(path[0], db=int(path[1]) if len(path) > 1 else 0)
    closers = [s.aclose for s in sentinel.sentinels]
    return RedisStore(master, key_prefix=opts.key_prefix, on_close=closers)


_OPENERS: dict[str, Callable[[SplitResult, _Options], Store]] = {
    "memory": _memory,
    "redis": _standalone,
    "rediss": _standalone,
    "redis+cluster": _cluster,
    "rediss+cluster": _cluster,
    "redis+sentinel": _sentinel,
}


def open_store(url: str, *, key_prefix: str, timeout_s: float, clock: Clock = time.time,
               max_connections: int = 64) -> Store:
    """The store named by `url`. Connections open lazily, on first use."""
    parts = urlsplit(url)
    opener = _OPENERS.get(parts.scheme)
    if opener is None:
        raise ValueError(f"unsupported store URL scheme {parts.scheme!r}; "
                         f"use one of {', '.join(sorted(_OPENERS))}")
    return opener(parts, _Options(key_prefix, timeout_s, clock, max_connections))
