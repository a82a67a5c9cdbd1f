"""Supply for every backend, as one replica sees it: the hot path asks memory, the store
is told about failures at once and about successes in batches, and a background refresh
(every `refresh_s`) brings in what the other replicas learned.

The supply store is for availability, not strictness: if it cannot be reached the manager
fails open (breakers read as they last were, caps and quotas are not enforced), logs once
and counts `router_store_errors{operation="supply_*"}`, so requests keep being served.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from functools import partial
from types import MappingProxyType

from router.backends.base import Backend, SupplyShortage
from router.core.model import BreakerState, SupplyState
from router.errors import NoBackendAvailable, RouterError, StoreUnavailable
from router.ids import unique_id
from router.metrics import Metrics
from router.store.base import StoreError
from router.supply.clock import Clock, MonotonicClock
from router.supply.local import LastProbe, LocalSupply
from router.supply.model import Force, Outcome, Slot
from router.supply.settings import SupplySettings
from router.supply.store import SupplyStore

log = logging.getLogger("router.supply")

_TRIAL_TTL_S = 60.0
"""A trial permit outlives its call by at most this: a replica that dies mid-trial must not
keep a half-open breaker from closing for a whole request timeout."""

_GAUGE = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 0.5, BreakerState.OPEN: 1.0}


class Lease:
    """Permission for one call to one backend: a capacity slot and/or a half-open trial
    permit. Report the outcome (`succeeded` or `failed`) and `release` once the call is
    over, whatever happened; releasing twice is harmless."""

    __slots__ = ("__weakref__", "_manager", "_probe", "_released", "_slot", "backend")

    def __init__(self, manager: SupplyManager, backend: str, probe: str | None) -> None:
        self._manager = manager
        self.backend = backend
        self._probe = probe
        self._slot: str | None = None
        self._released = False

    async def succeeded(self) -> None:
        probe, self._probe = self._probe, None
        await self._manager._report(self.backend, Outcome(successes=1, probe_id=probe))

    async def failed(self, reason: str, retry_after: float | None = None) -> None:
        """Breaker evidence: the backend fell short (`reason` is a shortage code)."""
        probe, self._probe = self._probe, None
        await self._manager._report(
            self.backend, Outcome(failures=1, retry_after=retry_after, probe_id=probe)
        )

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        probe, self._probe = self._probe, None
        if probe is not None:
            await self._manager._report(self.backend, Outcome(probe_id=probe))
        if self._slot is not None:
            await self._manager._give_back(self.backend, self._slot)


class SupplyManager:
    def __init__(
        self,
        settings: Mapping[str, SupplySettings],
        store: SupplyStore,
        backends: Mapping[str, Backend],
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        refresh_s: float = 0.25,
        queue_poll_s: float = 0.05,
    ) -> None:
        self.clock = clock or MonotonicClock()
        self._store = store
        self._backends = backends
        self._metrics = metrics
        self._refresh_s = refresh_s
        self._queue_poll_s = queue_poll_s
        self._local = {name: LocalSupply(s) for name, s in settings.items()}
        self._cached: Mapping[str, SupplyState] | None = None
        self._cached_until = 0.0
        self._store_down = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- reading, from memory only

    def snapshot(self) -> Mapping[str, SupplyState]:
        """Every backend's supply for the policy engine; rebuilt only when something changed."""
        now = self.clock.now()
        if self._cached is None or now >= self._cached_until:
            self._cached = MappingProxyType(
                {name: local.state(now) for name, local in self._local.items()}
            )
            self._cached_until = min(
                (local.next_change(now) for local in self._local.values()), default=now
            )
        return self._cached

    def ready(self, backend: str, at: float | None = None) -> bool:
        """Worth trying now (or at `at`): not draining, open or held by a Retry-After,
        judging from memory only."""
        return self._local[backend].ready(self.clock.now() if at is None else at)

    def settings(self, backend: str) -> SupplySettings:
        return self._local[backend].settings

    # -- the hot path

    async def take(self, backend: str, tokens: int, deadline: float) -> Lease:
        """A lease to call `backend` now, or SupplyShortage saying why not. Raises
        NoBackendAvailable when the backend is full and its overflow is `reject`."""
        local = self._local[backend]
        now = self.clock.now()
        if local.view.draining:
            raise SupplyShortage(backend, "draining")
        if local.held(now):
            raise SupplyShortage(backend, "retry_after", local.hold_until - now)
        state = local.breaker(now)
        if state is BreakerState.OPEN:
            raise SupplyShortage(backend, "circuit_open", local.open_until - now)
        probe = None
        if state is BreakerState.HALF_OPEN:
            probe = await self._trial(backend, local, deadline - now)
        lease = Lease(self, backend, probe)
        if local.settings.capacity is None and local.settings.quota is None:
            return lease
        slot_id = unique_id()
        try:
            slot = await self._acquire(backend, local, slot_id, tokens, deadline)
        except BaseException:
            await lease.release()
            raise
        if not slot.granted:
            await lease.release()
            raise self._refusal(backend, local, slot)
        if local.settings.capacity is not None:
            lease._slot = slot_id
            local.leases.add(slot_id)
            # A lease dropped without release stops being renewed, so its slot expires.
            weakref.finalize(lease, local.leases.discard, slot_id)
        return lease

    async def _trial(self, backend: str, local: LocalSupply, ttl_s: float) -> str | None:
        """A half-open trial permit; None when the breaker turned out closed (or the store
        is unreachable: fail open)."""
        probe_id = unique_id()
        try:
            granted, view = await self._store.try_probe(
                backend, probe_id, min(max(ttl_s, 1.0), _TRIAL_TTL_S), local.settings
            )
        except StoreError as error:
            self._store_failed("probe", error)
            return None
        self._store_ok()
        self._apply(backend, lambda now: local.apply(view, now))
        if granted:
            return probe_id
        now = self.clock.now()
        if local.breaker(now) is BreakerState.CLOSED and not local.held(now):
            return None
        raise SupplyShortage(backend, "circuit_open")

    async def _acquire(
        self, backend: str, local: LocalSupply, slot_id: str, tokens: int, deadline: float
    ) -> Slot:
        slot = await self._try_acquire(backend, local, slot_id, tokens)
        capacity = local.settings.capacity
        if (
            slot.denied_by != "capacity"
            or capacity is None
            or capacity.overflow != "queue"
            or local.queued >= capacity.max_queued
        ):
            return slot
        give_up = min(self.clock.now() + capacity.queue_timeout_s, deadline)
        local.queued += 1
        try:
            while slot.denied_by == "capacity" and (left := give_up - self.clock.now()) > 0:
                await self._wait_for_slot(local, min(left, self._queue_poll_s))
                slot = await self._try_acquire(backend, local, slot_id, tokens)
        finally:
            local.queued -= 1
        return slot

    async def _try_acquire(
        self, backend: str, local: LocalSupply, slot_id: str, tokens: int
    ) -> Slot:
        try:
            slot = await self._store.acquire(backend, slot_id, tokens, local.settings)
        except StoreError as error:
            self._store_failed("acquire", error)
            return Slot(True, in_flight=local.in_flight, quota_left=local.quota_left)
        self._store_ok()

        def note(now: float) -> None:
            local.in_flight, local.quota_left = slot.in_flight, slot.quota_left

        self._apply(backend, note)
        return slot

    async def _wait_for_slot(self, local: LocalSupply, wait_s: float) -> None:
        """Until this replica frees a slot or `wait_s` passes (other replicas' releases are
        only seen by trying again)."""
        released = asyncio.ensure_future(local.released.wait())
        timer = asyncio.ensure_future(self.clock.sleep(wait_s))
        try:
            await asyncio.wait((released, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            released.cancel()
            timer.cancel()

    def _refusal(
        self, backend: str, local: LocalSupply, slot: Slot
    ) -> RouterError | SupplyShortage:
        capacity = local.settings.capacity
        if slot.denied_by == "capacity" and capacity is not None and capacity.overflow == "reject":
            return NoBackendAvailable(
                f"The {backend} backend is serving its maximum of {capacity.max_in_flight} "
                "concurrent requests and is configured to refuse more. Retry in a moment.",
                code="backend_at_capacity",
                retry_after=1.0,
            )
        return SupplyShortage(backend, slot.denied_by or "capacity", slot.retry_after)

    async def _report(self, backend: str, outcome: Outcome) -> None:
        """Failures and trial outcomes go to the store now; plain successes are batched."""
        local = self._local[backend]
        if outcome.failures == 0 and outcome.probe_id is None:
            local.pending_successes += outcome.successes
            return
        if outcome.retry_after is not None:
            local.hold(outcome.retry_after, self.clock.now())
        batched = 0
        if outcome.failures:
            batched, local.pending_successes = local.pending_successes, 0
            outcome = replace(outcome, successes=outcome.successes + batched)
        try:
            view = await self._store.record(backend, outcome, local.settings)
        except StoreError as error:
            local.pending_successes += batched
            self._store_failed("record", error)
            return
        self._store_ok()
        self._apply(backend, lambda now: local.apply(view, now))

    async def _give_back(self, backend: str, slot_id: str) -> None:
        local = self._local[backend]
        local.leases.discard(slot_id)
        local.released.set()
        local.released = asyncio.Event()
        try:
            await self._store.release(backend, slot_id)
        except StoreError as error:
            self._store_failed("release", error)

    # -- background: refresh from the store, probe each backend

    async def start(self) -> None:
        jobs = [self._every(self._refresh_s, self.refresh)]
        for name, local in self._local.items():
            if local.settings.probe.enabled and name in self._backends:
                jobs.append(self._every(local.settings.probe.interval_s, partial(self.probe, name)))
        for job in jobs:
            task = asyncio.create_task(job)
            task.add_done_callback(_log_crash)
            self._tasks.append(task)

    async def stop(self) -> None:
        """Stop the background tasks, flush batched successes, close the store."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.refresh()
        try:
            await self._store.close()
        except StoreError as error:
            log.warning("supply store did not close cleanly", extra={"error": str(error)})

    async def _every(self, interval: float, job: Callable[[], Coroutine[None, None, None]]) -> None:
        while True:
            await self.clock.sleep(interval)
            await job()

    async def refresh(self) -> None:
        """One round trip per backend: flush successes, renew live slots, read shared state."""
        for name in self._local:
            await self._sync(name)

    async def _sync(self, backend: str) -> None:
        local = self._local[backend]
        successes, local.pending_successes = local.pending_successes, 0
        now = self.clock.now()
        renew: list[str] = []
        capacity = local.settings.capacity
        if capacity and local.leases and now - local.last_renewal >= capacity.lease_ttl_s / 3:
            renew, local.last_renewal = list(local.leases), now
        try:
            view = await self._store.sync(backend, successes, renew, local.settings)
        except StoreError as error:
            local.pending_successes += successes
            if renew:
                local.last_renewal = 0.0
            self._store_failed("sync", error)
            return
        self._store_ok()

        def note(now: float) -> None:
            local.apply(view.breaker, now)
            local.in_flight, local.quota_left = view.in_flight, view.quota_left

        self._apply(backend, note)

    async def probe(self, backend: str) -> None:
        """One active health check; a failed one is breaker evidence like a failed call."""
        local = self._local[backend]
        try:
            await self._backends[backend].probe()
        except SupplyShortage as shortage:
            local.last_probe = LastProbe(self.clock.now(), False, shortage.reason)
            await self._report(backend, Outcome(failures=1, retry_after=shortage.retry_after))
        except RouterError as error:
            local.last_probe = LastProbe(self.clock.now(), False, error.code)
            await self._report(backend, Outcome(failures=1))
        else:
            local.last_probe = LastProbe(self.clock.now(), True)

    # -- operators

    async def force(self, backend: str, force: Force) -> None:
        """Override the breaker on every replica; raises StoreUnavailable if it can't."""
        local = self._local[backend]
        try:
            view = await self._store.force(backend, force, local.settings)
        except StoreError as error:
            raise StoreUnavailable(f"Could not change the {backend} breaker: {error}") from None

        def note(now: float) -> None:
            local.hold_until = 0.0
            local.apply(view, now)

        self._apply(backend, note)

    async def drain(self, backend: str, draining: bool) -> None:
        """Stop (or resume) new requests to a backend on every replica."""
        local = self._local[backend]
        try:
            await self._store.drain(backend, draining)
        except StoreError as error:
            raise StoreUnavailable(f"Could not drain the {backend} backend: {error}") from None
        self._apply(backend, lambda now: local.apply(replace(local.view, draining=draining), now))

    def status(self) -> dict[str, dict[str, object]]:
        """What an operator sees per backend in GET /admin/backends."""
        now = self.clock.now()
        return {
            name: {**local.describe(now), "store_reachable": not self._store_down}
            for name, local in self._local.items()
        }

    # -- bookkeeping

    def _apply(self, backend: str, change: Callable[[float], None]) -> None:
        now = self.clock.now()
        change(now)
        self._cached = None
        if self._metrics is not None:
            local = self._local[backend]
            capacity = local.settings.capacity
            self._metrics.breaker_open.labels(backend).set(_GAUGE[local.state(now).breaker])
            self._metrics.in_flight.labels(backend).set(local.in_flight)
            if capacity is not None:
                self._metrics.capacity.labels(backend).set(capacity.max_in_flight)

    def _store_failed(self, operation: str, error: StoreError) -> None:
        if self._metrics is not None:
            self._metrics.store_errors.labels(f"supply_{operation}").inc()
        if not self._store_down:
            self._store_down = True
            log.warning(
                "supply store unreachable: failing open (breakers as last seen, caps "
                "and quotas not enforced)",
                extra={"operation": operation, "error": str(error)},
            )

    def _store_ok(self) -> None:
        if self._store_down:
            self._store_down = False
            log.info("supply store reachable again")


def _log_crash(task: asyncio.Task[None]) -> None:
    """A background loop that died of a bug says so, instead of silently stopping."""
    if not task.cancelled() and task.exception() is not None:
        log.error("supply background task stopped", exc_info=task.exception())
