"""A store that cannot be reached is a 503 to whoever asked, never a traceback."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from router.errors import StoreUnavailable
from router.store.base import StoreError

T = TypeVar("T")

UNREACHABLE = "The store is unreachable; retry shortly."


async def stored(call: Awaitable[T]) -> T:
    """The store's answer, or StoreUnavailable (503) when it did not give one."""
    try:
        return await call
    except StoreError as exc:
        raise StoreUnavailable(UNREACHABLE) from exc
