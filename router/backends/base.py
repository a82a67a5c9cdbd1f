"""The one interface every upstream is called through.

The dispatcher only sees `Backend`; whether a call goes over a pooled HTTP client to an
OpenAI-compatible server or through litellm to another provider is the implementation's
business. Failures are sorted here into the two kinds the dispatcher acts on: a supply
shortage (try the next candidate) and everything else (answer the client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from router.types import JSONObject


class SupplyShortage(Exception):
    """The backend cannot serve now (429, 503, 529, refused, timed out); another may.

    `reason` is a short code from a small fixed set (`http_429`, `refused`,
    `first_byte_timeout`, `circuit_open`, ...), safe as a metric label and a header value.
    """

    def __init__(self, backend: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{backend}: {reason}")
        self.backend = backend
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole non-streamed answer: the upstream's bytes, untouched, and what we parsed."""

    body: bytes
    payload: JSONObject


class EventStream(Protocol):
    """A stream whose first event has already arrived (so fallback is no longer possible).

    Events come in batches, each the events that arrived together, so the relay writes them
    to the client in one piece instead of one write (and one system call) per event."""

    first: list[bytes]
    """The first event, with any that arrived along with it."""

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        """The raw SSE events after `first`, a batch at a time, as they arrive."""
        ...

    async def aclose(self) -> None:
        """Stop reading and give the connection back."""


class Backend(Protocol):
    name: str

    async def complete(self, body: JSONObject, timeout_s: float) -> Completion:
        """Send a non-streaming chat request; raise SupplyShortage or a RouterError."""

    async def stream(self, body: JSONObject, timeout_s: float) -> EventStream:
        """Send a streaming chat request and wait for its first event."""

    async def probe(self) -> None:
        """A cheap health check (GET /models); raise SupplyShortage when unhealthy."""

    async def close(self) -> None:
        """Release pooled connections."""


SHORTAGE_STATUSES = frozenset({429, 503, 529})
