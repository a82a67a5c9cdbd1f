"""Send a request to the first candidate that can take it, falling back on shortages.

The candidates come from the policy engine, already filtered by capability; the dispatcher
only ever drops candidates, never adds one, so a request never lands on a backend that
cannot serve it.

What moves a request to the next candidate:
- a supply shortage: 429, 503, 529, refused, dropped or a first-byte timeout, and the
  router's own refusals (open circuit, Retry-After hold, provider quota, capacity, draining);
- an upstream failure (500, 502, 504, garbage, a read timeout): another backend may answer
  where this one broke. It counts against the breaker like a shortage. When every candidate
  fails, the client gets the last error: the failure itself, or 503 if the last was short.
A rejection (400, 401, 404, content policy) is the request's fault, not the backend's: it
is relayed as is, never retried, and counts as a healthy answer.

Retries on the same backend happen only when no later candidate is ready (moving on beats
waiting), for transient shortages, at most `retry.attempts` times, after a full-jitter
exponential backoff (or the upstream's Retry-After if longer, when it is within
`retry.max_backoff_s`), and only within the request's deadline. A breaker that opened, or a
longer Retry-After, ends the retries: when every candidate is short the client gets a fast
503 that says so, and upstreams get no storm.

Streams fall back only until their first event has been read, which always happens before
any byte reaches the client; their capacity slot is held until the stream is closed.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from router.backends.base import Backend, Completion, EventStream, SupplyShortage
from router.errors import NoBackendAvailable, RouterError, UpstreamFailed, UpstreamTimeout
from router.supply.manager import Lease, SupplyManager
from router.types import JSONObject

T = TypeVar("T")

RETRYABLE = frozenset({"http_429", "http_503", "http_529", "refused", "dropped"})
"""Shortages worth a second try on the same backend; a first-byte timeout already spent
its wait, and the router's own refusals will not change within a backoff."""

_PHRASES = {
    "http_429": "is rate-limited (HTTP 429)",
    "http_503": "is unavailable (HTTP 503)",
    "http_529": "is overloaded (HTTP 529)",
    "refused": "refused the connection",
    "dropped": "dropped the connection",
    "first_byte_timeout": "did not start answering in time",
    "circuit_open": "has its circuit open after repeated failures",
    "retry_after": "asked us to wait (Retry-After)",
    "quota": "has used up its provider quota for now",
    "capacity": "is at its concurrency cap",
    "draining": "is draining for maintenance",
    "upstream_error": "failed (bad answer or server error)",
    "upstream_timeout": "timed out mid-answer",
}
"""How each reason reads after the backend's name in a 503's message."""

_MAX_RETRY_AFTER_HINT = 60.0


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
    """One candidate with the request body already rewritten for it. `tokens` is the
    request's worst case (prompt plus output), spent against a provider's TPM quota."""

    backend: str
    body: JSONObject
    tokens: int = 0


class _Exhausted:
    """What went wrong so far, to answer with when no candidate is left."""

    def __init__(self) -> None:
        self.error: RouterError | None = None
        self.retry_after: list[float] = []

    def short(self, shortage: SupplyShortage) -> None:
        self.error = None
        if shortage.retry_after is not None and shortage.retry_after > 0:
            self.retry_after.append(shortage.retry_after)

    def failed(self, error: RouterError) -> None:
        self.error = error

    def answer(self, hops: Hops) -> RouterError:
        if self.error is not None:
            return self.error
        if not hops.tried:
            return NoBackendAvailable("No backend is configured to serve this request.")
        tries = Counter(hops.tried)
        detail = "; ".join(
            f"{name} {_PHRASES.get(reason, reason)}" + (f" ({count} tries)" if count > 1 else "")
            for (name, reason), count in tries.items()
        )
        wait = min(min(self.retry_after, default=1.0), _MAX_RETRY_AFTER_HINT)
        return NoBackendAvailable(
            f"Every backend that can serve this request is unavailable right now "
            f"({detail}). Retry in {max(1, round(wait))} s.",
            retry_after=wait,
        )


class _LeasedStream:
    """The backend's stream, holding its capacity slot until closed; a stream the upstream
    cuts is breaker evidence too."""

    def __init__(self, inner: EventStream, lease: Lease) -> None:
        self._inner = inner
        self._lease = lease
        self.first = inner.first

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[bytes]]:
        try:
            async for batch in self._inner:
                yield batch
        except (UpstreamFailed, UpstreamTimeout) as error:
            await self._lease.failed(error.code or "upstream_error")
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            await self._lease.release()


@dataclass(frozen=True, slots=True)
class _Retry:
    wait: float


_NEXT = _Retry(-1.0)
"""Move on to the next candidate."""


class Dispatcher:
    def __init__(
        self,
        backends: Mapping[str, Backend],
        supply: SupplyManager,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._backends = backends
        self._supply = supply
        self._clock = supply.clock
        self._jitter = jitter

    async def complete(
        self, targets: Sequence[Target], deadline: float, hops: Hops
    ) -> tuple[str, Completion]:
        """The first candidate's whole answer; its slot is released before returning."""
        return await self._dispatch(targets, deadline, hops, _complete, streaming=False)

    async def stream(
        self, targets: Sequence[Target], deadline: float, hops: Hops
    ) -> tuple[str, EventStream]:
        """The first candidate's stream, its first event read; closing it (`aclose`) gives
        the capacity slot back."""
        return await self._dispatch(targets, deadline, hops, _stream, streaming=True)

    async def _dispatch(
        self,
        targets: Sequence[Target],
        deadline: float,
        hops: Hops,
        call: Callable[[Backend, JSONObject, float, Lease], Awaitable[T]],
        *,
        streaming: bool,
    ) -> tuple[str, T]:
        exhausted = _Exhausted()
        for index, target in enumerate(targets):
            for attempt in itertools.count():
                if deadline - self._clock.now() <= 0:
                    raise UpstreamTimeout(
                        "The request deadline passed before any backend answered."
                    )
                try:
                    lease = await self._supply.take(target.backend, target.tokens, deadline)
                except SupplyShortage as shortage:
                    self._hop(hops, exhausted, shortage)
                    break
                result = await self._attempt(
                    target, lease, deadline, call, streaming, hops, exhausted
                )
                if not isinstance(result, _Retry):
                    return target.backend, result
                if result is _NEXT:
                    break
                wait = self._retry_wait(
                    target, targets[index + 1 :], result.wait, attempt, deadline
                )
                if wait is None:
                    break
                await self._clock.sleep(wait)
        raise exhausted.answer(hops)

    async def _attempt(
        self,
        target: Target,
        lease: Lease,
        deadline: float,
        call: Callable[[Backend, JSONObject, float, Lease], Awaitable[T]],
        streaming: bool,
        hops: Hops,
        exhausted: _Exhausted,
    ) -> T | _Retry:
        """One call under `lease`: its result, or whether to retry it (with the upstream's
        Retry-After as `wait`) or move on. The lease is released unless a stream keeps it."""
        kept = False
        try:
            try:
                result = await call(
                    self._backends[target.backend], target.body, deadline - self._clock.now(), lease
                )
            except SupplyShortage as shortage:
                await lease.failed(shortage.reason, shortage.retry_after)
                self._hop(hops, exhausted, shortage)
                if shortage.reason not in RETRYABLE:
                    return _NEXT
                return _Retry(shortage.retry_after or 0.0)
            except (UpstreamFailed, UpstreamTimeout) as error:
                reason = error.code or "upstream_error"
                await lease.failed(reason)
                hops.tried.append((target.backend, reason))
                exhausted.failed(error)
                return _NEXT
            except RouterError:
                await lease.succeeded()
                raise
            await lease.succeeded()
            kept = streaming
            return result
        finally:
            if not kept:
                await lease.release()

    def _hop(self, hops: Hops, exhausted: _Exhausted, shortage: SupplyShortage) -> None:
        hops.tried.append((shortage.backend, shortage.reason))
        exhausted.short(shortage)

    def _retry_wait(
        self, target: Target, later: Sequence[Target], hinted: float, attempt: int, deadline: float
    ) -> float | None:
        """Seconds to wait before trying `target` again, or None to move on."""
        retry = self._supply.settings(target.backend).retry
        if (
            attempt >= retry.attempts
            or hinted > retry.max_backoff_s
            or any(self._supply.ready(t.backend) for t in later)
        ):
            return None
        backoff = min(retry.max_backoff_s, retry.backoff_s * 2.0**attempt) * self._jitter()
        wait = max(backoff, hinted)
        at = self._clock.now() + wait
        if at >= deadline or not self._supply.ready(target.backend, at=at):
            return None
        return wait


async def _complete(
    backend: Backend, body: JSONObject, timeout_s: float, lease: Lease
) -> Completion:
    return await backend.complete(body, timeout_s)


async def _stream(
    backend: Backend, body: JSONObject, timeout_s: float, lease: Lease
) -> EventStream:
    return _LeasedStream(await backend.stream(body, timeout_s), lease)
