"""How records are written into Redis: JSON for keys and prices, flat string fields for the
ledger. Money is always an integer (or an integer string where Lua might round it)."""

from __future__ import annotations

import json
from typing import Any

from router.core.model import Price
from router.store.base import Budget, KeyRecord, LedgerEntry, Limits, Period, Scope


def budget_to_dict(budget: Budget) -> dict[str, Any]:
    return {
        "scope": budget.scope.value,
        "scope_id": budget.scope_id,
        "period": budget.period.value,
        "hard_limit": budget.hard_limit,
        "soft_limit": budget.soft_limit,
        "window_s": budget.window_s,
    }


def budget_from_dict(raw: dict[str, Any]) -> Budget:
    return Budget(
        scope=Scope(raw["scope"]),
        scope_id=str(raw["scope_id"]),
        period=Period(raw["period"]),
        hard_limit=int(raw["hard_limit"]),
        soft_limit=None if raw.get("soft_limit") is None else int(raw["soft_limit"]),
        window_s=None if raw.get("window_s") is None else int(raw["window_s"]),
    )


def budgets_to_json(budgets: tuple[Budget, ...]) -> str:
    return json.dumps([budget_to_dict(b) for b in budgets])


def budgets_from_json(raw: str | None) -> tuple[Budget, ...]:
    return () if not raw else tuple(budget_from_dict(b) for b in json.loads(raw))


def key_to_json(record: KeyRecord) -> str:
    return json.dumps(
        {
            "key_id": record.key_id,
            "key_hash": record.key_hash,
            "team": record.team,
            "name": record.name,
            "tags": sorted(record.tags),
            "budgets": [budget_to_dict(b) for b in record.budgets],
            "limits": {
                "rpm": record.limits.rpm,
                "tpm": record.limits.tpm,
                "max_concurrency": record.limits.max_concurrency,
            },
            "disabled": record.disabled,
            "created_at": record.created_at,
        }
    )


def key_from_json(raw: str) -> KeyRecord:
    data = json.loads(raw)
    return KeyRecord(
        key_id=data["key_id"],
        key_hash=data["key_hash"],
        team=data["team"],
        name=data.get("name", ""),
        tags=frozenset(data.get("tags", ())),
        budgets=tuple(budget_from_dict(b) for b in data.get("budgets", ())),
        limits=Limits(**data.get("limits", {})),
        disabled=bool(data.get("disabled", False)),
        created_at=float(data.get("created_at", 0.0)),
    )


def price_to_json(price: Price) -> str:
    """Every value a string: the add_price script decodes and re-encodes it with cjson,
    which would print large numbers with 14 significant digits."""
    return json.dumps(
        {
            "model": price.model,
            "version": str(price.version),
            "effective_from": repr(price.effective_from),
            "input_per_mtok": str(price.input_per_mtok),
            "output_per_mtok": str(price.output_per_mtok),
            "cached_input_per_mtok": ""
            if price.cached_input_per_mtok is None
            else str(price.cached_input_per_mtok),
            "per_request": str(price.per_request),
        }
    )


def price_from_json(raw: str) -> Price:
    data = json.loads(raw)
    cached = data.get("cached_input_per_mtok", "")
    return Price(
        model=data["model"],
        version=int(data["version"]),
        effective_from=float(data["effective_from"]),
        input_per_mtok=int(data["input_per_mtok"]),
        output_per_mtok=int(data["output_per_mtok"]),
        cached_input_per_mtok=int(cached) if cached not in ("", None) else None,
        per_request=int(data.get("per_request", "0")),
    )


_EXTRA = "x."


def entry_fields(entry: LedgerEntry) -> list[str]:
    """Flat field, value pairs for XADD, without `ts` (the script stamps Redis TIME)."""
    pairs = {
        "request_id": entry.request_id,
        "key_id": entry.key_id,
        "team": entry.team,
        "backend": entry.backend,
        "model": entry.model,
        "prompt_tokens": str(entry.prompt_tokens),
        "completion_tokens": str(entry.completion_tokens),
        "cached_tokens": str(entry.cached_tokens),
        "price_version": str(entry.price_version),
        "cost": str(entry.cost),
        "rule": entry.rule,
        "fallbacks": ",".join(entry.fallbacks),
        "latency_ms": str(entry.latency_ms),
        "status": entry.status,
    }
    pairs.update({_EXTRA + k: v for k, v in entry.extra.items()})
    return [item for pair in pairs.items() for item in pair]


def entry_from_fields(fields: dict[str, str]) -> LedgerEntry:
    return LedgerEntry(
        request_id=fields["request_id"],
        key_id=fields["key_id"],
        team=fields["team"],
        backend=fields["backend"],
        model=fields["model"],
        prompt_tokens=int(fields["prompt_tokens"]),
        completion_tokens=int(fields["completion_tokens"]),
        cached_tokens=int(fields["cached_tokens"]),
        price_version=int(fields["price_version"]),
        cost=int(fields["cost"]),
        rule=fields["rule"],
        fallbacks=tuple(f for f in fields["fallbacks"].split(",") if f),
        latency_ms=int(fields["latency_ms"]),
        status=fields["status"],
        ts=float(fields["ts"]),
        extra={k[len(_EXTRA) :]: v for k, v in fields.items() if k.startswith(_EXTRA)},
    )
