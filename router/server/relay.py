"""Relay an upstream event stream to the client, and make sure it is settled exactly once,
however it ends: finished, cut by the upstream, abandoned by the client, or never started.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from router.backends.base import EventStream
from router.core.model import Usage
from router.errors import RouterError
from router.server.stream_meter import StreamMeter

OnEnd = Callable[[str, Usage, str], Awaitable[None]]
"""Called once with (backend, usage, status) when the stream is over: the settlement."""
UsageOf = Callable[[StreamMeter], Usage]
"""The upstream's reported usage, or the router's own count when it reported none."""


def stream_error_event(message: str) -> bytes:
    """An SSE event carrying an OpenAI-shaped error, which the SDKs raise as an APIError."""
    error = RouterError(message, code="stream_interrupted")
    return b"data: " + error.body() + b"\n\n"


class Relay:
    def __init__(
        self,
        backend: str,
        events: EventStream,
        meter: StreamMeter,
        *,
        usage_of: UsageOf,
        wants_usage: bool,
        on_end: OnEnd,
        spawn: Callable[[Coroutine[None, None, None]], None],
    ) -> None:
        self._backend = backend
        self._events = events
        self._meter = meter
        self._usage_of = usage_of
        self._wants_usage = wants_usage
        self._on_end = on_end
        self._spawn = spawn
        self._ended = False

    def _forward(self, batch: list[bytes]) -> bytes:
        """What to send for a batch of upstream events, in one piece. A client that asked
        for usage gets it even from servers that ignore `include_usage`: counted, just
        before `[DONE]`."""
        meter = self._meter
        out = []
        for event in batch:
            had_usage = meter.usage is not None
            forwarded = meter.observe(event)
            if forwarded is None:
                continue
            if meter.done and self._wants_usage and not had_usage and meter.usage is None:
                meter.usage = self._usage_of(meter)
                out.append(meter.usage_event(meter.usage))
            out.append(forwarded)
        return b"".join(out)

    async def events(self) -> AsyncIterator[bytes]:
        status = "client_gone"
        try:
            if first := self._forward(self._events.first):
                yield first
            async for batch in self._events:
                if out := self._forward(batch):
                    yield out
            if self._meter.done:
                status = "ok"
            else:
                status = "cut"
                yield stream_error_event(
                    f"The {self._backend} backend ended the stream early. The partial answer "
                    "was charged; retry for a complete one."
                )
        except RouterError as error:
            status = "cut"
            yield stream_error_event(error.message)
        finally:
            self.end(status)

    def end(self, status: str) -> None:
        """Close the upstream and settle, once; never awaits, so cancellation can't skip it."""
        if self._ended:
            return
        self._ended = True
        self._spawn(self._finish(status))

    async def _finish(self, status: str) -> None:
        await self._events.aclose()
        await self._on_end(self._backend, self._usage_of(self._meter), status)


class RelayResponse(StreamingResponse):
    """A streaming response that settles its relay even if the body was never iterated.

    It sends the events itself while one task waits for the client to hang up, in plain
    asyncio: Starlette's own loop runs both under an anyio task group, which cost about a
    tenth of a stream's CPU."""

    def __init__(self, relay: Relay, headers: dict[str, str]) -> None:
        super().__init__(
            relay.events(),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self._send_events(send))
        hangup = asyncio.ensure_future(_hang_up(receive))
        try:
            done, _ = await asyncio.wait((streaming, hangup), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, hangup):
                task.cancel()
            await asyncio.gather(streaming, hangup, return_exceptions=True)
            self._relay.end("client_gone")
        if streaming in done:
            streaming.result()

    async def _send_events(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _hang_up(receive: Receive) -> None:
    """Returns when the client has gone."""
    while (await receive())["type"] != "http.disconnect":
        pass
