"""Liveness, readiness and the model list."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router.runtime import Runtime
from router.server.pipeline.authenticate import authenticate

router = APIRouter()


@router.get("/healthz", tags=["ops"])
async def healthz() -> dict[str, str]:
    """The process is alive and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"])
async def readyz(request: Request) -> Response:
    """Config loaded and the store reachable: an orchestrator may send traffic."""
    runtime: Runtime = request.app.state.runtime
    problems = await runtime.readiness_problems()
    status = 200 if not problems else 503
    return JSONResponse(
        {"status": "ready" if not problems else "not_ready", "problems": problems},
        status_code=status,
    )


@router.get("/v1/models", tags=["client"])
async def list_models(request: Request) -> dict[str, object]:
    """What a client may put in `model`: the routed aliases and each backend."""
    runtime: Runtime = request.app.state.runtime
    await authenticate(request, runtime)
    created = int(runtime.started_at or time.time())
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "router"}
            for name in runtime.config.model_names()
        ],
    }
