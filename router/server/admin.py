"""The admin API under /admin: keys, team budgets, prices, usage, the ledger, reconcile.

Every route needs `Authorization: Bearer <ROUTER_ADMIN_KEY>` (compared in constant time): no
or a wrong key is 401, a valid client key is 403. Money goes in as USD (strings, parsed with
Decimal exactly) and comes out both as exact USD strings and integer micro-dollars.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from router.core.model import Price
from router.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
)
from router.keys import bearer_token, constant_time_equals, generate_key
from router.pricing import parse_usd
from router.store.base import (
    Budget,
    BudgetStatus,
    KeyRecord,
    LedgerEntry,
    Limits,
    Period,
    Scope,
    StoreError,
)
from router.types import MICROS_PER_USD, Micros

if TYPE_CHECKING:
    from router.runtime import Runtime

T = TypeVar("T")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def require_admin(request: Request) -> None:
    """401 without the admin key, 403 for a client key, 403 when no admin key is set.
    Wrong keys count against the same per-address throttle as client keys."""
    runtime = _runtime(request)
    client = request.client.host if request.client else "unknown"
    runtime.keys.check_throttle(client)
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise AuthenticationFailed(
            "Missing admin key. Send it as 'Authorization: Bearer <ROUTER_ADMIN_KEY>'."
        )
    configured: SecretStr | str | None = runtime.config.auth.admin_key
    secret = configured.get_secret_value() if isinstance(configured, SecretStr) else configured
    if secret and constant_time_equals(token, secret):
        return
    if await runtime.keys.lookup(token) is not None:
        raise PermissionDenied("This is a client API key; the admin API needs the admin key.")
    if not secret:
        raise PermissionDenied(
            "The admin API is disabled: set ROUTER_ADMIN_KEY (auth.admin_key) to enable it.",
            code="admin_disabled",
        )
    runtime.keys.failed(client)
    raise AuthenticationFailed("Invalid admin key.")


log = logging.getLogger("router.admin")

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


async def _store(call: Awaitable[T]) -> T:
    try:
        return await call
    except StoreError as exc:
        raise StoreUnavailable("The store is unreachable; retry shortly.") from exc


def _usd(micros: Micros) -> str:
    return f"{Decimal(micros) / MICROS_PER_USD:.6f}"


def _iso(ts: float | None) -> str | None:
    return (
        None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    )


def _parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds or ISO 8601 (UTC when no offset is given)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(
            f"`{name}` must be epoch seconds or ISO 8601, got {value!r}.", param=name
        ) from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


_YEAR_10000 = 253_402_300_800.0
"""Epoch seconds of 10000-01-01: later instants cannot be written as ISO dates."""

USD = Annotated[Micros, BeforeValidator(lambda v: parse_usd(v, what="USD amount"))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetIn(_Body):
    period: Period
    limit_usd: USD
    soft_limit_usd: USD | None = None
    window_s: int | None = Field(None, gt=0)

    def build(self, scope: Scope, scope_id: str) -> Budget:
        try:
            return Budget(
                scope, scope_id, self.period, self.limit_usd, self.soft_limit_usd, self.window_s
            )
        except ValueError as exc:
            raise InvalidRequest(f"Invalid budget: {exc}.", param="budgets") from exc


class LimitsIn(_Body):
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, gt=0)


class CreateKey(_Body):
    team: str = Field(min_length=1, max_length=128)
    name: str = Field("", max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=64)
    budgets: list[BudgetIn] = Field(default_factory=list, max_length=16)
    limits: LimitsIn = LimitsIn()


class TeamBudgets(_Body):
    budgets: list[BudgetIn] = Field(max_length=16)


class PriceIn(_Body):
    model: str = Field(min_length=1, max_length=256)
    input_per_mtok: USD
    output_per_mtok: USD
    cached_input_per_mtok: USD | None = None
    per_request: USD = 0
    effective_from: datetime | float | None = None
    """When the price takes effect (ISO 8601 or epoch seconds); now when left out."""


def _budget_view(budget: Budget) -> dict[str, Any]:
    return {
        "scope": budget.scope.value,
        "scope_id": budget.scope_id,
        "period": budget.period.value,
        "window_s": budget.window_s,
        "limit_usd": _usd(budget.hard_limit),
        "limit_micros": budget.hard_limit,
        "soft_limit_usd": None if budget.soft_limit is None else _usd(budget.soft_limit),
    }


def _status_view(status: BudgetStatus) -> dict[str, Any]:
    return {
        **_budget_view(status.budget),
        "spent_usd": _usd(status.spent),
        "spent_micros": status.spent,
        "reserved_usd": _usd(status.reserved),
        "reserved_micros": status.reserved,
        "remaining_usd": _usd(status.remaining),
        "remaining_micros": status.remaining,
        "resets_at": _iso(status.resets_at),
    }


def _key_view(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.key_id,
        "team": record.team,
        "name": record.name,
        "tags": sorted(record.tags),
        "budgets": [_budget_view(b) for b in record.budgets],
        "limits": {
            "rpm": record.limits.rpm,
            "tpm": record.limits.tpm,
            "max_concurrency": record.limits.max_concurrency,
        },
        "disabled": record.disabled,
        "created_at": _iso(record.created_at),
    }


def _price_view(price: Price) -> dict[str, Any]:
    return {
        "model": price.model,
        "version": price.version,
        "effective_from": _iso(price.effective_from),
        "input_per_mtok_usd": _usd(price.input_per_mtok),
        "output_per_mtok_usd": _usd(price.output_per_mtok),
        "cached_input_per_mtok_usd": None
        if price.cached_input_per_mtok is None
        else _usd(price.cached_input_per_mtok),
        "per_request_usd": _usd(price.per_request),
    }


def _entry_view(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "ts": entry.ts,
        "time": _iso(entry.ts),
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
        "cost_usd": _usd(entry.cost),
        "rule": entry.rule,
        "fallbacks": list(entry.fallbacks),
        "latency_ms": entry.latency_ms,
        "status": entry.status,
        "extra": entry.extra,
    }


async def _existing_key(runtime: Runtime, key_id: str) -> KeyRecord:
    record = await _store(runtime.store.key_by_id(key_id))
    if record is None:
        raise NotFound(
            f"There is no key {key_id!r} (GET /admin/keys lists them).", code="key_not_found"
        )
    return record


@router.post("/keys", status_code=201)
async def create_key(body: CreateKey, request: Request) -> dict[str, Any]:
    """The plaintext key is in this answer only; the store keeps its hash."""
    runtime = _runtime(request)
    plaintext, key_id = generate_key()
    limits = body.limits
    record = KeyRecord(
        key_id,
        runtime.keys.hash(plaintext),
        body.team,
        body.name,
        frozenset(body.tags),
        tuple(b.build(Scope.KEY, key_id) for b in body.budgets),
        Limits(limits.rpm, limits.tpm, limits.max_concurrency),
        created_at=time.time(),
    )
    await _store(runtime.store.put_key(record))
    return {"key": plaintext, **_key_view(record)}


@router.get("/keys")
async def list_keys(request: Request) -> dict[str, Any]:
    keys = await _store(_runtime(request).store.list_keys())
    return {"data": [_key_view(r) for r in keys]}


@router.get("/keys/{key_id}")
async def get_key(key_id: str, request: Request) -> dict[str, Any]:
    runtime = _runtime(request)
    record = await _existing_key(runtime, key_id)
    status = await _store(runtime.store.budget_status(record.team, record.budgets))
    return {**_key_view(record), "budget_status": [_status_view(s) for s in status]}


@router.post("/keys/{key_id}/disable")
async def disable_key(key_id: str, request: Request) -> dict[str, Any]:
    """Stops the key at once on this replica, and within the key cache TTL on the others."""
    runtime = _runtime(request)
    record = replace(await _existing_key(runtime, key_id), disabled=True)
    await _store(runtime.store.put_key(record))
    runtime.keys.invalidate(record.key_hash)
    return _key_view(record)


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, request: Request) -> dict[str, Any]:
    """A new secret for the same key id, budgets and history; the old secret stops working."""
    runtime = _runtime(request)
    old = await _existing_key(runtime, key_id)
    plaintext, _ = generate_key()
    record = replace(old, key_hash=runtime.keys.hash(plaintext))
    await _store(runtime.store.put_key(record))
    runtime.keys.invalidate(old.key_hash)
    return {"key": plaintext, **_key_view(record)}


@router.put("/teams/{team}/budgets")
async def set_team_budgets(team: str, body: TeamBudgets, request: Request) -> dict[str, Any]:
    runtime = _runtime(request)
    budgets = tuple(b.build(Scope.TEAM, team) for b in body.budgets)
    await _store(runtime.store.set_team_budgets(team, budgets))
    runtime.accountant.forget_team_budgets(team)
    return await get_team_budgets(team, request)


@router.get("/teams/{team}/budgets")
async def get_team_budgets(team: str, request: Request) -> dict[str, Any]:
    store = _runtime(request).store
    budgets = await _store(store.team_budgets(team))
    status = await _store(store.budget_status(team, budgets))
    return {"team": team, "budgets": [_status_view(s) for s in status]}


@router.get("/prices")
async def get_prices(request: Request) -> dict[str, Any]:
    book = _runtime(request).prices
    return {
        "data": [_price_view(p) for _, p in sorted(book.current().items())],
        "scheduled": [_price_view(p) for p in book.scheduled()],
    }


@router.post("/prices", status_code=201)
async def add_price(body: PriceIn, request: Request) -> dict[str, Any]:
    """A new version; every replica picks it up from the store's notification."""
    runtime = _runtime(request)
    when = body.effective_from
    effective = (
        time.time()
        if when is None
        else when
        if isinstance(when, float)
        else (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    )
    if not 0 <= effective < _YEAR_10000:
        raise InvalidRequest(
            "`effective_from` must fall between 1970 and 9999.", param="effective_from"
        )
    price = Price(
        body.model,
        0,
        effective,
        body.input_per_mtok,
        body.output_per_mtok,
        body.cached_input_per_mtok,
        body.per_request,
    )
    stored = await _store(runtime.store.add_price(price))
    runtime.prices.apply(stored)
    return _price_view(stored)


@router.get("/prices/{model}/history")
async def price_history(model: str, request: Request) -> dict[str, Any]:
    history = _runtime(request).prices.history(model)
    if not history:
        raise NotFound(
            f"There is no price for model {model!r} (GET /admin/prices lists them).",
            code="price_not_found",
        )
    return {"model": model, "data": [_price_view(p) for p in history]}


_GROUPS: dict[str, Callable[[LedgerEntry], str]] = {
    "key": lambda e: e.key_id,
    "team": lambda e: e.team,
    "backend": lambda e: e.backend or "(reconciled)",
    "day": lambda e: datetime.fromtimestamp(e.ts, UTC).date().isoformat(),
}


@router.get("/usage")
async def usage(
    request: Request,
    group_by: Literal["key", "team", "backend", "day"] = "key",
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Totals from the ledger, so they add up to exactly what was charged."""
    group = _GROUPS[group_by]
    totals: dict[str, dict[str, int]] = {}
    ledger = _runtime(request).store.ledger(
        _parse_time(since, "since"), _parse_time(until, "until")
    )
    try:
        async for entry in ledger:
            row = totals.setdefault(
                group(entry),
                dict.fromkeys(
                    (
                        "requests",
                        "cost_micros",
                        "prompt_tokens",
                        "completion_tokens",
                        "cached_tokens",
                    ),
                    0,
                ),
            )
            row["requests"] += 1
            row["cost_micros"] += entry.cost
            row["prompt_tokens"] += entry.prompt_tokens
            row["completion_tokens"] += entry.completion_tokens
            row["cached_tokens"] += entry.cached_tokens
    except StoreError as exc:
        raise StoreUnavailable("The store is unreachable; retry shortly.") from exc
    data = [
        {"group": name, **row, "cost_usd": _usd(row["cost_micros"])}
        for name, row in sorted(totals.items())
    ]
    total = sum(row["cost_micros"] for row in totals.values())
    return {
        "group_by": group_by,
        "data": data,
        "total_cost_micros": total,
        "total_cost_usd": _usd(total),
    }


_CSV_FIELDS = [
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


def _csv_line(row: dict[str, Any] | list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    if isinstance(row, list):
        writer.writerow(row)
    else:
        writer.writerow(
            [
                " ".join(row[f])
                if f == "fallbacks"
                else json.dumps(row[f], sort_keys=True)
                if f == "extra"
                else row[f]
                for f in _CSV_FIELDS
            ]
        )
    return out.getvalue()


@router.get("/ledger")
async def ledger(
    request: Request,
    format: Literal["jsonl", "csv"] = "jsonl",
    since: str | None = None,
    until: str | None = None,
) -> StreamingResponse:
    """Every settled and reconciled request in time order, streamed. The first entry is
    read before answering, so an unreachable store is a clean 503; a store lost mid-export
    ends the stream early (logged), since the status line has already gone out."""
    entries = _runtime(request).store.ledger(
        _parse_time(since, "since"), _parse_time(until, "until")
    )
    first = await _store(anext(entries, None))

    def line(entry: LedgerEntry) -> str:
        view = _entry_view(entry)
        return _csv_line(view) if format == "csv" else json.dumps(view) + "\n"

    async def lines() -> AsyncIterator[str]:
        if format == "csv":
            yield _csv_line(_CSV_FIELDS)
        if first is None:
            return
        yield line(first)
        try:
            async for entry in entries:
                yield line(entry)
        except StoreError as exc:
            log.error("ledger export cut short: the store stopped answering (%s)", exc)

    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={"content-disposition": f'attachment; filename="ledger.{format}"'},
    )


@router.post("/reconcile")
async def reconcile(
    request: Request, older_than_s: Annotated[float, Query(ge=0, le=10**9)] = 600.0
) -> JSONResponse:
    """Charge reservations older than `older_than_s` at their reserved amount: their
    process died before settling, and nothing is forgiven silently."""
    store = _runtime(request).store
    reconciled = []
    for request_id, team, _ in await _store(store.stale_reservations(older_than_s)):
        entry = await _store(store.reconcile(request_id, team))
        if entry is not None:
            reconciled.append(_entry_view(entry))
    charged = sum(e["cost_micros"] for e in reconciled)
    return JSONResponse(
        {
            "reconciled": reconciled,
            "count": len(reconciled),
            "charged_micros": charged,
            "charged_usd": _usd(charged),
        }
    )
