"""One contract for every supply store: the in-process one (with a manual clock), a real
Redis, and a real Redis Cluster (marker `cluster`).

Time: the memory store reads the injected clock, so `elapse` moves it; the Redis stores read
Redis TIME, which cannot be moved, so there `elapse` waits for real, with windows and
cooldowns of a few hundred milliseconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from router.core.model import BreakerState
from router.store.redis_url import connect
from router.supply.memory import MemorySupplyStore
from router.supply.model import Force, Outcome
from router.supply.redis_store import RedisSupplyStore
from router.supply.settings import (
    BreakerSettings,
    CapacitySettings,
    QuotaSettings,
    RetrySettings,
    SupplySettings,
)
from router.supply.store import SupplyStore
from tests.manual_clock import ManualClock
from tests.redis_servers import RedisCluster, redis_binaries_available

REDIS_URL = "redis://127.0.0.1:6379/0"
COOLDOWN = 0.3

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def settings(**breaker: float) -> SupplySettings:
    values: dict[str, float] = {
        "consecutive_failures": 3,
        "failure_rate": 0.5,
        "min_requests": 6,
        "window_s": 60,
        "cooldown_s": COOLDOWN,
        "half_open_probes": 2,
    }
    values.update(breaker)
    return SupplySettings(
        breaker=BreakerSettings.model_validate(values), retry=RetrySettings(max_retry_after_s=5)
    )


@dataclass
class Subject:
    store: SupplyStore
    elapse: Callable[[float], Awaitable[None]]
    second: Callable[[], SupplyStore]
    """Another replica's view of the same shared state."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    if not redis_binaries_available():
        pytest.skip("redis-server binaries are not installed")
    with RedisCluster() as running:
        yield running


def _redis_available() -> bool:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


async def _real_wait(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.fixture(params=["memory", "redis", pytest.param("cluster", marks=pytest.mark.cluster)])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    if request.param == "memory":
        clock = ManualClock()
        store = MemorySupplyStore(clock)

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        yield Subject(store, advance, lambda: store)
        return
    if request.param == "redis" and not _redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")
    url = request.getfixturevalue("cluster").url if request.param == "cluster" else REDIS_URL
    prefix = f"t{uuid.uuid4().hex[:10]}"
    opened: list[RedisSupplyStore] = []

    def open_store() -> SupplyStore:
        opened.append(RedisSupplyStore(connect(url, 2.0).client, key_prefix=prefix))
        return opened[-1]

    yield Subject(open_store(), _real_wait, open_store)
    cleaner = connect(url, 2.0).client
    async for key in cleaner.scan_iter(match=f"{prefix}:*"):
        await cleaner.delete(key)
    await cleaner.aclose()
    for store in opened:
        await store.close()


async def fail(
    store: SupplyStore, times: int = 1, backend: str = "mini", s: SupplySettings | None = None
) -> BreakerState:
    view = None
    for _ in range(times):
        view = await store.record(backend, Outcome(failures=1), s or settings())
    assert view is not None
    return view.state


async def open_breaker(subject: Subject, s: SupplySettings | None = None) -> None:
    assert await fail(subject.store, 3, s=s) is OPEN


async def half_open(subject: Subject, s: SupplySettings | None = None) -> None:
    await open_breaker(subject, s)
    await subject.elapse(COOLDOWN + 0.05)


async def test_a_new_backend_is_closed_idle_and_unlimited(subject):
    view = await subject.store.sync("mini", 0, [], settings())
    assert view.breaker.state is CLOSED and not view.breaker.draining
    assert view.breaker.forced is Force.AUTO
    assert view.in_flight == 0 and view.quota_left is None


async def test_consecutive_failures_open_the_breaker_for_the_cooldown(subject):
    assert await fail(subject.store, 2) is CLOSED
    view = await subject.store.record("mini", Outcome(failures=1), settings())
    assert view.state is OPEN
    assert 0 < view.open_for <= COOLDOWN


async def test_a_success_resets_the_consecutive_count(subject):
    store = subject.store
    await fail(store, 2)
    await store.record("mini", Outcome(successes=1, failures=1), settings())
    assert await fail(store, 1) is CLOSED
    assert await fail(store, 1) is OPEN


async def test_failure_rate_over_the_window_opens_it(subject):
    store, s = subject.store, settings(consecutive_failures=100)
    for _ in range(2):
        await store.record("mini", Outcome(successes=1), s)
        assert await fail(store, 1, s=s) is CLOSED
    await store.record("mini", Outcome(successes=1), s)
    assert await fail(store, 1, s=s) is OPEN


async def test_below_min_requests_the_rate_does_not_count(subject):
    assert await fail(subject.store, 5, s=settings(consecutive_failures=100)) is CLOSED


async def test_successes_alone_never_open_it(subject):
    view = await subject.store.record("mini", Outcome(successes=50), settings())
    assert view.state is CLOSED


async def test_after_the_cooldown_limited_trials_are_let_through(subject):
    store, s = subject.store, settings()
    await open_breaker(subject)
    granted, view = await store.try_probe("mini", "early", 10, s)
    assert not granted and view.state is OPEN
    await subject.elapse(COOLDOWN + 0.05)
    assert (await store.try_probe("mini", "p1", 10, s))[0]
    granted, view = await store.try_probe("mini", "p2", 10, s)
    assert granted and view.state is HALF_OPEN
    assert not (await subject.second().try_probe("mini", "p3", 10, s))[0]


async def test_enough_trial_successes_close_it(subject):
    store, s = subject.store, settings()
    await half_open(subject)
    for probe in ("p1", "p2"):
        assert (await store.try_probe("mini", probe, 10, s))[0]
    view = await store.record("mini", Outcome(successes=1, probe_id="p1"), s)
    assert view.state is HALF_OPEN
    view = await store.record("mini", Outcome(successes=1, probe_id="p2"), s)
    assert view.state is CLOSED


async def test_a_trial_failure_reopens_it_for_a_new_cooldown(subject):
    store, s = subject.store, settings()
    await half_open(subject)
    assert (await store.try_probe("mini", "p1", 10, s))[0]
    view = await store.record("mini", Outcome(failures=1, probe_id="p1"), s)
    assert view.state is OPEN and view.open_for > COOLDOWN / 2


async def test_outcomes_without_a_permit_do_not_count_while_half_open(subject):
    store, s = subject.store, settings(half_open_probes=1)
    await half_open(subject, s)
    await store.record("mini", Outcome(failures=1), s)
    view = await store.record("mini", Outcome(successes=5), s)
    assert view.state is HALF_OPEN


async def test_a_returned_or_expired_permit_frees_a_trial(subject):
    store, s = subject.store, settings(half_open_probes=1)
    await half_open(subject, s)
    assert (await store.try_probe("mini", "p1", 10, s))[0]
    assert not (await store.try_probe("mini", "p2", 10, s))[0]
    await store.record("mini", Outcome(probe_id="p1"), s)
    assert (await store.try_probe("mini", "p2", 0.1, s))[0]
    await subject.elapse(0.2)
    granted, view = await store.try_probe("mini", "p3", 10, s)
    assert granted and view.state is HALF_OPEN


async def test_retry_after_holds_the_backend_for_every_replica_up_to_a_limit(subject):
    s = settings()
    view = await subject.store.record("mini", Outcome(failures=1, retry_after=2.0), s)
    assert view.state is CLOSED and 1.5 < view.hold_for <= 2.0
    view = await subject.store.record("mini", Outcome(failures=1, retry_after=600), s)
    assert 4.5 < view.hold_for <= 5.0
    other = await subject.second().sync("mini", 0, [], s)
    assert other.breaker.hold_for > 4


async def test_another_replica_sees_the_open_breaker(subject):
    await open_breaker(subject)
    view = await subject.second().sync("mini", 0, [], settings())
    assert view.breaker.state is OPEN


async def test_batched_successes_from_sync_count_toward_the_rate(subject):
    store, s = subject.store, settings(consecutive_failures=100)
    await store.sync("mini", 7, [], s)
    assert await fail(store, 5, s=s) is CLOSED
    assert await fail(store, 2, s=s) is OPEN


async def test_capacity_caps_leases_across_replicas(subject):
    s = SupplySettings(capacity=CapacitySettings(max_in_flight=2))
    one, two = subject.store, subject.second()
    assert (await one.acquire("mini", "a", 0, s)).granted
    slot = await two.acquire("mini", "b", 0, s)
    assert slot.granted and slot.in_flight == 2
    refused = await one.acquire("mini", "c", 0, s)
    assert not refused.granted and refused.denied_by == "capacity" and refused.in_flight == 2
    assert (await one.acquire("mini", "a", 0, s)).granted, "re-acquiring one's own lease"
    await two.release("mini", "b")
    await two.release("mini", "b")
    assert (await one.acquire("mini", "c", 0, s)).granted


async def test_a_crashed_replicas_leases_expire(subject):
    s = SupplySettings(capacity=CapacitySettings(max_in_flight=1, lease_ttl_s=1.0))
    assert (await subject.store.acquire("mini", "crashed", 0, s)).granted
    assert not (await subject.second().acquire("mini", "new", 0, s)).granted
    await subject.elapse(1.2)
    assert (await subject.second().acquire("mini", "new", 0, s)).granted


async def test_sync_renews_live_leases_and_counts_in_flight(subject):
    s = SupplySettings(capacity=CapacitySettings(max_in_flight=1, lease_ttl_s=1.0))
    assert (await subject.store.acquire("mini", "live", 0, s)).granted
    await subject.elapse(0.6)
    view = await subject.store.sync("mini", 0, ["live", "gone"], s)
    assert view.in_flight == 1
    await subject.elapse(0.6)
    assert not (await subject.second().acquire("mini", "other", 0, s)).granted


async def test_quota_spends_requests_and_tokens_before_the_call(subject):
    s = SupplySettings(quota=QuotaSettings(rpm=3, tpm=1000))
    store = subject.store
    first = await store.acquire("full", "1", 400, s)
    assert first.granted and first.quota_left == pytest.approx(0.6, abs=0.01)
    assert (await store.acquire("full", "2", 400, s)).granted
    refused = await store.acquire("full", "3", 400, s)
    assert not refused.granted and refused.denied_by == "quota"
    assert refused.retry_after is not None and 0 < refused.retry_after <= 60
    assert (await subject.second().acquire("full", "4", 100, s)).granted
    assert not (await store.acquire("full", "5", 1, s)).granted
    view = await store.sync("full", 0, [], s)
    assert view.quota_left == pytest.approx(0.0, abs=0.01)


async def test_capacity_and_quota_are_taken_together_or_not_at_all(subject):
    s = SupplySettings(capacity=CapacitySettings(max_in_flight=1), quota=QuotaSettings(rpm=2))
    store = subject.store
    assert (await store.acquire("mini", "a", 0, s)).granted
    assert (await store.acquire("mini", "b", 0, s)).denied_by == "capacity"
    await store.release("mini", "a")
    assert (await store.acquire("mini", "c", 0, s)).granted, "the refusal spent no quota"
    await store.release("mini", "c")
    refused = await store.acquire("mini", "d", 0, s)
    assert refused.denied_by == "quota" and refused.in_flight == 0


async def test_force_overrides_and_restarts_the_evidence(subject):
    store, s = subject.store, settings()
    await fail(store, 2)
    view = await store.force("mini", Force.OPEN, s)
    assert view.state is OPEN and view.forced is Force.OPEN
    assert (await subject.second().sync("mini", 0, [], s)).breaker.state is OPEN
    view = await store.force("mini", Force.CLOSED, s)
    assert view.state is CLOSED
    assert await fail(store, 5) is CLOSED, "forced closed stays closed"
    await store.force("mini", Force.AUTO, s)
    assert await fail(store, 2) is CLOSED, "auto starts from fresh evidence"
    assert await fail(store, 1) is OPEN


async def test_force_forgets_a_retry_after_hold(subject):
    s = settings()
    await subject.store.record("mini", Outcome(failures=1, retry_after=3), s)
    view = await subject.store.force("mini", Force.AUTO, s)
    assert view.hold_for == 0


async def test_drain_is_shared_and_reversible(subject):
    await subject.store.drain("mini", True)
    assert (await subject.second().sync("mini", 0, [], settings())).breaker.draining
    await subject.store.drain("mini", False)
    assert not (await subject.store.sync("mini", 0, [], settings())).breaker.draining


async def test_backends_are_independent(subject):
    await open_breaker(subject)
    assert (await subject.store.sync("full", 0, [], settings())).breaker.state is CLOSED


async def test_concurrent_acquires_never_exceed_the_cap(subject):
    s = SupplySettings(capacity=CapacitySettings(max_in_flight=5))
    stores = [subject.store, subject.second(), subject.second()]
    slots = await asyncio.gather(*(stores[i % 3].acquire("mini", f"r{i}", 0, s) for i in range(60)))
    assert sum(slot.granted for slot in slots) == 5
