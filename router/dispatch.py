"""Send a request to the first candidate that can take it, falling back on supply shortages.

A shortage (429, 503, 529, refused, timed out before the first byte) moves the request to the
next candidate. Anything else is the answer: a relayed rejection or a failure. Streams fall
back only until their first event has been read, which always happens before any byte
reaches the client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from router.backends.base import Backend, Completion, EventStream, SupplyShortage
from router.errors import NoBackendAvailable, UpstreamTimeout
from router.types import JSONObject


@dataclass(slots=True)
class Hops:
    """Backends tried before the one that served, each with why it was skipped."""

    tried: list[tuple[str, str]] = field(default_factory=list)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.tried)

    def header(self) -> str:
        return ",".join(f"{name}:{reason}" for name, reason in self.tried)


@dataclass(frozen=True, slots=True)
class Target:
    """One candidate with the request body already rewritten for it."""

    backend: str
    body: JSONObject


class Dispatcher:
    def __init__(self, backends: Mapping[str, Backend]) -> None:
        self._backends = backends

    def _exhausted(self, hops: Hops) -> NoBackendAvailable:
        detail = "; ".join(f"{name}: {reason}" for name, reason in hops.tried)
        retry_after = 1.0
        return NoBackendAvailable(
            f"No backend can serve this request right now ({detail}). Retry in a few seconds.",
            retry_after=retry_after,
        )

    async def complete(
        self, targets: Sequence[Target], deadline: float, hops: Hops
    ) -> tuple[str, Completion]:
        for target in targets:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout("The request deadline passed before any backend answered.")
            try:
                completion = await self._backends[target.backend].complete(
                    target.body, remaining
                )
            except SupplyShortage as shortage:
                hops.tried.append((target.backend, shortage.reason))
                continue
            return target.backend, completion
        raise self._exhausted(hops)

    async def stream(
        self, targets: Sequence[Target], deadline: float, hops: Hops
    ) -> tuple[str, EventStream]:
        for target in targets:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout("The request deadline passed before any backend answered.")
            try:
                stream = await self._backends[target.backend].stream(target.body, remaining)
            except SupplyShortage as shortage:
                hops.tried.append((target.backend, shortage.reason))
                continue
            return target.backend, stream
        raise self._exhausted(hops)
