"""A redis-py asyncio client from a store URL, for the supply store.

The same URL forms as router/store/factory.py (redis://, rediss://, redis+cluster://,
redis+sentinel://service[/db]) and the same fail-fast options. It lives here until the store
factory exposes a client builder of its own; then this module goes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

RedisClient = Redis | RedisCluster


def _options(timeout_s: float) -> dict[str, Any]:
    return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
            "decode_responses": True, "retry": Retry(NoBackoff(), 1)}


def _hosts(parts: SplitResult) -> list[tuple[str, int]]:
    out = []
    for item in parts.netloc.rpartition("@")[2].split(","):
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


def redis_client(url: str, timeout_s: float, max_connections: int = 64) -> RedisClient:
    """The client for a redis URL; connections open lazily, on first use. A standalone
    client waits up to `timeout_s` for a free connection rather than failing at once."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("redis", "rediss"):
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections,
                                               timeout=timeout_s, **_options(timeout_s))
        return Redis.from_pool(pool)
    if scheme in ("redis+cluster", "rediss+cluster"):
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in _hosts(parts)],
                            ssl=scheme.startswith("rediss"), max_connections=max_connections,
                            **_credentials(parts), **_options(timeout_s))
    if scheme == "redis+sentinel":
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError("a redis+sentinel:// URL needs the service name as its path")
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _hosts(parts), sentinel_kwargs={"socket_timeout": timeout_s},
            **_credentials(parts), **_options(timeout_s))
        db = int(path[1]) if len(path) > 1 else 0
        master: Redis = sentinel.master_for(path[0], db=db)
        return master
    raise ValueError(f"unsupported store URL scheme {scheme!r} for the supply store")
