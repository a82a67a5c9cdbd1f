"""Charge reservations whose process died before settling. Nothing is forgiven silently: an
orphan is charged at its reserved amount and ledgered as reconciled."""

from __future__ import annotations

from router.services.guard import stored
from router.store.base import LedgerEntry, Store


async def reconcile(store: Store, older_than_s: float) -> list[LedgerEntry]:
    """Charge every reservation older than `older_than_s`; the ledger entries written (one
    another process settled or reconciled meanwhile is skipped)."""
    entries = []
    for request_id, team, _ in await stored(store.stale_reservations(older_than_s)):
        entry = await stored(store.reconcile(request_id, team))
        if entry is not None:
            entries.append(entry)
    return entries
