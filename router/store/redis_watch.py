"""Price changes from other replicas, via Redis pub/sub, in one background task.

A message can be lost while the subscription is down, so every (re)subscribe is followed by
a full reload of the prices: listeners must be idempotent (PriceBook.apply is). A half-open
connection is noticed by pinging and expecting the pong within a few intervals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from router.core.model import Price
from router.store.base import PriceListener, StoreError
from router.store.codec import price_from_json
from router.store.common import notify

log = logging.getLogger(__name__)

_POLL_S = 1.0
_PING_EVERY_S = 5.0
_MIN_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0


class PriceWatcher:
    """Runs the subscription while at least one listener is registered."""

    def __init__(
        self, client: Any, channel: str, load: Callable[[], Awaitable[dict[str, list[Price]]]]
    ) -> None:
        self._client = client
        self._channel = channel
        self._load = load
        self._listeners: list[PriceListener] = []
        self._task: asyncio.Task[None] | None = None
        self._backoff = _MIN_BACKOFF_S
        self._stopping = False

    def add(self, listener: PriceListener) -> None:
        self._listeners.append(listener)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="price-watch")

    async def close(self) -> None:
        """Stop the task. A cancel that lands as redis-py's own read timeout fires can be
        swallowed (Python 3.11's asyncio.timeout), so the loop also checks a flag."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=3 * _POLL_S)
            if not self._task.done():
                log.warning("price watcher did not stop within %.0fs", 3 * _POLL_S)
            self._task = None

    async def _emit(self, price: Price) -> None:
        for listener in list(self._listeners):
            await notify(listener, price)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._session()
            except (RedisError, OSError, TimeoutError, StoreError) as exc:
                log.warning(
                    "price subscription lost (%s); resubscribing in %.1fs", exc, self._backoff
                )
            except Exception:
                # redis-py can fail in its own ways (e.g. a cluster mid-reshard); replicas
                # must keep seeing price changes, so the watcher outlives any one failure.
                log.exception("price subscription failed; resubscribing in %.1fs", self._backoff)
            else:
                continue  # the session ended because the watcher is stopping
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)

    async def _session(self) -> None:
        await self._client.ping()  # a cluster client learns its slots on first command
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            for versions in (await self._load()).values():
                for price in versions:
                    await self._emit(price)
            self._backoff = _MIN_BACKOFF_S
            last_heard = last_ping = time.monotonic()
            while not self._stopping:
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=_POLL_S)
                now = time.monotonic()
                if message is not None:
                    last_heard = now
                    if message.get("type") == "message":
                        await self._handle(message.get("data"))
                if now - last_heard > 3 * _PING_EVERY_S:
                    raise TimeoutError("no pong from Redis on the price subscription")
                if now - last_ping > _PING_EVERY_S:
                    await pubsub.ping()
                    last_ping = now
        finally:
            await pubsub.aclose()

    async def _handle(self, data: object) -> None:
        try:
            price = price_from_json(str(data))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring malformed price message on %s: %s", self._channel, exc)
            return
        await self._emit(price)
