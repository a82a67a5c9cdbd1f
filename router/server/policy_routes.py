"""The policy's own routes: explain a decision without serving it, and reload the policy."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from starlette.requests import Request

from router.core.explain import trace
from router.errors import InvalidRequest
from router.runtime import Runtime
from router.server.admin_auth import require_admin
from router.server.body import read_json_body
from router.server.chat import CHAT
from router.server.pipeline.authenticate import authenticate
from router.server.pipeline.inspect import inspect
from router.server.pipeline.route import principal_of, route, state_of

router = APIRouter()


@router.post("/v1/route/explain", tags=["client"])
async def explain(request: Request) -> dict[str, object]:
    """The decision trace for a chat request, from the same steps the request itself would
    take up to admission: no backend is called and nothing is charged."""
    runtime: Runtime = request.app.state.runtime
    limits = runtime.config.server
    key = await authenticate(request, runtime)
    body = await read_json_body(request, limits.max_body_bytes, limits.max_json_depth)
    features, pinned = inspect(CHAT, body, request.headers, runtime)
    state = state_of(runtime, key, with_prices=True)
    plan = route(runtime, key, features, pinned, state)
    result = trace(runtime.policy.engine, features, principal_of(key), state, plan, pinned=pinned)
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
