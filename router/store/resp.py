"""One multiplexed Redis connection for the store's scripts, the two round trips of every
request.

redis-py's asyncio client spends about 115 µs of CPU on one EVALSHA (pool locks, a retry
wrapper, a task per socket write, observability hooks), against about 40 µs here (`python
-m bench.micro_redis`). This connection writes each command as one RESP frame on a single
socket and matches replies in order, which Redis guarantees; replies are parsed by hiredis,
the parser redis-py uses. It raises redis-py's exception types with redis-py's wording, so
the store's error handling (router/store/redis_retry.py) reads them the same way, and it
retries a failed command once, as the client does. A timeout drops the connection (its state
is unknown), so the other commands in flight on it are retried on a new one. Only plain
`redis://` URLs use it; TLS, Cluster and Sentinel keep redis-py's client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.store.redis_retry import last_failure, maybe_applied


def frame(args: tuple[str, ...]) -> bytes:
    """A command as one RESP array of bulk strings, built as text and encoded once (an
    ASCII argument's length in bytes is its length in characters)."""
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        size = len(arg) if arg.isascii() else len(arg.encode())
        parts.append(f"${size}\r\n{arg}\r\n")
    return "".join(parts).encode()


def _reply_error(message: str) -> ResponseError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class _Protocol(asyncio.Protocol):
    """Replies in the order the commands were written; a future per command."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.open = False
        self._reader = hiredis.Reader(encoding="utf-8")
        self._unsent: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.open = True

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self.abort()
                return
            future = self.waiting.popleft()
            if future.done():  # its caller timed out or was cancelled
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_reply_error(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError("Connection closed by server."))

    def send(self, data: bytes) -> asyncio.Future[Any]:
        """Queue a command; the commands of one turn of the event loop leave in one write
        (one system call, where the requests of a loaded router would each make one)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append(future)
        if not self._unsent:
            loop.call_soon(self._flush)
        self._unsent.append(data)
        return future

    def _flush(self) -> None:
        data, self._unsent = b"".join(self._unsent), []
        if self.open and self.transport is not None:
            self.transport.write(data)

    def abort(self) -> None:
        """Drop the connection now; nothing more is sent on it (connection_lost, which
        fails the commands still waiting, runs on the loop's next turn)."""
        self.open = False
        if self.transport is not None:
            self.transport.abort()


class ScriptConnection:
    """Commands over one lazily opened connection to a standalone Redis."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._host, self._port = host, port
        self._timeout = timeout_s
        self._handshake = (
            [frame(("AUTH", *((username,) if username else ()), password))]
            if password is not None
            else []
        )
        if db:
            self._handshake.append(frame(("SELECT", str(db))))
        self._protocol: _Protocol | None = None
        self._opening = asyncio.Lock()

    async def call(self, *args: str) -> Any:
        """Send one command, retrying once if the connection failed or timed out."""
        data = frame(args)
        try:
            return await self._send(data)
        except (RedisConnectionError, RedisTimeoutError) as first:
            landed = maybe_applied(first)
        try:
            return await self._send(data)
        except RedisConnectionError as second:
            failure = last_failure(second, landed)
            if failure is second:
                raise
            raise failure from second

    async def _send(self, data: bytes) -> Any:
        protocol = self._protocol
        if protocol is None or not protocol.open:
            protocol = await self._connect()
        return await self._await(protocol, protocol.send(data))

    async def _await(self, protocol: _Protocol, reply: asyncio.Future[Any]) -> Any:
        """The reply, or a timeout that also drops the connection (its state is unknown)."""
        timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, protocol, reply)
        try:
            return await reply
        finally:
            timer.cancel()

    def _expire(self, protocol: _Protocol, reply: asyncio.Future[Any]) -> None:
        if not reply.done():
            reply.set_exception(
                RedisTimeoutError(f"Timeout reading from {self._host}:{self._port}")
            )
            protocol.abort()

    async def _connect(self) -> _Protocol:
        async with self._opening:
            if self._protocol is not None and self._protocol.open:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout):
                    _, protocol = await loop.create_connection(_Protocol, self._host, self._port)
            except (OSError, TimeoutError) as exc:
                code = getattr(exc, "errno", None) or "timeout"
                raise RedisConnectionError(
                    f"Error {code} connecting to {self._host}:{self._port}. {exc}"
                ) from exc
            try:
                for command in self._handshake:
                    await self._await(protocol, protocol.send(command))
            except (RedisConnectionError, RedisTimeoutError) as exc:
                protocol.abort()  # no command of the caller's was sent yet
                raise RedisConnectionError(
                    f"Error {exc} connecting to {self._host}:{self._port}."
                ) from exc
            except BaseException:
                protocol.abort()
                raise
            self._protocol = protocol
            return protocol

    async def aclose(self) -> None:
        if self._protocol is not None:
            self._protocol.abort()
            self._protocol = None
