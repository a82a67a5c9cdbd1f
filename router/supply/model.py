"""Plain data the supply store returns and the manager keeps: what one backend's shared
state looks like from here. Durations are relative (seconds from now), so a replica turns
them into deadlines on its own monotonic clock and skewed wall clocks never matter."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from router.core.model import BreakerState


class Force(StrEnum):
    """An operator's override of a backend's breaker; AUTO hands it back to the evidence."""

    OPEN = "open"
    CLOSED = "closed"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class BreakerView:
    """A shared breaker as the store saw it when it answered."""

    state: BreakerState = BreakerState.CLOSED
    open_for: float = 0.0
    """Seconds of cooldown left while open."""
    hold_for: float = 0.0
    """Seconds left of a provider's Retry-After, for every replica."""
    forced: Force = Force.AUTO
    draining: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """Evidence from calls to one backend, reported in one store call."""

    successes: int = 0
    failures: int = 0
    retry_after: float | None = None
    probe_id: str | None = None
    """The half-open trial permit the call held; it is given back with the outcome."""


@dataclass(frozen=True, slots=True)
class Slot:
    """The answer to "may one more call go to this backend": a capacity lease and quota."""

    granted: bool
    denied_by: str | None = None
    """`capacity` or `quota` when refused."""
    in_flight: int = 0
    quota_left: float | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class SyncView:
    """Everything the background refresh reads about one backend in one round trip."""

    breaker: BreakerView
    in_flight: int
    quota_left: float | None
