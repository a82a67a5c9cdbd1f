"""The dispatcher over the in-process supply store: fallback, retries, breaker evidence,
capacity and quota, with scripted backends and a manual clock (time only moves when a test
moves it, so waits are measured, never slept)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

import pytest

from router.backends.base import Completion, SupplyShortage
from router.core.model import BreakerState
from router.dispatch import Dispatcher, Hops, Target
from router.errors import (
    NoBackendAvailable,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
)
from router.metrics import Metrics
from router.store.base import StoreError
from router.supply.manager import SupplyManager
from router.supply.memory import MemorySupplyStore
from router.supply.settings import (
    BreakerSettings,
    CapacitySettings,
    QuotaSettings,
    RetrySettings,
    SupplySettings,
)
from tests.manual_clock import ManualClock

T = TypeVar("T")
LENIENT = BreakerSettings(consecutive_failures=100, min_requests=100, cooldown_s=5)


class Stream:
    def __init__(self, events: list[bytes | BaseException]) -> None:
        self.first = [b"data: first\n\n"]
        self._events = events
        self.closed = False

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[list[bytes]]:
        for event in self._events:
            if isinstance(event, BaseException):
                raise event
            yield [event]

    async def aclose(self) -> None:
        self.closed = True


class Scripted:
    """A backend playing back one outcome per call: an exception to raise, an Event to wait
    for before answering, or nothing (answer at once)."""

    def __init__(self, name: str, *script: BaseException | asyncio.Event | None) -> None:
        self.name = name
        self.script = list(script)
        self.calls = 0
        self.timeouts: list[float] = []
        self.stream_events: list[bytes | BaseException] = [b"data: [DONE]\n\n"]
        self.streams: list[Stream] = []
        self._called = asyncio.Event()

    async def until_called(self, count: int) -> None:
        while self.calls < count:
            called = self._called
            await called.wait()

    async def _play(self, timeout_s: float) -> None:
        self.calls += 1
        self._called.set()
        self._called = asyncio.Event()
        self.timeouts.append(timeout_s)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, asyncio.Event):
            await step.wait()

    async def complete(self, body: dict[str, Any], timeout_s: float) -> Completion:
        await self._play(timeout_s)
        return Completion(b"{}", {"choices": [], "by": self.name})

    async def stream(self, body: dict[str, Any], timeout_s: float) -> Stream:
        await self._play(timeout_s)
        self.streams.append(Stream(self.stream_events))
        return self.streams[-1]

    async def probe(self) -> None:
        return None

    async def close(self) -> None:
        return None


def short(
    backend: str, reason: str = "http_503", retry_after: float | None = None
) -> SupplyShortage:
    return SupplyShortage(backend, reason, retry_after)


class World:
    def __init__(
        self,
        backends: Mapping[str, Scripted],
        settings: Mapping[str, SupplySettings] | None = None,
        metrics: Metrics | None = None,
        store: Any = None,
    ) -> None:
        self.clock = ManualClock()
        self.backends = backends
        chosen = {
            name: (settings or {}).get(name, SupplySettings(breaker=LENIENT)) for name in backends
        }
        self.store = store or MemorySupplyStore(self.clock)
        self.supply = SupplyManager(chosen, self.store, backends, clock=self.clock, metrics=metrics)
        self.dispatcher = Dispatcher(backends, self.supply, jitter=lambda: 1.0)
        self.waits: list[float] = []

    def targets(self, *names: str, tokens: int = 0) -> list[Target]:
        return [Target(name, {"model": name}, tokens) for name in (names or self.backends)]

    async def drive(self, work: Awaitable[T]) -> T:
        """Run `work`, jumping the clock over every sleep it makes (recorded in `waits`)."""
        task = asyncio.ensure_future(work)
        while not task.done():
            sleeping = asyncio.ensure_future(self.clock.wait_for_sleepers())
            await asyncio.wait({task, sleeping}, return_when=asyncio.FIRST_COMPLETED)
            if sleeping.done() and not task.done():
                self.waits.append(self.clock.jump())
            sleeping.cancel()
        return task.result()

    async def complete(
        self, *names: str, hops: Hops | None = None, budget: float = 30.0, tokens: int = 0
    ) -> tuple[str, Completion]:
        return await self.drive(
            self.dispatcher.complete(
                self.targets(*names, tokens=tokens), self.clock.now() + budget, hops or Hops()
            )
        )

    def breaker(self, name: str) -> BreakerState:
        return self.supply.snapshot()[name].breaker


def pair(mini: Scripted | None = None, full: Scripted | None = None, **kwargs: Any) -> World:
    return World({"mini": mini or Scripted("mini"), "full": full or Scripted("full")}, **kwargs)


async def test_the_first_candidate_serves_when_it_can():
    world = pair()
    hops = Hops()
    backend, completion = await world.complete(hops=hops)
    assert backend == "mini" and completion.payload["by"] == "mini"
    assert hops.tried == [] and world.backends["full"].calls == 0


@pytest.mark.parametrize(
    "reason", ["http_429", "http_503", "http_529", "refused", "dropped", "first_byte_timeout"]
)
async def test_a_shortage_moves_the_request_to_the_next_candidate(reason):
    world = pair(Scripted("mini", short("mini", reason)))
    hops = Hops()
    backend, _ = await world.complete(hops=hops)
    assert backend == "full"
    assert hops.tried == [("mini", reason)] and hops.header() == f"mini:{reason}"
    assert world.backends["mini"].calls == 1 and world.waits == []


@pytest.mark.parametrize("error", [UpstreamFailed("HTTP 502"), UpstreamTimeout("slow")])
async def test_an_upstream_failure_falls_back_and_counts_against_the_breaker(error):
    settings = SupplySettings(breaker=BreakerSettings(consecutive_failures=2, cooldown_s=5))
    world = pair(Scripted("mini", error, error), settings={"mini": settings})
    hops = Hops()
    assert (await world.complete(hops=hops))[0] == "full"
    assert hops.tried == [("mini", error.code)]
    await world.complete()
    assert world.breaker("mini") is BreakerState.OPEN


async def test_when_every_candidate_fails_the_last_failure_is_the_answer():
    world = pair(
        Scripted("mini", UpstreamFailed("mini broke")),
        Scripted("full", UpstreamFailed("full broke")),
    )
    with pytest.raises(UpstreamFailed, match="full broke"):
        await world.complete()


async def test_a_rejection_is_relayed_at_once_and_never_trips_the_breaker():
    settings = SupplySettings(breaker=BreakerSettings(consecutive_failures=1))
    rejected = [UpstreamRejected(400, "bad request") for _ in range(3)]
    world = pair(Scripted("mini", *rejected), settings={"mini": settings})
    for _ in range(3):
        with pytest.raises(UpstreamRejected):
            await world.complete()
    assert world.backends["full"].calls == 0
    assert world.breaker("mini") is BreakerState.CLOSED


async def test_when_every_candidate_is_short_the_answer_is_a_fast_503_that_says_so():
    world = pair(
        Scripted("mini", short("mini", "http_429", 30.0)),
        Scripted("full", short("full", "refused")),
        settings={
            name: SupplySettings(breaker=LENIENT, retry=RetrySettings(attempts=0))
            for name in ("mini", "full")
        },
    )
    with pytest.raises(NoBackendAvailable) as raised:
        await world.complete()
    error = raised.value
    assert error.status == 503 and error.code == "no_backend_available"
    assert "unavailable right now" in error.message
    assert "mini is rate-limited (HTTP 429)" in error.message
    assert "full refused the connection" in error.message
    assert error.retry_after == 30.0 and error.headers() == {"retry-after": "30"}
    assert [b.calls for b in world.backends.values()] == [1, 1]
    assert world.waits == []


async def test_the_last_candidate_is_retried_after_its_retry_after():
    world = World({"full": Scripted("full", short("full", "http_429", 0.5))})
    hops = Hops()
    backend, _ = await world.complete(hops=hops)
    assert backend == "full" and world.backends["full"].calls == 2
    assert world.waits == [0.5]
    assert hops.tried == [("full", "http_429")]


async def test_retries_back_off_exponentially_and_stop_at_the_bound():
    retry = RetrySettings(attempts=3, backoff_s=0.1, max_backoff_s=1.0)
    failures = [short("full") for _ in range(5)]
    world = World(
        {"full": Scripted("full", *failures)},
        settings={"full": SupplySettings(breaker=LENIENT, retry=retry)},
    )
    with pytest.raises(NoBackendAvailable):
        await world.complete()
    assert world.backends["full"].calls == 4
    assert world.waits == pytest.approx([0.1, 0.2, 0.4])


async def test_backoff_is_jittered():
    world = World({"full": Scripted("full", short("full"))})
    world.dispatcher = Dispatcher(world.backends, world.supply, jitter=lambda: 0.25)
    await world.complete()
    assert world.waits == pytest.approx([0.025])


async def test_a_long_retry_after_is_not_waited_for():
    world = World({"full": Scripted("full", short("full", "http_429", 10.0))})
    with pytest.raises(NoBackendAvailable) as raised:
        await world.complete()
    assert world.backends["full"].calls == 1 and world.waits == []
    assert raised.value.retry_after == 10.0


async def test_no_retry_on_the_same_backend_while_another_candidate_is_ready():
    retry = SupplySettings(breaker=LENIENT, retry=RetrySettings(attempts=5))
    world = pair(Scripted("mini", short("mini")), settings={"mini": retry})
    assert (await world.complete())[0] == "full"
    assert world.backends["mini"].calls == 1 and world.waits == []


async def test_retries_end_when_the_breaker_opens():
    settings = SupplySettings(
        breaker=BreakerSettings(consecutive_failures=2), retry=RetrySettings(attempts=5)
    )
    world = World(
        {"full": Scripted("full", *[short("full") for _ in range(5)])}, settings={"full": settings}
    )
    with pytest.raises(NoBackendAvailable):
        await world.complete()
    assert world.backends["full"].calls == 2


async def test_retries_stay_within_the_deadline():
    world = World({"full": Scripted("full", short("full", "http_503", 1.5))})
    with pytest.raises(NoBackendAvailable):
        await world.complete(budget=1.0)
    assert world.backends["full"].calls == 1


async def test_a_passed_deadline_is_a_timeout_and_calls_get_what_is_left():
    world = pair()
    with pytest.raises(UpstreamTimeout):
        await world.complete(budget=0)
    await world.complete(budget=7)
    assert world.backends["mini"].timeouts == [7]


async def test_an_open_circuit_is_skipped_without_calling_until_its_trial():
    settings = SupplySettings(
        breaker=BreakerSettings(consecutive_failures=1, cooldown_s=5, half_open_probes=1)
    )
    world = pair(Scripted("mini", short("mini")), settings={"mini": settings})
    await world.complete()
    assert world.breaker("mini") is BreakerState.OPEN
    hops = Hops()
    assert (await world.complete(hops=hops))[0] == "full"
    assert hops.tried == [("mini", "circuit_open")] and world.backends["mini"].calls == 1
    world.clock.advance(5)
    assert world.breaker("mini") is BreakerState.HALF_OPEN
    assert (await world.complete())[0] == "mini"
    assert world.breaker("mini") is BreakerState.CLOSED


async def test_only_the_permitted_trials_reach_a_half_open_backend():
    settings = SupplySettings(
        breaker=BreakerSettings(consecutive_failures=1, cooldown_s=5, half_open_probes=1)
    )
    gate = asyncio.Event()
    world = pair(Scripted("mini", short("mini"), gate), settings={"mini": settings})
    await world.complete()
    world.clock.advance(5)
    trial = asyncio.create_task(world.complete())
    await world.backends["mini"].until_called(2)
    hops = Hops()
    assert (await world.complete(hops=hops))[0] == "full"
    assert hops.tried == [("mini", "circuit_open")]
    gate.set()
    assert (await trial)[0] == "mini"


async def test_a_retry_after_holds_the_backend_for_later_requests():
    world = pair(Scripted("mini", short("mini", "http_429", 3.0)))
    await world.complete()
    hops = Hops()
    assert (await world.complete(hops=hops))[0] == "full"
    assert hops.tried == [("mini", "retry_after")]
    assert world.breaker("mini") is BreakerState.OPEN, "the engine sees a held backend as open"
    world.clock.advance(3)
    assert (await world.complete())[0] == "mini"


async def test_a_draining_backend_is_skipped():
    world = pair()
    await world.supply.drain("mini", True)
    hops = Hops()
    assert (await world.complete(hops=hops))[0] == "full"
    assert hops.tried == [("mini", "draining")]
    await world.supply.drain("mini", False)
    assert (await world.complete())[0] == "mini"


async def test_candidates_are_never_added():
    world = pair(Scripted("mini", short("mini", "http_429", 30.0)))
    with pytest.raises(NoBackendAvailable):
        await world.complete("mini")
    assert world.backends["full"].calls == 0


def capped(overflow: str, **extra: Any) -> dict[str, SupplySettings]:
    capacity = CapacitySettings(max_in_flight=1, overflow=overflow, **extra)
    return {"mini": SupplySettings(breaker=LENIENT, capacity=capacity)}


async def test_at_capacity_the_request_falls_back_and_the_slot_returns_after():
    gate = asyncio.Event()
    world = pair(Scripted("mini", gate), settings=capped("fallback"))
    first = asyncio.create_task(world.complete())
    await world.backends["mini"].until_called(1)
    assert world.supply.snapshot()["mini"].in_flight == 1
    hops = Hops()
    assert (await world.complete(hops=hops))[0] == "full"
    assert hops.tried == [("mini", "capacity")]
    gate.set()
    assert (await first)[0] == "mini"
    assert (await world.complete())[0] == "mini"


async def test_at_capacity_reject_answers_503_without_falling_back():
    gate = asyncio.Event()
    world = pair(Scripted("mini", gate), settings=capped("reject"))
    first = asyncio.create_task(world.complete())
    await world.backends["mini"].until_called(1)
    with pytest.raises(NoBackendAvailable) as raised:
        await world.complete()
    assert raised.value.code == "backend_at_capacity" and "maximum of 1" in raised.value.message
    assert world.backends["full"].calls == 0
    gate.set()
    await first


async def test_at_capacity_queue_waits_for_a_slot_freed_here():
    gate = asyncio.Event()
    world = pair(Scripted("mini", gate), settings=capped("queue", queue_timeout_s=5))
    first = asyncio.create_task(world.complete())
    await world.backends["mini"].until_called(1)
    second = asyncio.create_task(
        world.dispatcher.complete(world.targets(), world.clock.now() + 30, Hops())
    )
    await world.clock.wait_for_sleepers()
    gate.set()
    assert (await first)[0] == "mini"
    assert (await second)[0] == "mini"
    assert world.backends["full"].calls == 0


async def test_at_capacity_queue_gives_up_after_its_timeout():
    gate = asyncio.Event()
    world = pair(Scripted("mini", gate), settings=capped("queue", queue_timeout_s=0.2))
    first = asyncio.create_task(world.complete())
    await world.backends["mini"].until_called(1)
    hops = Hops()
    assert (await world.complete(hops=hops))[0] == "full"
    assert hops.tried == [("mini", "capacity")]
    assert sum(world.waits) == pytest.approx(0.2)
    gate.set()
    await first


async def test_a_stream_holds_its_slot_until_closed():
    world = pair(settings=capped("fallback"))
    backend, stream = await world.dispatcher.stream(world.targets(), world.clock.now() + 30, Hops())
    assert backend == "mini" and stream.first == [b"data: first\n\n"]
    assert [batch async for batch in stream] == [[b"data: [DONE]\n\n"]]
    assert (await world.complete())[0] == "full"
    await stream.aclose()
    assert world.backends["mini"].streams[0].closed
    assert (await world.complete())[0] == "mini"


async def test_a_stream_falls_back_before_its_first_byte():
    world = pair(Scripted("mini", short("mini", "first_byte_timeout")))
    hops = Hops()
    backend, stream = await world.drive(
        world.dispatcher.stream(world.targets(), world.clock.now() + 30, hops)
    )
    assert backend == "full" and hops.tried == [("mini", "first_byte_timeout")]
    await stream.aclose()


async def test_a_stream_cut_mid_way_counts_against_the_breaker():
    settings = SupplySettings(breaker=BreakerSettings(consecutive_failures=1))
    world = pair(settings={"mini": settings})
    world.backends["mini"].stream_events = [UpstreamFailed("cut")]
    _, stream = await world.dispatcher.stream(world.targets(), world.clock.now() + 30, Hops())
    with pytest.raises(UpstreamFailed):
        async for _ in stream:
            pass
    await stream.aclose()
    assert world.breaker("mini") is BreakerState.OPEN


async def test_a_used_up_quota_routes_away_before_the_provider_is_called():
    quota = {"full": SupplySettings(breaker=LENIENT, quota=QuotaSettings(rpm=100, tpm=1000))}
    world = pair(settings=quota)
    assert (await world.complete("full", "mini", tokens=600))[0] == "full"
    hops = Hops()
    assert (await world.complete("full", "mini", hops=hops, tokens=600))[0] == "mini"
    assert hops.tried == [("full", "quota")] and world.backends["full"].calls == 1
    assert world.supply.snapshot()["full"].quota_left_fraction == pytest.approx(0.4)


class DownStore:
    """A supply store whose every call fails, like an unreachable Redis."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            raise StoreError(f"{name}: connection refused")

        return fail


async def test_an_unreachable_store_fails_open_logs_once_and_counts(caplog):
    metrics = Metrics()
    world = pair(
        Scripted("mini", short("mini")),
        settings=capped("fallback"),
        metrics=metrics,
        store=DownStore(),
    )
    with caplog.at_level(logging.WARNING, logger="router.supply"):
        assert (await world.complete())[0] == "full"
        for _ in range(3):
            assert (await world.complete())[0] == "mini"
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1
    errors = metrics.registry.get_sample_value(
        "router_store_errors_total", {"operation": "supply_acquire"}
    )
    assert errors == 4
