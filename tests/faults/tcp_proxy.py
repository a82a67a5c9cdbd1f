"""A TCP proxy between the router and Redis that misbehaves on cue: it delays bytes, or lets
commands through but loses their replies, the two faults a killed or paused server cannot
stage precisely.

It runs an asyncio server in a background thread, so sync tests can flip its mode at any
time; a mode applies to bytes read after the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from enum import Enum
from types import TracebackType
from typing import Self


class Mode(Enum):
    PASS = "pass"
    DELAY = "delay"
    """Hold every chunk, both ways, for `delay_s` before passing it on. Chunks leave in the
    order they came, across connections (one slow link, not a reordering network), also
    after switching back to PASS."""
    LOSE_REPLIES = "lose_replies"
    """Forward commands to Redis, then drop the reply and reset the client's connection:
    the command ran, the client cannot know. With `match`, only replies to commands that
    contain those bytes; with `count`, only that many, then back to PASS; with
    `then_refuse`, the proxy also stops listening after the loss (a retry finds Redis
    gone) until `listen()`."""


class TcpProxy:
    """Listen on a free loopback port and forward to `target_port`."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.mode = Mode.PASS
        self.delay_s = 0.0
        self.match: bytes | None = None
        self.count: int | None = None
        self.then_refuse = False
        self.lost_replies = 0
        self.delaying = 0
        """Chunks held back right now."""
        self._last_release = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="tcp-proxy"
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(10)
        return self

    def set(
        self,
        mode: Mode,
        delay_s: float = 0.0,
        *,
        match: bytes | None = None,
        count: int | None = None,
        then_refuse: bool = False,
    ) -> None:
        self.delay_s, self.match, self.count = delay_s, match, count
        self.then_refuse = then_refuse
        self.mode = mode

    def listen(self) -> None:
        """Accept connections again (on the same port) after `then_refuse` closed it."""
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _start(self) -> None:
        if self._server is not None and self._server.is_serving():
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        doomed: set[bool] = set()
        """Holds True once a command on this connection matched: its reply is lost."""
        upstream = asyncio.ensure_future(self._pipe(client_r, server_w, doomed, reply=False))
        downstream = asyncio.ensure_future(self._pipe(server_r, client_w, doomed, reply=True))
        await asyncio.wait((upstream, downstream), return_when=asyncio.FIRST_COMPLETED)
        for task in (upstream, downstream):
            task.cancel()
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        doomed: set[bool],
        *,
        reply: bool,
    ) -> None:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = self._loop.time()
            if self.mode is Mode.DELAY or self._last_release > now:
                wait = self.delay_s if self.mode is Mode.DELAY else 0.0
                release = self._last_release = max(now + wait, self._last_release + 1e-6)
                self.delaying += 1
                try:
                    await asyncio.sleep(release - now)
                finally:
                    self.delaying -= 1
            elif (
                self.mode is Mode.LOSE_REPLIES
                and not reply
                and (self.match is None or self.match in chunk)
            ):
                doomed.add(True)
            elif self.mode is Mode.LOSE_REPLIES and reply and doomed:
                self.lost_replies += 1
                if self.then_refuse and self._server is not None:
                    self._server.close()
                if self.count is not None:
                    self.count -= 1
                    if self.count <= 0:
                        self.mode = Mode.PASS
                return
            writer.write(chunk)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
