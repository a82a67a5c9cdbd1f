"""Operators' view of supply under /admin/backends: each backend's breaker, in-flight count
against its cap, provider quota left, draining flag and last probe, as this replica sees
them; and the levers, which act on every replica through the supply store: drain, undrain,
and force the breaker open, closed or back to automatic.

Guarded by the admin key like the rest of /admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from router.errors import NotFound
from router.server.admin_auth import require_admin
from router.supply.manager import SupplyManager
from router.supply.model import Force

router = APIRouter(prefix="/admin/backends", tags=["admin"], dependencies=[Depends(require_admin)])


def _supply(request: Request) -> SupplyManager:
    supply: SupplyManager = request.app.state.runtime.supply
    return supply


def _known(supply: SupplyManager, name: str) -> None:
    if name not in supply.status():
        raise NotFound(
            f"There is no backend {name!r}. GET /admin/backends lists them.",
            code="backend_not_found",
        )


@router.get("")
async def list_backends(request: Request) -> dict[str, object]:
    """Every backend's supply, as this replica currently believes it."""
    return {"backends": _supply(request).status()}


@router.post("/{name}/drain")
async def drain(name: str, request: Request) -> dict[str, object]:
    """Stop sending new requests to `name` on every replica; requests in flight finish."""
    supply = _supply(request)
    _known(supply, name)
    await supply.drain(name, True)
    return {"backend": name, **supply.status()[name]}


@router.post("/{name}/undrain")
async def undrain(name: str, request: Request) -> dict[str, object]:
    supply = _supply(request)
    _known(supply, name)
    await supply.drain(name, False)
    return {"backend": name, **supply.status()[name]}


@router.post("/{name}/force")
async def force(name: str, request: Request, state: Annotated[Force, Query()]) -> dict[str, object]:
    """Hold the breaker open or closed on every replica, or hand it back (`auto`); any
    change restarts the breaker's evidence."""
    supply = _supply(request)
    _known(supply, name)
    await supply.force(name, state)
    return {"backend": name, **supply.status()[name]}
