"""The in-process store: the embedded default for a single router process.

It keeps the same counters, with the same field names and rules, as the Redis scripts
(router/store/windows.py is the shared arithmetic), so one contract suite holds both. No
method awaits between reading and writing state, so each call is atomic on the event loop
without a lock. Time comes from the injected clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from router.core.model import Price
from router.store.base import (
    AdmitRequest,
    AdmitResult,
    Budget,
    BudgetStatus,
    Clock,
    KeyRecord,
    LedgerEntry,
    Period,
    PriceListener,
    Settlement,
)
from router.store.common import admit_result, notify, reconciled_entry, status
from router.store.keys import KeySpace
from router.store.windows import MINUTE_MS, read_budget, unreserve, wait_ms
from router.types import Micros

_SETTLED_KEEP_MS = 2 * 86_400_000


@dataclass(frozen=True, slots=True)
class _Ref:
    """One budget a reservation sits on: counter name, fields, period."""

    counter: str
    reserved_field: str
    spent_field: str
    budget: Budget


@dataclass(frozen=True, slots=True)
class _Reservation:
    amount: Micros
    key_id: str
    at_ms: int
    minute: int
    tokens: int
    refs: tuple[_Ref, ...]
    nonce: str = ""


class MemoryStore:
    """Shared state for one process; see the module docstring for the guarantees."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._names = KeySpace("memory")
        self._counters: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self._leases: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self._reservations: defaultdict[str, dict[str, _Reservation]] = defaultdict(dict)
        # Per team, request_id -> settle time, in settle order so trimming pops the front.
        self._settled: defaultdict[str, OrderedDict[str, int]] = defaultdict(OrderedDict)
        self._ledger: list[LedgerEntry] = []
        self._prices: dict[str, list[Price]] = {}
        self._by_id: dict[str, KeyRecord] = {}
        self._by_hash: dict[str, KeyRecord] = {}
        self._team_budgets: dict[str, tuple[Budget, ...]] = {}
        self._listeners: list[PriceListener] = []

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._listeners.clear()

    def _statuses(
        self, team: str, budgets: tuple[Budget, ...], now: int, *, purge: bool
    ) -> list[tuple[BudgetStatus, str, str, str]]:
        out = []
        for budget in budgets:
            counter = self._names.budget(team, budget)
            read = read_budget(self._counters[counter], budget, now, purge=purge)
            out.append(
                (
                    status(budget, read.spent, read.reserved, read.resets_at_ms),
                    counter,
                    read.reserved_field,
                    read.spent_field,
                )
            )
        return out

    async def admit(self, request: AdmitRequest) -> AdmitResult:
        now = self._now_ms()
        team, rid = request.team, request.request_id
        reads = self._statuses(team, request.budgets, now, purge=True)
        statuses = tuple(r[0] for r in reads)
        held = self._reservations[team].get(rid)
        if held is not None:
            return admit_result("dup" if held.nonce == request.nonce else "taken", 0, 0, statuses)
        if rid in self._settled[team]:
            return admit_result("taken", 0, 0, statuses)

        rate = self._counters[self._names.rate(team, request.key_id)]
        minute, elapsed = divmod(now, MINUTE_MS)
        for name in [n for n in rate if int(n[2:]) < minute - 1]:
            del rate[name]
        limits = request.limits
        checks = (("rpm", "r", 1, limits.rpm), ("tpm", "t", request.tokens, limits.tpm))
        for verdict, kind, cost, limit in checks:
            if limit is None:
                continue
            wait = wait_ms(
                rate.get(f"{kind}:{minute - 1}", 0),
                rate.get(f"{kind}:{minute}", 0),
                cost,
                limit,
                elapsed,
            )
            if wait > 0:
                return admit_result(verdict, 0, wait, statuses)

        leases = self._leases[self._names.leases(team, request.key_id)]
        for lease in [r for r, expiry in leases.items() if expiry <= now]:
            del leases[lease]
        if limits.max_concurrency is not None and len(leases) >= limits.max_concurrency:
            return admit_result("concurrency", 0, min(1000, min(leases.values()) - now), statuses)

        for index, budget_status in enumerate(statuses, start=1):
            if (
                budget_status.spent + budget_status.reserved + request.reserve
                > budget_status.budget.hard_limit
            ):
                return admit_result("budget", index, 0, statuses)

        rate[f"r:{minute}"] = rate.get(f"r:{minute}", 0) + 1
        rate[f"t:{minute}"] = rate.get(f"t:{minute}", 0) + request.tokens
        leases[rid] = now + request.lease_ttl_ms
        refs = []
        for budget_status, counter, reserved_field, spent_field in reads:
            fields = self._counters[counter]
            fields[reserved_field] = fields.get(reserved_field, 0) + request.reserve
            refs.append(_Ref(counter, reserved_field, spent_field, budget_status.budget))
        self._reservations[team][rid] = _Reservation(
            request.reserve, request.key_id, now, minute, request.tokens, tuple(refs), request.nonce
        )
        return admit_result(
            "ok", 0, 0, tuple(replace(s, reserved=s.reserved + request.reserve) for s in statuses)
        )

    def _charge(
        self, counter: str, budget: Budget, spent_field: str, cost: Micros, now: int
    ) -> None:
        fields = self._counters[counter]
        if budget.period is Period.ROLLING or not spent_field:
            spent_field = read_budget(fields, budget, now, purge=False).spent_field
        fields[spent_field] = fields.get(spent_field, 0) + cost

    def _settle(
        self, settlement: Settlement, tokens: int | None, *, must_exist: bool
    ) -> tuple[str, tuple[BudgetStatus, ...]]:
        """The twin of settle.lua: verdict 'ok', 'dup' or 'gone', and budget statuses."""
        now = self._now_ms()
        team, rid = settlement.team, settlement.request_id

        def statuses() -> tuple[BudgetStatus, ...]:
            return tuple(r[0] for r in self._statuses(team, settlement.budgets, now, purge=False))

        settled = self._settled[team]
        if rid in settled:
            return "dup", statuses()
        reservation = self._reservations[team].pop(rid, None)
        if reservation is not None:
            for ref in reservation.refs:
                unreserve(self._counters[ref.counter], ref.reserved_field, reservation.amount)
                self._charge(ref.counter, ref.budget, ref.spent_field, settlement.cost, now)
            rate = self._counters[self._names.rate(team, reservation.key_id)]
            field = f"t:{reservation.minute}"
            if tokens is not None and field in rate:
                rate[field] = max(0, rate[field] + tokens - reservation.tokens)
        elif must_exist:
            return "gone", statuses()
        else:
            for budget in settlement.budgets:
                self._charge(self._names.budget(team, budget), budget, "", settlement.cost, now)
        self._leases[self._names.leases(team, settlement.key_id)].pop(rid, None)
        settled[rid] = now
        while settled and next(iter(settled.values())) <= now - _SETTLED_KEEP_MS:
            settled.popitem(last=False)
        self._ledger.append(replace(settlement.entry, ts=self._clock()))
        return "ok", statuses()

    async def settle(self, settlement: Settlement) -> tuple[BudgetStatus, ...]:
        entry = settlement.entry
        return self._settle(
            settlement, entry.prompt_tokens + entry.completion_tokens, must_exist=False
        )[1]

    async def release(
        self, request_id: str, key_id: str, team: str, budgets: tuple[Budget, ...]
    ) -> None:
        self._leases[self._names.leases(team, key_id)].pop(request_id, None)
        reservation = self._reservations[team].pop(request_id, None)
        if reservation is not None:
            for ref in reservation.refs:
                unreserve(self._counters[ref.counter], ref.reserved_field, reservation.amount)

    async def budget_status(
        self, team: str, budgets: tuple[Budget, ...]
    ) -> tuple[BudgetStatus, ...]:
        return tuple(r[0] for r in self._statuses(team, budgets, self._now_ms(), purge=False))

    async def add_price(self, price: Price) -> Price:
        versions = self._prices.setdefault(price.model, [])
        stored = replace(price, version=len(versions) + 1)
        versions.append(stored)
        for listener in list(self._listeners):
            await notify(listener, stored)
        return stored

    async def prices(self) -> dict[str, list[Price]]:
        return {model: list(versions) for model, versions in self._prices.items()}

    def watch_prices(self, listener: PriceListener) -> None:
        self._listeners.append(listener)

    async def put_key(self, record: KeyRecord) -> None:
        old = self._by_id.get(record.key_id)
        if old is not None and old.key_hash != record.key_hash:
            self._by_hash.pop(old.key_hash, None)
        self._by_id[record.key_id] = record
        self._by_hash[record.key_hash] = record

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        return self._by_hash.get(key_hash)

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        return self._by_id.get(key_id)

    async def list_keys(self) -> list[KeyRecord]:
        return sorted(self._by_id.values(), key=lambda r: (r.created_at, r.key_id))

    async def set_team_budgets(self, team: str, budgets: tuple[Budget, ...]) -> None:
        self._team_budgets[team] = budgets

    async def team_budgets(self, team: str) -> tuple[Budget, ...]:
        return self._team_budgets.get(team, ())

    async def ledger(
        self, since: float | None = None, until: float | None = None
    ) -> AsyncIterator[LedgerEntry]:
        entries = sorted(self._ledger, key=lambda e: e.ts)
        for entry in entries:
            if (since is None or entry.ts >= since) and (until is None or entry.ts <= until):
                yield entry

    async def stale_reservations(self, older_than_s: float) -> list[tuple[str, str, Micros]]:
        cutoff = self._now_ms() - int(older_than_s * 1000)
        return [
            (rid, team, r.amount)
            for team, held in self._reservations.items()
            for rid, r in sorted(held.items(), key=lambda item: item[1].at_ms)
            if r.at_ms <= cutoff
        ]

    async def reconcile(self, request_id: str, team: str) -> LedgerEntry | None:
        reservation = self._reservations[team].get(request_id)
        if reservation is None:
            return None
        entry = reconciled_entry(
            request_id,
            team,
            reservation.key_id,
            reservation.amount,
            reservation.at_ms / 1000,
            self._clock(),
        )
        settlement = Settlement(request_id, reservation.key_id, team, (), reservation.amount, entry)
        verdict, _ = self._settle(settlement, None, must_exist=True)
        return self._ledger[-1] if verdict == "ok" else None
