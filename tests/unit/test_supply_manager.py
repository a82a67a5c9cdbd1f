"""The supply manager on its own: the snapshot the engine reads, batching of successes,
sharing between replicas through the refresh, active probes, leases that outlive their TTL
while alive and not after, and operator overrides. Time moves only by the manual clock."""

from __future__ import annotations

import gc
from typing import Any

from router.backends.base import SupplyShortage
from router.core.model import BreakerState, SupplyState
from router.supply.manager import SupplyManager
from router.supply.memory import MemorySupplyStore
from router.supply.model import Force, Outcome
from router.supply.settings import (
    BreakerSettings,
    CapacitySettings,
    QuotaSettings,
    SupplySettings,
)
from tests.manual_clock import ManualClock

BREAKER = BreakerSettings(
    consecutive_failures=2, cooldown_s=5, half_open_probes=1, min_requests=100
)


class Probed:
    def __init__(self, name: str) -> None:
        self.name = name
        self.failure: SupplyShortage | None = None

    async def probe(self) -> None:
        if self.failure is not None:
            raise self.failure


class CountingStore(MemorySupplyStore):
    """The in-process store, counting calls by method."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.calls: dict[str, int] = {}

    def __getattribute__(self, name: str) -> Any:
        if name in ("record", "try_probe", "acquire", "release", "sync"):
            counts = object.__getattribute__(self, "calls")
            counts[name] = counts.get(name, 0) + 1
        return object.__getattribute__(self, name)


def manager(
    clock: ManualClock, store: MemorySupplyStore | None = None, **settings: SupplySettings
) -> SupplyManager:
    chosen = settings or {"mini": SupplySettings(breaker=BREAKER)}
    backends: dict[str, Any] = {name: Probed(name) for name in chosen}
    return SupplyManager(chosen, store or MemorySupplyStore(clock), backends, clock=clock)


async def test_the_snapshot_starts_all_clear_and_is_reused_until_something_changes():
    clock = ManualClock()
    supply = manager(clock)
    first = supply.snapshot()
    assert first == {"mini": SupplyState()}
    assert supply.snapshot() is first
    lease = await supply.take("mini", 0, clock.now() + 10)
    await lease.failed("http_503")
    assert supply.snapshot() is not first


async def test_an_open_breaker_turns_half_open_in_the_snapshot_by_time_alone():
    clock = ManualClock()
    supply = manager(clock)
    for _ in range(2):
        await (await supply.take("mini", 0, clock.now() + 10)).failed("refused")
    assert supply.snapshot()["mini"].breaker is BreakerState.OPEN
    assert not supply.snapshot()["mini"].available
    clock.advance(5)
    assert supply.snapshot()["mini"].breaker is BreakerState.HALF_OPEN


async def test_the_cap_shows_only_when_overflow_falls_back():
    clock = ManualClock()
    for overflow, shown in (("fallback", 2), ("queue", None), ("reject", None)):
        capacity = CapacitySettings(max_in_flight=2, overflow=overflow)
        supply = manager(clock, mini=SupplySettings(capacity=capacity))
        await supply.take("mini", 0, clock.now() + 10)
        state = supply.snapshot()["mini"]
        assert state.capacity == shown and state.in_flight == 1


async def test_successes_are_batched_and_flushed_by_the_refresh():
    clock = ManualClock()
    store = CountingStore(clock)
    supply = manager(clock, store)
    for _ in range(50):
        lease = await supply.take("mini", 0, clock.now() + 10)
        await lease.succeeded()
        await lease.release()
    assert store.calls == {}
    await supply.refresh()
    assert store.calls == {"sync": 1}


async def test_a_failure_carries_the_batched_successes_before_it():
    clock = ManualClock()
    store = MemorySupplyStore(clock)
    supply = manager(clock, store)
    await (await supply.take("mini", 0, clock.now() + 10)).failed("refused")
    await (await supply.take("mini", 0, clock.now() + 10)).succeeded()
    await (await supply.take("mini", 0, clock.now() + 10)).failed("refused")
    assert supply.snapshot()["mini"].breaker is BreakerState.CLOSED


async def test_the_refresh_brings_in_what_another_replica_learned():
    clock = ManualClock()
    store = MemorySupplyStore(clock)
    one, two = manager(clock, store), manager(clock, store)
    for _ in range(2):
        await (await one.take("mini", 0, clock.now() + 10)).failed("http_503")
    assert two.snapshot()["mini"].breaker is BreakerState.CLOSED
    await two.start()
    try:  # two sleepers: the refresh and the probe loop
        await clock.wait_for_sleepers(2)
        clock.advance(0.25)
        await clock.wait_for_sleepers(2)
        assert two.snapshot()["mini"].breaker is BreakerState.OPEN
    finally:
        await two.stop()


async def test_failed_probes_open_the_breaker_and_passing_ones_do_not_close_it():
    clock = ManualClock()
    supply = manager(clock)
    backend: Any = supply._backends["mini"]
    backend.failure = SupplyShortage("mini", "probe_refused")
    await supply.probe("mini")
    await supply.probe("mini")
    status = supply.status()["mini"]
    assert status["breaker"] == "open"
    assert status["last_probe"] == {"ok": False, "reason": "probe_refused", "age_s": 0.0}
    backend.failure = None
    await supply.probe("mini")
    assert supply.status()["mini"]["breaker"] == "open"
    assert supply.status()["mini"]["last_probe"]["ok"]


async def test_probes_run_in_the_background_at_their_interval():
    clock = ManualClock()
    settings = SupplySettings(breaker=BREAKER)
    supply = manager(clock, mini=settings)
    backend: Any = supply._backends["mini"]
    backend.failure = SupplyShortage("mini", "probe_failed")
    await supply.start()
    try:
        for _ in range(2):
            await clock.wait_for_sleepers(2)
            clock.advance(settings.probe.interval_s)
        await clock.wait_for_sleepers(2)
        assert supply.snapshot()["mini"].breaker is BreakerState.OPEN
    finally:
        await supply.stop()


async def test_live_leases_are_renewed_and_dropped_ones_expire():
    clock = ManualClock()
    store = MemorySupplyStore(clock)
    capacity = CapacitySettings(max_in_flight=1, lease_ttl_s=3)
    settings = SupplySettings(capacity=capacity)
    supply = manager(clock, store, mini=settings)
    lease = await supply.take("mini", 0, clock.now() + 60)
    for _ in range(4):
        clock.advance(1)
        await supply.refresh()
    assert not (await store.acquire("mini", "other", 0, settings)).granted
    del lease
    gc.collect()
    for _ in range(4):
        clock.advance(1)
        await supply.refresh()
    assert (await store.acquire("mini", "other", 0, settings)).granted


async def test_a_released_lease_frees_its_slot_once():
    clock = ManualClock()
    supply = manager(clock, mini=SupplySettings(capacity=CapacitySettings(max_in_flight=1)))
    lease = await supply.take("mini", 0, clock.now() + 10)
    await lease.release()
    await lease.release()
    again = await supply.take("mini", 0, clock.now() + 10)
    try:
        await supply.take("mini", 0, clock.now() + 10)
    except SupplyShortage as shortage:
        assert shortage.reason == "capacity"
    else:
        raise AssertionError("the cap of one let a second lease through")
    await again.release()


async def test_a_half_open_trial_that_is_released_unreported_frees_its_permit():
    clock = ManualClock()
    store = MemorySupplyStore(clock)
    supply = manager(clock, store)
    for _ in range(2):
        await (await supply.take("mini", 0, clock.now() + 10)).failed("refused")
    clock.advance(5)
    trial = await supply.take("mini", 0, clock.now() + 10)
    await trial.release()
    granted, _ = await store.try_probe("mini", "next", 10, supply.settings("mini"))
    assert granted


async def test_operators_force_and_drain_for_every_replica():
    clock = ManualClock()
    store = MemorySupplyStore(clock)
    one, two = manager(clock, store), manager(clock, store)
    await one.force("mini", Force.OPEN)
    assert one.status()["mini"]["breaker"] == "open"
    assert one.status()["mini"]["forced"] == "open"
    await two.refresh()
    assert two.snapshot()["mini"].breaker is BreakerState.OPEN
    await one.force("mini", Force.AUTO)
    await one.drain("mini", True)
    await two.refresh()
    assert two.snapshot()["mini"] == SupplyState(draining=True)
    assert not two.ready("mini")


async def test_status_reports_quota_and_capacity():
    clock = ManualClock()
    settings = SupplySettings(
        capacity=CapacitySettings(max_in_flight=4), quota=QuotaSettings(rpm=10)
    )
    supply = manager(clock, full=settings)
    await supply.take("full", 0, clock.now() + 10)
    status = supply.status()["full"]
    assert status["in_flight"] == 1 and status["capacity"] == 4
    assert status["overflow"] == "fallback"
    assert status["quota_left"] == 0.9 and status["quota"] == {"rpm": 10, "tpm": None}
    assert status["available"] and status["store_reachable"]


async def test_a_retry_after_is_honoured_for_the_configured_longest():
    clock = ManualClock()
    supply = manager(clock)
    await supply._report("mini", Outcome(failures=1, retry_after=1000))
    assert supply.status()["mini"]["retry_after_s"] == 60.0
