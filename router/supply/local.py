"""What one replica believes about one backend's supply, kept in memory for the hot path.

The store answers with relative durations; they become deadlines on this replica's
monotonic clock the moment the answer arrives, so reading the state never needs the network.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from router.core.model import BreakerState, SupplyState
from router.supply.model import BreakerView, Force
from router.supply.settings import SupplySettings


@dataclass(slots=True)
class LastProbe:
    at: float
    """Wall-clock time (epoch seconds), for operators."""
    ok: bool
    reason: str | None = None


@dataclass(slots=True)
class LocalSupply:
    settings: SupplySettings
    view: BreakerView = field(default_factory=BreakerView)
    open_until: float = 0.0
    hold_until: float = 0.0
    in_flight: int = 0
    quota_left: float | None = None
    pending_successes: int = 0
    leases: set[str] = field(default_factory=set)
    last_renewal: float = 0.0
    queued: int = 0
    last_probe: LastProbe | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when this replica gives a capacity slot back, so local waiters retry at once."""

    def apply(self, view: BreakerView, now: float) -> None:
        self.view = view
        self.open_until = now + view.open_for
        self.hold_until = max(self.hold_until, now + view.hold_for)

    def hold(self, seconds: float, now: float) -> None:
        """Honour a Retry-After locally even if the store cannot be told."""
        limit = self.settings.retry.max_retry_after_s
        self.hold_until = max(self.hold_until, now + min(seconds, limit))

    def breaker(self, now: float) -> BreakerState:
        """The breaker as of `now`: an open one whose cooldown ended is due for a trial."""
        forced = self.view.forced
        if forced is not Force.AUTO:
            return BreakerState(forced.value)
        if self.view.state is BreakerState.OPEN and now >= self.open_until:
            return BreakerState.HALF_OPEN
        return self.view.state

    def held(self, now: float) -> bool:
        return self.view.forced is not Force.CLOSED and now < self.hold_until

    def ready(self, now: float) -> bool:
        """Worth trying now, judging from memory only."""
        return (
            not self.view.draining
            and not self.held(now)
            and self.breaker(now) is not BreakerState.OPEN
        )

    def next_change(self, now: float) -> float:
        """When time alone will next change what `state` reports."""
        upcoming = [t for t in (self.open_until, self.hold_until) if t > now]
        return min(upcoming, default=float("inf"))

    def state(self, now: float) -> SupplyState:
        """The policy engine's view. A Retry-After hold reads as an open breaker. The cap is
        shown only when overflow falls back: with `queue` or `reject` the operator wants
        requests to wait for (or be refused by) this backend, not be routed around it."""
        capacity = self.settings.capacity
        shown = capacity.max_in_flight if capacity and capacity.overflow == "fallback" else None
        breaker = BreakerState.OPEN if self.held(now) else self.breaker(now)
        return SupplyState(
            breaker=breaker,
            draining=self.view.draining,
            in_flight=self.in_flight,
            capacity=shown,
            quota_left_fraction=self.quota_left,
        )

    def describe(self, now: float) -> dict[str, object]:
        """For operators: everything this replica believes, as JSON-ready values."""
        capacity, quota, probe = self.settings.capacity, self.settings.quota, self.last_probe
        return {
            "breaker": self.breaker(now).value,
            "forced": self.view.forced.value,
            "open_for_s": round(max(0.0, self.open_until - now), 3),
            "retry_after_s": round(max(0.0, self.hold_until - now), 3),
            "draining": self.view.draining,
            "available": self.state(now).available,
            "in_flight": self.in_flight,
            "capacity": capacity.max_in_flight if capacity else None,
            "overflow": capacity.overflow if capacity else None,
            "queued_here": self.queued,
            "quota_left": self.quota_left,
            "quota": quota.model_dump() if quota else None,
            "last_probe": None
            if probe is None
            else {"ok": probe.ok, "reason": probe.reason, "age_s": round(now - probe.at, 3)},
        }
