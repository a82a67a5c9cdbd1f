"""Per-backend supply settings: circuit breaker, in-flight cap, provider quota, probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerSettings(_Strict):
    consecutive_failures: int = Field(5, gt=0)
    failure_rate: float = Field(0.5, gt=0, le=1)
    min_requests: int = Field(10, gt=0)
    window_s: float = Field(10.0, gt=0)
    cooldown_s: float = Field(10.0, gt=0)
    half_open_probes: int = Field(2, gt=0)


class CapacitySettings(_Strict):
    max_in_flight: int = Field(gt=0)
    overflow: Literal["fallback", "queue", "reject"] = "fallback"
    queue_timeout_s: float = Field(0.5, ge=0)
    lease_ttl_s: float = Field(600.0, gt=0)


class QuotaSettings(_Strict):
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)


class ProbeSettings(_Strict):
    interval_s: float = Field(5.0, gt=0)
    enabled: bool = True


class RetrySettings(_Strict):
    attempts: int = Field(1, ge=0, le=5)
    backoff_s: float = Field(0.1, ge=0)
    max_backoff_s: float = Field(2.0, ge=0)


class SupplySettings(_Strict):
    breaker: BreakerSettings = BreakerSettings()
    capacity: CapacitySettings | None = None
    quota: QuotaSettings | None = None
    probe: ProbeSettings = ProbeSettings()
    retry: RetrySettings = RetrySettings()
