"""Proves the real-Redis helpers in tests/redis_servers.py work, so store tests can trust them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.sentinel import Sentinel

from tests.redis_servers import (
    RedisCluster,
    RedisSentinel,
    RedisServer,
    redis_binaries_available,
)

pytestmark = pytest.mark.skipif(
    not redis_binaries_available(), reason="redis-server/redis-cli not installed"
)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cl:
        yield cl


@pytest.fixture
async def cluster_client(cluster: RedisCluster) -> AsyncIterator[AsyncRedisCluster]:
    client = AsyncRedisCluster(
        startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes],
        decode_responses=True,
    )
    try:
        yield client
    finally:
        await client.aclose()
        cluster.flushall()


async def test_standalone_set_get(server: RedisServer) -> None:
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    client = aredis.Redis.from_url(server.url, decode_responses=True)
    try:
        assert await client.set("k", "v")
        assert await client.get("k") == "v"
        # No persistence, whatever the distro default would be.
        assert await client.config_get("save") == {"save": ""}
        assert await client.config_get("appendonly") == {"appendonly": "no"}
        assert (await client.config_get("bind"))["bind"] == "127.0.0.1"
    finally:
        await client.aclose()


async def test_kill_and_restart_same_port(server: RedisServer) -> None:
    port, pid = server.port, server.pid
    client = aredis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1)
    try:
        await client.set("k", "v")
        server.kill()
        assert not server.running
        with pytest.raises(redis.ConnectionError):
            await client.get("k")
        server.restart()
        assert server.running and server.port == port and server.pid != pid
        # The same client object reconnects; data is gone because persistence is off.
        assert await client.get("k") is None
        await client.set("k", "v2")
        assert await client.get("k") == "v2"
    finally:
        await client.aclose()


def test_pause_delays_commands(server: RedisServer) -> None:
    with server.sync_client() as client:
        client.set("k", "v")
        server.pause(0.3)
        started = time.monotonic()
        assert client.get("k") == b"v"
        assert time.monotonic() - started >= 0.2


def test_frozen_server_times_out(server: RedisServer) -> None:
    with server.sync_client(socket_timeout=0.2) as client:
        client.ping()
        with server.frozen(), pytest.raises(redis.TimeoutError):
            client.ping()
        client.connection_pool.disconnect()
        assert client.ping()


def test_stop_cleans_up_even_on_error() -> None:
    srv = RedisServer()
    with pytest.raises(RuntimeError), srv:
        raise RuntimeError("test failed")
    assert not srv.running
    assert not Path(srv.dir).exists()
    with pytest.raises(redis.ConnectionError), srv.sync_client(socket_connect_timeout=0.5) as c:
        c.ping()


@pytest.mark.cluster
async def test_cluster_spreads_hash_tags(
    cluster: RedisCluster, cluster_client: AsyncRedisCluster
) -> None:
    assert cluster.url == f"redis+cluster://127.0.0.1:{cluster.ports[0]}"
    assert len(cluster.startup_nodes) == 3
    owners: dict[int, str] = {}
    for i in range(200):
        tag = f"tenant{i}"
        owners.setdefault(cluster.node_for_key(f"{{{tag}}}:x"), tag)
        if len(owners) == 3:
            break
    assert len(owners) == 3, "three masters should each own some hash tags"
    for port, tag in owners.items():
        key = f"{{{tag}}}:spend"
        await cluster_client.set(key, port)
        # Read back from that very node, proving the key really lives there.
        with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
            assert node.get(key) == str(port)


@pytest.mark.cluster
async def test_cluster_multi_key_lua_same_tag(cluster_client: AsyncRedisCluster) -> None:
    script = """
    redis.call('SET', KEYS[1], ARGV[1])
    local n = redis.call('INCRBY', KEYS[2], ARGV[2])
    return {redis.call('GET', KEYS[1]), n}
    """
    keys = ["{budget:t1}:limit", "{budget:t1}:spent"]
    assert await cluster_client.eval(script, 2, *keys, "100", "7") == ["100", 7]
    assert await cluster_client.eval(script, 2, *keys, "100", "5") == ["100", 12]
    # Keys without a shared tag must be refused: this is a real cluster, not a stub.
    with pytest.raises(redis.RedisClusterException):
        await cluster_client.eval(script, 2, "{a}:x", "{b}:y", "1", "1")


@pytest.mark.cluster
async def test_cluster_url_works_with_redis_py(cluster: RedisCluster) -> None:
    client = AsyncRedisCluster.from_url(cluster.url.replace("redis+cluster://", "redis://"))
    try:
        await client.set("{x}:k", "v")
        assert await client.get("{x}:k") == b"v"
    finally:
        await client.aclose()


async def test_sentinel_discovers_master() -> None:
    with RedisSentinel() as sent:
        assert sent.url == f"redis+sentinel://127.0.0.1:{sent.port}/mymaster"
        sentinel = Sentinel(sent.sentinels, socket_timeout=1)  # type: ignore[no-untyped-call]
        assert await sentinel.discover_master("mymaster") == ("127.0.0.1", sent.master.port)
        master = sentinel.master_for("mymaster", decode_responses=True)
        try:
            await master.set("k", "v")
            assert await master.get("k") == "v"
        finally:
            await master.aclose()
        dirs = [sent.dir, sent.master.dir]
    assert not any(Path(d).exists() for d in dirs)


@pytest.mark.cluster
def test_cluster_with_replicas() -> None:
    with RedisCluster(replicas_per_master=1) as cl:
        masters = cl.master_ports()
        assert len(cl.ports) == 6 and len(masters) == 3
        port = cl.node_for_key("{r}:k")
        with redis.Redis(host="127.0.0.1", port=port) as node:
            node.set("{r}:k", "v")
            assert node.wait(1, 2000) == 1  # its replica acknowledged the write
        root = cl.root
    assert not root.exists()
