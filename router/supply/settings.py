"""Per-backend supply settings: circuit breaker, in-flight cap, provider quota, probes, retries.

They live under `backends.<name>.supply` in the deployment config. Every replica must run with
the same values: the shared breaker and cap are evaluated with the settings of whichever
replica reports, so differing values would make replicas disagree on when to trip.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerSettings(_Strict):
    """Open after `consecutive_failures` in a row, or when at least `min_requests` in the last
    `window_s` failed at `failure_rate` or more; stay open `cooldown_s`, then let
    `half_open_probes` trial requests through (that many successes close it)."""

    consecutive_failures: int = Field(5, gt=0)
    failure_rate: float = Field(0.5, gt=0, le=1)
    min_requests: int = Field(10, gt=0)
    window_s: float = Field(10.0, gt=0)
    cooldown_s: float = Field(10.0, gt=0)
    half_open_probes: int = Field(2, gt=0)


class CapacitySettings(_Strict):
    """At most `max_in_flight` requests across all replicas. Overflow either falls back to
    the next candidate, waits up to `queue_timeout_s` for a slot (at most `max_queued`
    waiters per replica), or is refused with a 503."""

    max_in_flight: int = Field(gt=0)
    overflow: Literal["fallback", "queue", "reject"] = "fallback"
    queue_timeout_s: float = Field(0.5, ge=0)
    max_queued: int = Field(64, ge=0)
    lease_ttl_s: float = Field(30.0, gt=0)
    """A slot is renewed while its request runs, so this only bounds how long a crashed
    replica's slots stay taken."""


class QuotaSettings(_Strict):
    """A provider contract spent down before each call, so the router routes away before
    the provider answers 429. Tokens are the request's worst case, counted up front."""

    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)


class ProbeSettings(_Strict):
    interval_s: float = Field(5.0, gt=0)
    enabled: bool = True


class RetrySettings(_Strict):
    """Retries on the same backend, only when no other candidate is ready to take the
    request. Waits are full-jitter exponential from `backoff_s`; a Retry-After longer than
    `max_backoff_s` is not waited for, and holds the backend for all replicas for at most
    `max_retry_after_s`."""

    attempts: int = Field(1, ge=0, le=5)
    backoff_s: float = Field(0.1, ge=0)
    max_backoff_s: float = Field(2.0, ge=0)
    max_retry_after_s: float = Field(60.0, ge=0)


class SupplySettings(_Strict):
    breaker: BreakerSettings = BreakerSettings()
    capacity: CapacitySettings | None = None
    quota: QuotaSettings | None = None
    probe: ProbeSettings = ProbeSettings()
    retry: RetrySettings = RetrySettings()
