"""A clock for tests of the supply layer: time moves only when the test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class ManualClock:
    """A clock that only moves when a test calls `advance`; sleepers wake in deadline order."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        self._changed.set()
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (cancelled ones included until time passes them)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Return once at least `count` tasks are asleep on this clock."""
        while self.sleepers < count:
            self._changed.clear()
            await self._changed.wait()

    def jump(self) -> float:
        """Advance to the earliest pending sleeper's deadline; returns how far it moved."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            return 0.0
        moved = max(0.0, self._sleepers[0][0] - self._now)
        self.advance(moved)
        return moved

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
