"""The policy's own routes: explain a decision without serving it, and reload the policy."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from starlette.requests import Request

from router.core.explain import trace
from router.core.model import Principal
from router.errors import InvalidRequest
from router.runtime import Runtime
from router.server.admin import require_admin
from router.server.chat import caller_and_body, pinned_backend

router = APIRouter()


@router.post("/v1/route/explain", tags=["client"])
async def explain(request: Request) -> dict[str, object]:
    """The decision trace for a chat request: no backend is called and nothing is charged."""
    runtime: Runtime = request.app.state.runtime
    key, body = await caller_and_body(request, runtime)
    pinned = pinned_backend(body, runtime)
    features = runtime.inspect(body, request.headers)
    snapshot = runtime.snapshot(key, with_prices=True)
    principal = Principal(key_id=key.key_id, team=key.team, tags=key.tags, name=key.name)
    engine = runtime.policy.engine
    decision = engine.decide(features, principal, snapshot, pinned)
    result = trace(engine, features, principal, snapshot, decision, pinned=pinned)
    result["policy"] = str(runtime.policy.path)
    result["at"] = time.time()
    return result


@router.post("/admin/policy/reload", tags=["admin"], dependencies=[Depends(require_admin)])
async def reload_policy(request: Request) -> dict[str, object]:
    """Re-read the policy file; an invalid one is refused and the old policy keeps serving."""
    runtime: Runtime = request.app.state.runtime
    problems = runtime.policy.reload()
    errors = [p for p in problems if p.severity == "error"]
    source = str(runtime.policy.path)
    if errors:
        raise InvalidRequest(
            "The policy was not reloaded; the previous one is still in force. Fix: "
            + " | ".join(p.render(source) for p in errors),
            code="policy_invalid",
        )
    return {
        "status": "reloaded",
        "policy": source,
        "rules": len(runtime.policy.engine.rules),
        "warnings": [p.render(source) for p in problems],
    }
