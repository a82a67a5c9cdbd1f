"""A redis-py asyncio client from one URL, as operators write it; used by every Redis-backed
store (budgets and keys, supply), so they parse URLs and set timeouts the same way.

    redis://[user:pass@]host:port[/db]            standalone Redis (rediss:// for TLS)
    redis+cluster://[user:pass@]host:port[,host:port...]    Redis Cluster seed nodes
    redis+sentinel://[user:pass@]host:port[,host:port...]/service_name[/db]

Every client gets the same timeouts, decodes replies to str, and retries a failed command
once (safe: every script is idempotent per request or per slot), remembering whether a
failed attempt may have run (router/store/redis_retry.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from router.store.redis_retry import AttemptAwareRetry
from router.store.resp import ScriptConnection

RedisClient = Redis | RedisCluster


@dataclass(slots=True)
class Connection:
    """A client, and what else must be closed with it (a Sentinel's own connections)."""

    client: RedisClient
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    scripts: ScriptConnection | None = None
    """The lean connection for the store's scripts, where the URL allows one."""


def _options(timeout_s: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "decode_responses": True,
        "retry": AttemptAwareRetry(NoBackoff(), 1),
        "health_check_interval": 30,
    }


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


def _standalone(parts: SplitResult, timeout_s: float, max_connections: int) -> Connection:
    pool = BlockingConnectionPool.from_url(
        parts.geturl(), max_connections=max_connections, timeout=timeout_s, **_options(timeout_s)
    )
    connection = Connection(Redis.from_pool(pool))
    if parts.scheme == "redis" and not parts.query:
        path = parts.path.strip("/")
        credentials = _credentials(parts)
        scripts = ScriptConnection(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            timeout_s=timeout_s,
            db=int(path) if path else 0,
            username=credentials.get("username"),
            password=credentials.get("password"),
        )
        connection.scripts = scripts
        connection.closers.append(scripts.aclose)
    return connection


def _cluster(parts: SplitResult, timeout_s: float, max_connections: int) -> Connection:
    return Connection(
        RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in _hosts(parts)],
            ssl=parts.scheme.startswith("rediss"),
            max_connections=max_connections,
            **_credentials(parts),
            **_options(timeout_s),
        )
    )


def _sentinel(parts: SplitResult, timeout_s: float, max_connections: int) -> Connection:
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a redis+sentinel:// URL needs the service name as its path")
    query = parse_qs(parts.query)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
    }
    if "sentinel_password" in query:
        sentinel_kwargs["password"] = query["sentinel_password"][0]
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        _hosts(parts), sentinel_kwargs=sentinel_kwargs, **_credentials(parts), **_options(timeout_s)
    )
    master: Redis = sentinel.master_for(path[0], db=int(path[1]) if len(path) > 1 else 0)
    return Connection(master, [s.aclose for s in sentinel.sentinels])


_CONNECTORS: dict[str, Callable[[SplitResult, float, int], Connection]] = {
    "redis": _standalone,
    "rediss": _standalone,
    "redis+cluster": _cluster,
    "rediss+cluster": _cluster,
    "redis+sentinel": _sentinel,
}

SCHEMES = frozenset(_CONNECTORS)


def connect(url: str, timeout_s: float, max_connections: int = 64) -> Connection:
    """The client for a Redis URL; connections open lazily, on first use. A standalone
    client waits up to `timeout_s` for a free pooled connection rather than failing."""
    parts = urlsplit(url)
    connector = _CONNECTORS.get(parts.scheme)
    if connector is None:
        raise ValueError(
            f"unsupported Redis URL scheme {parts.scheme!r}; use one of "
            f"{', '.join(sorted(_CONNECTORS))}"
        )
    return connector(parts, timeout_s, max_connections)
