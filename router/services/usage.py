"""Spend and tokens summed from the ledger, so every total adds up to what was charged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from router.errors import StoreUnavailable
from router.services.guard import UNREACHABLE
from router.store.base import LedgerEntry, Store, StoreError

GroupBy = Literal["key", "team", "backend", "day"]
COLUMNS = ("requests", "cost_micros", "prompt_tokens", "completion_tokens", "cached_tokens")

_GROUPS: dict[str, Callable[[LedgerEntry], str]] = {
    "key": lambda e: e.key_id,
    "team": lambda e: e.team,
    "backend": lambda e: e.backend or "(reconciled)",
    "day": lambda e: datetime.fromtimestamp(e.ts, UTC).date().isoformat(),
}


async def usage_totals(
    store: Store, group_by: GroupBy, since: float | None = None, until: float | None = None
) -> dict[str, dict[str, int]]:
    """Group name -> the COLUMNS summed over the ledger entries between `since` and `until`
    (epoch seconds), sorted by group name."""
    group = _GROUPS[group_by]
    totals: dict[str, dict[str, int]] = {}
    try:
        async for entry in store.ledger(since, until):
            row = totals.get(name := group(entry))
            if row is None:
                row = totals[name] = dict.fromkeys(COLUMNS, 0)
            row["requests"] += 1
            row["cost_micros"] += entry.cost
            row["prompt_tokens"] += entry.prompt_tokens
            row["completion_tokens"] += entry.completion_tokens
            row["cached_tokens"] += entry.cached_tokens
    except StoreError as exc:
        raise StoreUnavailable(UNREACHABLE) from exc
    return dict(sorted(totals.items()))
