"""The in-process supply store: the embedded default for a single replica. Same behaviour
as the Redis store (the contract suite runs both), with the injected clock instead of
Redis TIME."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from router.supply import breaker
from router.supply.breaker import BreakerRecord
from router.supply.clock import Clock
from router.supply.model import BreakerView, Force, Outcome, Slot, SyncView
from router.supply.settings import QuotaSettings, SupplySettings

_MINUTE_MS = 60_000


@dataclass(slots=True)
class _Quota:
    """Requests and tokens in the current and previous minute."""

    bucket: int = 0
    requests: int = 0
    tokens: int = 0
    prev_requests: int = 0
    prev_tokens: int = 0

    def roll(self, now: int) -> float:
        bucket = now // _MINUTE_MS
        if bucket != self.bucket:
            adjacent = bucket == self.bucket + 1
            self.prev_requests = self.requests if adjacent else 0
            self.prev_tokens = self.tokens if adjacent else 0
            self.requests = self.tokens = 0
            self.bucket = bucket
        return 1.0 - (now - bucket * _MINUTE_MS) / _MINUTE_MS

    def used(self, weight: float) -> tuple[float, float]:
        return (
            self.requests + weight * self.prev_requests,
            self.tokens + weight * self.prev_tokens,
        )


def quota_left(quota: QuotaSettings, requests: float, tokens: float) -> float:
    """The smaller fraction left of the two limits, in [0, 1]."""
    fractions = [
        1 - used / limit
        for used, limit in ((requests, quota.rpm), (tokens, quota.tpm))
        if limit is not None
    ]
    return min(1.0, max(0.0, min(fractions, default=1.0)))


@dataclass(slots=True)
class _Backend:
    breaker: BreakerRecord = field(default_factory=BreakerRecord)
    leases: dict[str, int] = field(default_factory=dict)
    quota: _Quota = field(default_factory=_Quota)

    def purge(self, now: int) -> None:
        for lease_id, expiry in list(self.leases.items()):
            if expiry <= now:
                del self.leases[lease_id]


class MemorySupplyStore:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._backends: dict[str, _Backend] = {}

    def _now(self) -> int:
        return int(self._clock.now() * 1000)

    def _get(self, backend: str) -> _Backend:
        return self._backends.setdefault(backend, _Backend())

    async def record(self, backend: str, outcome: Outcome, settings: SupplySettings) -> BreakerView:
        record, now = self._get(backend).breaker, self._now()
        breaker.record_outcome(record, now, outcome, settings)
        return breaker.view(record, now, settings)

    async def try_probe(
        self, backend: str, probe_id: str, ttl_s: float, settings: SupplySettings
    ) -> tuple[bool, BreakerView]:
        record, now = self._get(backend).breaker, self._now()
        granted = breaker.try_probe(record, now, probe_id, int(ttl_s * 1000), settings)
        return granted, breaker.view(record, now, settings)

    async def acquire(
        self, backend: str, lease_id: str, tokens: int, settings: SupplySettings
    ) -> Slot:
        state, now = self._get(backend), self._now()
        state.purge(now)
        capacity, quota = settings.capacity, settings.quota
        if (
            capacity is not None
            and lease_id not in state.leases
            and len(state.leases) >= capacity.max_in_flight
        ):
            return Slot(False, "capacity", in_flight=len(state.leases))
        left: float | None = None
        if quota is not None:
            weight = state.quota.roll(now)
            requests, used = state.quota.used(weight)
            over_rpm = quota.rpm is not None and requests + 1 > quota.rpm
            over_tpm = quota.tpm is not None and used + tokens > quota.tpm
            if over_rpm or over_tpm:
                return Slot(
                    False,
                    "quota",
                    in_flight=len(state.leases),
                    quota_left=quota_left(quota, requests, used),
                    retry_after=(_MINUTE_MS - now % _MINUTE_MS) / 1000,
                )
            state.quota.requests += 1
            state.quota.tokens += tokens
            left = quota_left(quota, requests + 1, used + tokens)
        if capacity is not None:
            state.leases[lease_id] = now + int(capacity.lease_ttl_s * 1000)
        return Slot(True, in_flight=len(state.leases), quota_left=left)

    async def release(self, backend: str, lease_id: str) -> None:
        self._get(backend).leases.pop(lease_id, None)

    async def sync(
        self, backend: str, successes: int, leases: Sequence[str], settings: SupplySettings
    ) -> SyncView:
        state, now = self._get(backend), self._now()
        breaker.record_outcome(state.breaker, now, Outcome(successes=successes), settings)
        if settings.capacity is not None:
            expiry = now + int(settings.capacity.lease_ttl_s * 1000)
            for lease_id in leases:
                if lease_id in state.leases:
                    state.leases[lease_id] = expiry
        state.purge(now)
        left = None
        if settings.quota is not None:
            left = quota_left(settings.quota, *state.quota.used(state.quota.roll(now)))
        return SyncView(breaker.view(state.breaker, now, settings), len(state.leases), left)

    async def force(self, backend: str, force: Force, settings: SupplySettings) -> BreakerView:
        record, now = self._get(backend).breaker, self._now()
        breaker.force(record, now, force)
        return breaker.view(record, now, settings)

    async def drain(self, backend: str, draining: bool) -> None:
        self._get(backend).breaker.draining = draining

    async def close(self) -> None:
        self._backends.clear()
