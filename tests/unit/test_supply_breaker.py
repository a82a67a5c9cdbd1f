"""Properties of the breaker's state machine (router/supply/breaker.py) over arbitrary
sequences of outcomes, trials and time. The Lua mirror is held to the same behaviour by the
contract suite."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.core.model import BreakerState
from router.supply import breaker
from router.supply.breaker import BreakerRecord
from router.supply.model import Outcome
from router.supply.settings import BreakerSettings, SupplySettings

SETTINGS = SupplySettings(
    breaker=BreakerSettings(
        consecutive_failures=3,
        failure_rate=0.5,
        min_requests=4,
        window_s=2,
        cooldown_s=1,
        half_open_probes=2,
    )
)
COOLDOWN_MS = 1000

steps = st.one_of(
    st.tuples(st.just("report"), st.integers(0, 3), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("probe"), st.integers(0, 5)),
    st.tuples(st.just("wait"), st.integers(0, 1500)),
)


@given(st.lists(steps, max_size=60))
def test_invariants_hold_for_any_history(history):
    record, now, issued = BreakerRecord(), 10_000, 0
    for step in history:
        before, since = record.state, record.since
        if step[0] == "wait":
            now += step[1]
            breaker.settle(record, now, SETTINGS)
        elif step[0] == "probe":
            issued += 1
            breaker.try_probe(record, now, f"p{issued}", step[1] * 300, SETTINGS)
        else:
            _, ok, failed, with_permit = step
            probe = next(iter(record.permits), None) if with_permit else None
            breaker.record_outcome(record, now, Outcome(ok, failed, None, probe), SETTINGS)
            if failed == 0:
                assert record.state is not BreakerState.OPEN or before is BreakerState.OPEN
        assert len(record.permits) <= SETTINGS.breaker.half_open_probes
        if before is BreakerState.OPEN and now < since + COOLDOWN_MS:
            assert record.state is BreakerState.OPEN and record.since == since
        if record.state is not BreakerState.HALF_OPEN:
            assert not record.permits
        view = breaker.view(record, now, SETTINGS)
        assert 0 <= view.open_for <= COOLDOWN_MS / 1000


@given(st.integers(0, 20), st.integers(1, 10))
def test_consecutive_failures_always_trip_a_closed_breaker(successes, spread):
    record, now = BreakerRecord(), 50_000
    breaker.record_outcome(record, now, Outcome(successes=successes), SETTINGS)
    for _ in range(SETTINGS.breaker.consecutive_failures):
        now += spread
        breaker.record_outcome(record, now, Outcome(failures=1), SETTINGS)
    assert record.state is BreakerState.OPEN


@given(st.integers(1, 200))
def test_successes_alone_never_trip_it(successes):
    record = BreakerRecord()
    for i in range(successes):
        breaker.record_outcome(record, 1000 + i, Outcome(successes=1), SETTINGS)
    assert record.state is BreakerState.CLOSED
