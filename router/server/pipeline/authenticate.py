"""Step 1: who is calling. Runs before the body is read, so strangers cannot make us parse."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.requests import Request

from router.runtime import Runtime
from router.store.base import KeyRecord


def client_address(request: Request) -> str:
    """The peer address failed attempts are throttled by."""
    return request.client.host if request.client else "unknown"


def authenticate(request: Request, runtime: Runtime) -> Awaitable[KeyRecord]:
    """The caller's key, or 401 (no, unknown or disabled key) / 429 (too many failures)."""
    return runtime.keys.resolve(request.headers.get("authorization"), client_address(request))
