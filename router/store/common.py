"""Pieces both stores build the same way, so their answers cannot drift apart."""

from __future__ import annotations

import inspect
import logging

from router.core.model import Price
from router.store.base import (
    AdmitResult,
    Budget,
    BudgetStatus,
    Denial,
    LedgerEntry,
    PriceListener,
)
from router.types import Micros

log = logging.getLogger(__name__)

RECONCILED = "reconciled"


def status(budget: Budget, spent: int, reserved: int, resets_at_ms: int | None) -> BudgetStatus:
    return BudgetStatus(
        budget, spent, reserved, None if resets_at_ms is None else resets_at_ms / 1000
    )


def admit_result(
    verdict: str, denied_index: int, retry_ms: int, statuses: tuple[BudgetStatus, ...]
) -> AdmitResult:
    """Translate a script verdict ('ok', 'dup', 'taken', or a Denial value) into an
    AdmitResult."""
    if verdict in ("ok", "dup"):
        return AdmitResult(admitted=True, budgets=statuses)
    if verdict == "taken":
        return AdmitResult(admitted=False, budgets=statuses, taken=True)
    denial = Denial(verdict)
    return AdmitResult(
        admitted=False,
        denied_by=denial,
        denied_budget=statuses[denied_index - 1] if denial is Denial.BUDGET else None,
        retry_after_s=retry_ms / 1000 if retry_ms > 0 else None,
        budgets=statuses,
    )


def reconciled_entry(
    request_id: str, team: str, key_id: str, amount: Micros, reserved_at: float, now: float
) -> LedgerEntry:
    """An orphaned reservation, charged at what it reserved: its process died before
    settling, so the actual usage is unknown and the worst case stands."""
    return LedgerEntry(
        request_id=request_id,
        key_id=key_id,
        team=team,
        backend="",
        model="",
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        price_version=0,
        cost=amount,
        rule="",
        status=RECONCILED,
        ts=now,
        extra={"reserved_at": f"{reserved_at:.3f}"},
    )


async def notify(listener: PriceListener, price: Price) -> None:
    """Hand a price to one watcher; a failing watcher is logged, never fatal to the store."""
    try:
        result = listener(price)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("price listener %r failed on %s v%d", listener, price.model, price.version)
