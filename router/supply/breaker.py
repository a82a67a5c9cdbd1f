"""The breaker's state machine in Python, for the in-process store. Times are integer
milliseconds as in the Lua mirror (router/supply/lua/_breaker.lua); keep the two in step,
the contract suite runs both.

Closed: trips after `consecutive_failures` in a row, or when at least `min_requests` in the
sliding window failed at `failure_rate` or more. Open: refuses for `cooldown_s`, then turns
half-open. Half-open: at most `half_open_probes` trial calls hold a permit at once; any
failure reopens it, `half_open_probes` trial successes close it. Outcomes of calls that held
no permit do not count while half-open or open: they started before the breaker tripped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.core.model import BreakerState
from router.supply.model import BreakerView, Force, Outcome
from router.supply.settings import SupplySettings

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@dataclass(slots=True)
class BreakerRecord:
    state: BreakerState = CLOSED
    since: int = 0
    consecutive: int = 0
    bucket: int = 0
    ok: int = 0
    failed: int = 0
    prev_ok: int = 0
    prev_failed: int = 0
    trial_ok: int = 0
    hold_until: int = 0
    forced: Force = Force.AUTO
    draining: bool = False
    permits: dict[str, int] = field(default_factory=dict)
    """Half-open trial permits: probe id -> expiry (ms)."""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _enter(record: BreakerRecord, state: BreakerState, now: int) -> None:
    record.state = state
    record.since = now
    record.consecutive = record.ok = record.failed = 0
    record.prev_ok = record.prev_failed = record.trial_ok = 0
    record.permits.clear()


def settle(record: BreakerRecord, now: int, settings: SupplySettings) -> None:
    """Apply what time alone changes: an open breaker whose cooldown ended is half-open."""
    cooldown = _ms(settings.breaker.cooldown_s)
    if record.state is OPEN and now >= record.since + cooldown:
        _enter(record, HALF_OPEN, now)
    for probe_id, expiry in list(record.permits.items()):
        if expiry <= now:
            del record.permits[probe_id]


def _roll(record: BreakerRecord, now: int, window: int) -> float:
    """Move the window to `now`; returns the weight of the previous bucket."""
    bucket = now // window
    if bucket != record.bucket:
        adjacent = bucket == record.bucket + 1
        record.prev_ok = record.ok if adjacent else 0
        record.prev_failed = record.failed if adjacent else 0
        record.ok = record.failed = 0
        record.bucket = bucket
    return 1.0 - (now - bucket * window) / window


def record_outcome(
    record: BreakerRecord, now: int, outcome: Outcome, settings: SupplySettings
) -> None:
    """Count one report of outcomes; successes are taken to precede the failures."""
    settle(record, now, settings)
    trial = outcome.probe_id is not None and record.permits.pop(outcome.probe_id, None) is not None
    if outcome.retry_after is not None and outcome.failures > 0:
        hold = min(_ms(outcome.retry_after), _ms(settings.retry.max_retry_after_s))
        record.hold_until = max(record.hold_until, now + hold)
    breaker = settings.breaker
    if record.state is CLOSED:
        weight = _roll(record, now, max(1, _ms(breaker.window_s)))
        record.ok += outcome.successes
        record.failed += outcome.failures
        if outcome.successes:
            record.consecutive = 0
        record.consecutive += outcome.failures
        total = record.ok + record.failed + weight * (record.prev_ok + record.prev_failed)
        failed = record.failed + weight * record.prev_failed
        if outcome.failures and (
            record.consecutive >= breaker.consecutive_failures
            or (total >= breaker.min_requests and failed >= breaker.failure_rate * total)
        ):
            _enter(record, OPEN, now)
    elif record.state is HALF_OPEN and trial:
        if outcome.failures:
            _enter(record, OPEN, now)
        elif outcome.successes:
            record.trial_ok += outcome.successes
            if record.trial_ok >= breaker.half_open_probes:
                _enter(record, CLOSED, now)


def try_probe(
    record: BreakerRecord, now: int, probe_id: str, ttl_ms: int, settings: SupplySettings
) -> bool:
    """Grant a half-open trial permit if one is free."""
    settle(record, now, settings)
    if record.state is not HALF_OPEN or len(record.permits) >= settings.breaker.half_open_probes:
        return False
    record.permits[probe_id] = now + ttl_ms
    return True


def force(record: BreakerRecord, now: int, forced: Force) -> None:
    """An operator override restarts the evidence from a closed breaker."""
    _enter(record, CLOSED, now)
    record.hold_until = 0
    record.forced = forced


def view(record: BreakerRecord, now: int, settings: SupplySettings) -> BreakerView:
    open_for = 0.0
    if record.state is OPEN:
        open_for = max(0, record.since + _ms(settings.breaker.cooldown_s) - now) / 1000
    state = record.state
    if record.forced is Force.OPEN:
        state = OPEN
    elif record.forced is Force.CLOSED:
        state = CLOSED
    return BreakerView(
        state=state,
        open_for=open_for,
        hold_for=max(0, record.hold_until - now) / 1000,
        forced=record.forced,
        draining=record.draining,
    )
