"""The lean script connection (router/store/resp.py) against real Redis servers: replies in
order under concurrency and after cancellations, the handshake, and failures classified the
way the store's error handling expects."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.store.redis_retry import maybe_applied
from router.store.resp import ScriptConnection
from tests.redis_servers import RedisServer


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--user", "app", "on", ">s3cret", "~*", "&*", "+@all"]) as running:
        yield running


def lane(server: RedisServer, **overrides: object) -> ScriptConnection:
    options: dict[str, object] = {
        "timeout_s": 1.0,
        "db": 3,
        "username": "app",
        "password": "s3cret",
    }
    options.update(overrides)
    return ScriptConnection(server.host, server.port, **options)  # type: ignore[arg-type]


async def test_concurrent_commands_each_get_their_own_reply(server: RedisServer) -> None:
    conn = lane(server)
    await conn.call("DEL", "counter")
    replies = await asyncio.gather(*(conn.call("INCR", "counter") for _ in range(500)))
    assert sorted(replies) == list(range(1, 501))
    await conn.aclose()


async def test_the_handshake_authenticates_and_selects_the_database(server: RedisServer) -> None:
    conn = lane(server)
    await conn.call("SET", "where", "db3")
    with server.sync_client(
        username="app", password="s3cret", db=3, decode_responses=True
    ) as client:
        assert client.get("where") == "db3"
    await conn.aclose()


async def test_a_wrong_password_is_an_error_that_never_applied(server: RedisServer) -> None:
    conn = lane(server, password="wrong")
    with pytest.raises(ResponseError, match="WRONGPASS") as caught:
        await conn.call("SET", "never", "1")
    assert not maybe_applied(caught.value)


async def test_error_replies_keep_the_connection_in_step(server: RedisServer) -> None:
    conn = lane(server)
    with pytest.raises(NoScriptError):
        await conn.call("EVALSHA", "0" * 40, "0")
    with pytest.raises(ResponseError, match="wrong number of arguments"):
        await conn.call("GET")
    assert await conn.call("ECHO", "still in step") == "still in step"
    await conn.aclose()


async def test_a_cancelled_call_does_not_shift_later_replies(server: RedisServer) -> None:
    conn = lane(server)
    await conn.call("MSET", "a", "reply-a", "b", "reply-b")
    server.pause(0.3)
    first = asyncio.ensure_future(conn.call("GET", "a"))
    await asyncio.sleep(0)  # let it write its command
    first.cancel()
    assert await conn.call("GET", "b") == "reply-b"
    await conn.aclose()


async def test_failures_say_whether_the_command_may_have_run() -> None:
    with RedisServer() as server:
        conn = ScriptConnection(server.host, server.port, timeout_s=1.0)
        assert await conn.call("PING") == "PONG"
        # Frozen: the command is sent and no reply comes, a timeout.
        with server.frozen(), pytest.raises(RedisTimeoutError) as timed_out:
            await ScriptConnection(server.host, server.port, timeout_s=0.2).call("PING")
        assert maybe_applied(timed_out.value)
        server.kill()
        with pytest.raises(RedisConnectionError) as refused:  # nothing to connect to
            await ScriptConnection(server.host, server.port, timeout_s=1.0).call("PING")
        assert not maybe_applied(refused.value)
        server.restart()
        assert await conn.call("SET", "k", "v") == "OK"  # the old connection reconnects
        await conn.aclose()
