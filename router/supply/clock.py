"""The one source of time for supply decisions, injected so tests move time instead of
sleeping. Shared state uses Redis TIME inside Lua; this clock only measures local waits and
how long a state read from the store stays valid."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class MonotonicClock:
    """The production clock: `time.monotonic` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
