"""The only door the request pipeline has to money: admit, settle, release, budget left.

Admission reserves the worst case over every candidate backend (a fallback may be the pricier
one) at the prices in force at admission, on the key's and the team's budgets, in one store
round trip; settlement charges actual usage at those same prices, in one more. Team budgets
come from a short cache (refreshed in the background) so the hot path stays at one round trip
each way; an admin change reaches other replicas within its TTL.

When the store is unreachable, fail mode `closed` turns admission away (503); `open` admits
locally, without limits. Either way a served request is never lost: a settlement (or a
release) the store could not take is journaled in memory, logged in full, and replayed in the
background until the store takes it (settle is idempotent per request_id, so a replay of one
that did land is harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from router.core.cost import actual_cost, worst_case_cost
from router.core.model import BudgetLeft, Price, Usage
from router.errors import BudgetExceeded, NoBackendAvailable, RateLimited, StoreUnavailable
from router.ids import unique_id
from router.pricing import PriceBook, PriceUnknown, format_usd
from router.store.base import (
    AdmitRequest,
    AdmitResult,
    Budget,
    BudgetStatus,
    Clock,
    Denial,
    KeyRecord,
    LedgerEntry,
    Period,
    Scope,
    Settlement,
    Store,
    StoreError,
)
from router.types import Micros

log = logging.getLogger("router.accounting")

FailMode = Literal["closed", "open"]
_STORE_DOWN_LOG_EVERY_S = 5.0
_REPLAY_BATCH = 32  # journal entries replayed at once: half the Redis pool


@dataclass(frozen=True, slots=True)
class Admission:
    """What was reserved for one request, and at which prices."""

    request_id: str
    key: KeyRecord
    budgets: tuple[Budget, ...]
    reserved: Micros
    prices: Mapping[str, Price]
    """Backend name -> the price version in force at admission; settle charges with it."""
    tokens: int
    admitted_at: float
    local: bool = False
    """Admitted without the store (fail mode `open` while it was unreachable)."""
    store_id: str = ""
    """The id the store holds the reservation and the settlement under, when it is not
    `request_id`: a client chooses its x-request-id and may repeat it, so a repeated one is
    stored with a unique suffix (the ledger entry keeps the client's id)."""

    @property
    def charge_id(self) -> str:
        return self.store_id or self.request_id


@dataclass(frozen=True, slots=True)
class _Pending:
    """A store write that failed and waits in the journal."""

    settlement: Settlement | None = None
    release: Admission | None = None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _who(key: KeyRecord, budget: Budget) -> str:
    if budget.scope is Scope.TEAM:
        return f"Team '{budget.scope_id}'"
    return f"Key '{key.name or key.key_id}'"


def _period(budget: Budget) -> str:
    if budget.period is Period.ROLLING:
        return f"rolling {budget.window_s} s"
    return "daily" if budget.period is Period.DAY else "monthly"


def _tightest(statuses: Sequence[BudgetStatus]) -> BudgetLeft | None:
    """The budget closest to running out, relative to its size."""
    if not statuses:
        return None
    tightest = min(
        statuses,
        key=lambda s: (
            s.remaining / s.budget.hard_limit if s.budget.hard_limit > 0 else 0.0,
            s.remaining,
        ),
    )
    return BudgetLeft(
        max(0, tightest.remaining), tightest.budget.hard_limit, tightest.budget.soft_limit
    )


class Accountant:
    """Reservations and charges for every request; see the module docstring."""

    def __init__(
        self,
        store: Store,
        prices: PriceBook,
        *,
        fail_mode: FailMode = "closed",
        clock: Clock = time.time,
        team_budget_ttl_s: float = 5.0,
        lease_ttl_ms: int = 600_000,
        replay_interval_s: float = 1.0,
    ) -> None:
        self._store = store
        self._prices = prices
        self._fail_mode = fail_mode
        self._clock = clock
        self._team_ttl = team_budget_ttl_s
        self._lease_ttl_ms = lease_ttl_ms
        self._replay_interval = replay_interval_s
        self._teams: dict[str, tuple[tuple[Budget, ...], float]] = {}
        self._left: dict[tuple[Scope, str], tuple[BudgetStatus, ...]] = {}
        self._journal: deque[_Pending] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshing: set[str] = set()
        self._replaying: asyncio.Task[None] | None = None
        self._store_answered = asyncio.Event()
        self._store_down_logged = -math.inf

    @property
    def journal_size(self) -> int:
        """Settlements and releases waiting for the store to come back."""
        return len(self._journal)

    async def admit(
        self,
        request_id: str,
        key: KeyRecord,
        candidates: Sequence[tuple[str, str]],
        prompt_tokens: int,
        max_output_tokens: int,
    ) -> Admission:
        """Reserve the worst case over `candidates` ((backend, price_model) pairs) or raise
        BudgetExceeded / RateLimited (429), StoreUnavailable (503, fail mode closed), or
        NoBackendAvailable (503) when a candidate has no price."""
        now = self._clock()
        prices = {backend: self._price(backend, model, now) for backend, model in candidates}
        if not prices:
            raise ValueError("admission needs at least one candidate backend")
        reserve = max(worst_case_cost(p, prompt_tokens, max_output_tokens) for p in prices.values())
        tokens = prompt_tokens + max_output_tokens
        tpm = key.limits.tpm
        if tpm is not None and tokens > tpm:
            raise RateLimited(
                f"This request may use up to {tokens} tokens (prompt plus max_tokens), more "
                f"than key '{key.name or key.key_id}' may use in a minute ({tpm}). Lower "
                f"max_tokens or ask your admin to raise the limit.",
                code="tokens_per_minute",
            )
        budgets = key.budgets
        store_id = request_id
        try:
            budgets = key.budgets + await self._team_budgets(key.team)
            result = await self._store.admit(
                AdmitRequest(
                    store_id,
                    key.key_id,
                    key.team,
                    budgets,
                    key.limits,
                    reserve,
                    tokens,
                    self._lease_ttl_ms,
                    unique_id(),
                )
            )
            if result.taken:
                # Another request of this team used the same id (the client's x-request-id,
                # in flight or already settled): this one is a request of its own, to be
                # checked, reserved and charged on its own, not folded into the other. (A
                # retry of this very admission carries its nonce and is answered 'admitted'.)
                store_id = f"{request_id}.{unique_id()}"
                result = await self._store.admit(
                    AdmitRequest(
                        store_id,
                        key.key_id,
                        key.team,
                        budgets,
                        key.limits,
                        reserve,
                        tokens,
                        self._lease_ttl_ms,
                        unique_id(),
                    )
                )
        except StoreError as exc:
            admission = Admission(
                request_id,
                key,
                budgets,
                reserve,
                prices,
                tokens,
                now,
                local=True,
                store_id=store_id,
            )
            if self._fail_mode == "open":
                self._store_down(exc)
                return admission
            if exc.maybe_applied:  # the reservation may exist: give it back, or it is charged
                self._enqueue(_Pending(release=replace(admission, local=False)), exc)
            raise StoreUnavailable("The budget store is unreachable; retry shortly.") from exc
        self._remember(result.budgets)
        if self._journal:
            self._store_answered.set()
        if result.taken:  # a random 12-hex-digit suffix collided: refuse rather than share
            raise StoreUnavailable("The request could not be given an id of its own; retry.")
        if not result.admitted:
            raise self._denial(key, result, reserve, tokens, now)
        return Admission(request_id, key, budgets, reserve, prices, tokens, now, store_id=store_id)

    def _price(self, backend: str, model: str, now: float) -> Price:
        try:
            return self._prices.price_at(model, now)
        except PriceUnknown as exc:
            raise NoBackendAvailable(
                f"No price is configured for model '{model}' (backend '{backend}'), and the "
                f"router never serves for free. Ask your admin to set one (router prices "
                f"set {model} ...).",
                code="price_unknown",
            ) from exc

    def _denial(
        self, key: KeyRecord, result: AdmitResult, reserve: Micros, tokens: int, now: float
    ) -> BudgetExceeded | RateLimited:
        name = key.name or key.key_id
        retry = result.retry_after_s
        wait = f"retry in {math.ceil(retry)} s" if retry else "retry shortly"
        limits = key.limits
        if result.denied_by is Denial.RPM:
            return RateLimited(
                f"Key '{name}' is over its limit of {limits.rpm} requests per minute; {wait}.",
                retry_after=retry,
            )
        if result.denied_by is Denial.TPM:
            return RateLimited(
                f"Key '{name}' is over its limit of {limits.tpm} tokens per "
                f"minute (this request may use {tokens}); {wait}, or lower "
                f"max_tokens.",
                code="tokens_per_minute",
                retry_after=retry,
            )
        if result.denied_by is Denial.CONCURRENCY:
            return RateLimited(
                f"Key '{name}' already has {limits.max_concurrency} requests in "
                f"flight, its limit; retry when one finishes.",
                code="too_many_concurrent_requests",
                retry_after=retry,
            )
        denied = result.denied_budget
        assert denied is not None, "a budget denial names its budget"
        budget = denied.budget
        if denied.resets_at is None:
            resets = "room comes back as requests in flight finish"
        elif budget.period is Period.ROLLING:
            resets = f"older spend starts leaving the window at {_iso(denied.resets_at)}"
        else:
            resets = f"resets at {_iso(denied.resets_at)}"
        return BudgetExceeded(
            f"{_who(key, budget)} {_period(budget)} budget of {format_usd(budget.hard_limit)} "
            f"has {format_usd(max(0, denied.remaining))} left and this request may cost up "
            f"to {format_usd(reserve)}; {resets}. Lower max_tokens or ask your admin to "
            f"raise the budget.",
            retry_after=None if denied.resets_at is None else max(1.0, denied.resets_at - now),
        )

    async def settle(
        self,
        admission: Admission,
        backend: str,
        usage: Usage,
        *,
        rule: str,
        fallbacks: Sequence[str],
        latency_ms: int,
        status: str = "ok",
    ) -> LedgerEntry:
        """Charge what the request used, at the admission-time price of the backend that
        served it. Never raises for a store failure: the charge is journaled instead."""
        price = admission.prices.get(backend)
        if price is None:
            price = max(admission.prices.values(), key=lambda p: worst_case_cost(p, 1, 1))
            log.error(
                "settling %s served by %r, which was not a candidate at admission; "
                "charging the priciest candidate's price (%s v%d)",
                admission.request_id,
                backend,
                price.model,
                price.version,
            )
        cost = actual_cost(price, usage)
        extra = {"reserved": str(admission.reserved)}
        if usage.counted:
            extra["usage"] = "counted"
        if admission.local:
            extra["admission"] = "local"
        key = admission.key
        entry = LedgerEntry(
            admission.request_id,
            key.key_id,
            key.team,
            backend,
            price.model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            price.version,
            cost,
            rule,
            tuple(fallbacks),
            latency_ms,
            status,
            self._clock(),
            extra,
        )
        settlement = Settlement(
            admission.charge_id, key.key_id, key.team, admission.budgets, cost, entry
        )
        try:
            self._remember(await self._store.settle(settlement))
        except StoreError as exc:
            self._enqueue(_Pending(settlement=settlement), exc)
        return entry

    async def release(self, admission: Admission) -> None:
        """Give the reservation back: the request was never served."""
        if admission.local:
            return
        key = admission.key
        try:
            await self._store.release(admission.charge_id, key.key_id, key.team, admission.budgets)
        except StoreError as exc:
            self._enqueue(_Pending(release=admission), exc)

    def budget_left(self, key: KeyRecord) -> tuple[BudgetLeft | None, BudgetLeft | None]:
        """(key, team) room under the tightest budget, as of the last admit/settle reply
        that touched them; None where there is no budget or nothing is known yet."""
        return (
            _tightest(self._left.get((Scope.KEY, key.key_id), ())),
            _tightest(self._left.get((Scope.TEAM, key.team), ())),
        )

    def forget_team_budgets(self, team: str) -> None:
        """Drop the cached team budgets (after an admin change on this replica)."""
        self._teams.pop(team, None)

    def _remember(self, statuses: Sequence[BudgetStatus]) -> None:
        grouped: dict[tuple[Scope, str], list[BudgetStatus]] = {}
        for s in statuses:
            grouped.setdefault((s.budget.scope, s.budget.scope_id), []).append(s)
        for scope, group in grouped.items():
            self._left[scope] = tuple(group)

    async def _team_budgets(self, team: str) -> tuple[Budget, ...]:
        cached = self._teams.get(team)
        if cached is None:
            budgets = await self._store.team_budgets(team)
            self._teams[team] = (budgets, time.monotonic())
            return budgets
        if time.monotonic() - cached[1] > self._team_ttl and team not in self._refreshing:
            self._refreshing.add(team)
            self._spawn(self._refresh_team(team))
        return cached[0]

    async def _refresh_team(self, team: str) -> None:
        try:
            self._teams[team] = (await self._store.team_budgets(team), time.monotonic())
        except StoreError as exc:
            log.warning("could not refresh team %r budgets (%s); using the cached ones", team, exc)
        finally:
            self._refreshing.discard(team)

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _store_down(self, exc: StoreError) -> None:
        now = time.monotonic()
        if now - self._store_down_logged >= _STORE_DOWN_LOG_EVERY_S:
            self._store_down_logged = now
            log.error(
                "budget store unreachable (%s); fail mode open: admitting without "
                "budgets or limits until it is back",
                exc,
            )

    def _enqueue(self, pending: _Pending, exc: StoreError) -> None:
        if pending.settlement is not None:
            log.error(
                "budget store unreachable (%s); journaled settlement for replay: %s",
                exc,
                json.dumps(asdict(pending.settlement.entry), sort_keys=True),
            )
        elif pending.release is not None:
            log.warning(
                "budget store unreachable (%s); journaled release of %s for replay",
                exc,
                pending.release.request_id,
            )
        self._journal.append(pending)
        if self._replaying is None or self._replaying.done():
            self._replaying = asyncio.get_running_loop().create_task(
                self._replay(), name="journal-replay"
            )

    async def _apply(self, pending: _Pending) -> None:
        if pending.settlement is not None:
            self._remember(await self._store.settle(pending.settlement))
        elif pending.release is not None:
            admission = pending.release
            await self._store.release(
                admission.charge_id, admission.key.key_id, admission.key.team, admission.budgets
            )

    async def flush(self) -> bool:
        """Replay the journal, up to `_REPLAY_BATCH` entries at once (each is idempotent per
        request id and counters add up in any order, so concurrency is safe and takes one
        round trip per batch, not per entry); stop after a batch that met a failure. True
        when the journal is empty. An entry leaves the journal only once the store took it."""
        while self._journal:
            batch = list(itertools.islice(self._journal, _REPLAY_BATCH))
            outcomes = await asyncio.gather(
                *(self._apply(p) for p in batch), return_exceptions=True
            )
            taken = {id(p) for p, outcome in zip(batch, outcomes, strict=True) if outcome is None}
            self._journal = deque(p for p in self._journal if id(p) not in taken)
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            for failure in failures:
                if not isinstance(failure, StoreError):
                    raise failure
            if failures:
                log.warning(
                    "journal replay deferred (%d pending): %s", len(self._journal), failures[0]
                )
                return False
        return True

    async def _replay(self) -> None:
        """Retry every interval (one fast-failing call while the store is down), and at once
        when a live request finds the store answering again."""
        while not await self.flush():
            self._store_answered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._store_answered.wait(), self._replay_interval)
        log.info("journal replayed: the budget store has every settlement")

    async def close(self) -> None:
        """Try one last replay; whatever the store still cannot take is logged in full."""
        for task in [*self._tasks, *([self._replaying] if self._replaying else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not await self.flush():
            for pending in self._journal:
                if pending.settlement is not None:
                    log.error(
                        "unsettled at shutdown (charge it by hand): %s",
                        json.dumps(asdict(pending.settlement.entry), sort_keys=True),
                    )
                elif pending.release is not None:
                    log.error(
                        "unreleased at shutdown: %s stays reserved until reconciled",
                        pending.release.request_id,
                    )
