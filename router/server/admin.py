"""The admin API under /admin: keys, team budgets, prices, usage, the ledger, reconcile.

Each route parses its input, calls the service that owns the operation (router/services),
and renders the service's answer; it holds no logic of its own. Every route needs the admin
key (router/server/admin_auth.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from router.server.admin_auth import require_admin
from router.server.admin_bodies import CreateKey, PriceIn, TeamBudgets, parse_time
from router.services.budgets import TeamBudgetAdmin
from router.services.guard import stored
from router.services.keys import KeyAdmin
from router.services.prices import PriceAdmin
from router.services.reconcile import reconcile as reconcile_orphans
from router.services.usage import GroupBy, usage_totals
from router.services.views import (
    CSV_HEADER,
    entry_line,
    key_view,
    price_view,
    reconciled_view,
    status_view,
    usage_view,
)
from router.store.base import StoreError

if TYPE_CHECKING:
    from router.runtime import Runtime

log = logging.getLogger("router.admin")

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _keys(request: Request) -> KeyAdmin:
    runtime = _runtime(request)
    return KeyAdmin(runtime.store, runtime.keys)


def _teams(request: Request) -> TeamBudgetAdmin:
    runtime = _runtime(request)
    return TeamBudgetAdmin(runtime.store, runtime.accountant)


def _prices(request: Request) -> PriceAdmin:
    runtime = _runtime(request)
    return PriceAdmin(runtime.store, runtime.prices)


Keys = Annotated[KeyAdmin, Depends(_keys)]
Teams = Annotated[TeamBudgetAdmin, Depends(_teams)]
Prices = Annotated[PriceAdmin, Depends(_prices)]


@router.post("/keys", status_code=201)
async def create_key(body: CreateKey, keys: Keys) -> dict[str, Any]:
    """The plaintext key is in this answer only; the store keeps its hash."""
    plaintext, record = await keys.create(
        body.team,
        name=body.name,
        tags=body.tags,
        budgets=[b.terms() for b in body.budgets],
        limits=body.limits.build(),
    )
    return {"key": plaintext, **key_view(record)}


@router.get("/keys")
async def list_keys(keys: Keys) -> dict[str, Any]:
    return {"data": [key_view(r) for r in await keys.all()]}


@router.get("/keys/{key_id}")
async def get_key(key_id: str, keys: Keys) -> dict[str, Any]:
    record = await keys.get(key_id)
    status = await keys.budget_status(record)
    return {**key_view(record), "budget_status": [status_view(s) for s in status]}


@router.post("/keys/{key_id}/disable")
async def disable_key(key_id: str, keys: Keys) -> dict[str, Any]:
    """Stops the key at once on this replica, and within the key cache TTL on the others."""
    return key_view(await keys.disable(key_id))


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, keys: Keys) -> dict[str, Any]:
    """A new secret for the same key id, budgets and history; the old secret stops working."""
    plaintext, record = await keys.rotate(key_id)
    return {"key": plaintext, **key_view(record)}


@router.put("/teams/{team}/budgets")
async def set_team_budgets(team: str, body: TeamBudgets, teams: Teams) -> dict[str, Any]:
    status = await teams.replace(team, [b.terms() for b in body.budgets])
    return {"team": team, "budgets": [status_view(s) for s in status]}


@router.get("/teams/{team}/budgets")
async def get_team_budgets(team: str, teams: Teams) -> dict[str, Any]:
    return {"team": team, "budgets": [status_view(s) for s in await teams.status(team)]}


@router.get("/prices")
async def get_prices(prices: Prices) -> dict[str, Any]:
    return {
        "data": [price_view(p) for p in prices.in_force()],
        "scheduled": [price_view(p) for p in prices.scheduled()],
    }


@router.post("/prices", status_code=201)
async def add_price(body: PriceIn, prices: Prices) -> dict[str, Any]:
    """A new version; every replica picks it up from the store's notification."""
    added = await prices.add(
        body.model,
        input_per_mtok=body.input_per_mtok,
        output_per_mtok=body.output_per_mtok,
        cached_input_per_mtok=body.cached_input_per_mtok,
        per_request=body.per_request,
        effective_from=body.effective_ts(),
    )
    return price_view(added)


@router.get("/prices/{model}/history")
async def price_history(model: str, prices: Prices) -> dict[str, Any]:
    return {"model": model, "data": [price_view(p) for p in prices.history(model)]}


@router.get("/usage")
async def usage(
    request: Request,
    group_by: GroupBy = "key",
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Totals from the ledger, so they add up to exactly what was charged."""
    totals = await usage_totals(
        _runtime(request).store, group_by, parse_time(since, "since"), parse_time(until, "until")
    )
    return usage_view(group_by, totals)


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
    entries = _runtime(request).store.ledger(parse_time(since, "since"), parse_time(until, "until"))
    first = await stored(anext(entries, None))

    async def lines() -> AsyncIterator[str]:
        if format == "csv":
            yield CSV_HEADER
        if first is None:
            return
        yield entry_line(first, format)
        try:
            async for entry in entries:
                yield entry_line(entry, format)
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
    entries = await reconcile_orphans(_runtime(request).store, older_than_s)
    return JSONResponse(reconciled_view(entries))
