"""The JSON shape of what the admin services return, shared by the admin API and the CLI.
Money comes out both as exact USD strings and as integer micro-dollars."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from router.core.model import Price
from router.store.base import Budget, BudgetStatus, KeyRecord, LedgerEntry
from router.types import MICROS_PER_USD, Micros


def usd(micros: Micros) -> str:
    return f"{Decimal(micros) / MICROS_PER_USD:.6f}"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def budget_view(budget: Budget) -> dict[str, Any]:
    return {
        "scope": budget.scope.value,
        "scope_id": budget.scope_id,
        "period": budget.period.value,
        "window_s": budget.window_s,
        "limit_usd": usd(budget.hard_limit),
        "limit_micros": budget.hard_limit,
        "soft_limit_usd": None if budget.soft_limit is None else usd(budget.soft_limit),
    }


def status_view(status: BudgetStatus) -> dict[str, Any]:
    return {
        **budget_view(status.budget),
        "spent_usd": usd(status.spent),
        "spent_micros": status.spent,
        "reserved_usd": usd(status.reserved),
        "reserved_micros": status.reserved,
        "remaining_usd": usd(status.remaining),
        "remaining_micros": status.remaining,
        "resets_at": iso(status.resets_at),
    }


def key_view(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.key_id,
        "team": record.team,
        "name": record.name,
        "tags": sorted(record.tags),
        "budgets": [budget_view(b) for b in record.budgets],
        "limits": {
            "rpm": record.limits.rpm,
            "tpm": record.limits.tpm,
            "max_concurrency": record.limits.max_concurrency,
        },
        "disabled": record.disabled,
        "created_at": iso(record.created_at),
    }


def price_view(price: Price) -> dict[str, Any]:
    return {
        "model": price.model,
        "version": price.version,
        "effective_from": iso(price.effective_from),
        "input_per_mtok_usd": usd(price.input_per_mtok),
        "output_per_mtok_usd": usd(price.output_per_mtok),
        "cached_input_per_mtok_usd": None
        if price.cached_input_per_mtok is None
        else usd(price.cached_input_per_mtok),
        "per_request_usd": usd(price.per_request),
    }


def entry_view(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "ts": entry.ts,
        "time": iso(entry.ts),
        "request_id": entry.request_id,
        "key_id": entry.key_id,
        "team": entry.team,
        "backend": entry.backend,
        "model": entry.model,
        "price_version": entry.price_version,
        "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens,
        "cached_tokens": entry.cached_tokens,
        "cost_micros": entry.cost,
        "cost_usd": usd(entry.cost),
        "rule": entry.rule,
        "fallbacks": list(entry.fallbacks),
        "latency_ms": entry.latency_ms,
        "status": entry.status,
        "extra": entry.extra,
    }


def usage_view(group_by: str, totals: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    total = sum(row["cost_micros"] for row in totals.values())
    return {
        "group_by": group_by,
        "data": [
            {"group": name, **row, "cost_usd": usd(row["cost_micros"])}
            for name, row in totals.items()
        ],
        "total_cost_micros": total,
        "total_cost_usd": usd(total),
    }


def reconciled_view(entries: Sequence[LedgerEntry]) -> dict[str, Any]:
    charged = sum(entry.cost for entry in entries)
    return {
        "reconciled": [entry_view(entry) for entry in entries],
        "count": len(entries),
        "charged_micros": charged,
        "charged_usd": usd(charged),
    }


CSV_FIELDS = [
    "time",
    "ts",
    "request_id",
    "key_id",
    "team",
    "backend",
    "model",
    "price_version",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micros",
    "cost_usd",
    "rule",
    "fallbacks",
    "latency_ms",
    "status",
    "extra",
]


def _csv_row(cells: Sequence[object]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


CSV_HEADER = _csv_row(CSV_FIELDS)


def entry_line(entry: LedgerEntry, format: str) -> str:
    """One ledger entry as a JSON line (`jsonl`) or a CSV row (`csv`) of CSV_FIELDS."""
    view = entry_view(entry)
    if format != "csv":
        return json.dumps(view) + "\n"
    view["fallbacks"] = " ".join(view["fallbacks"])
    view["extra"] = json.dumps(view["extra"], sort_keys=True)
    return _csv_row([view[field] for field in CSV_FIELDS])
