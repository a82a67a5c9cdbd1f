"""One request, start to end, whatever API it came in through.

    1 authenticate  the caller's key                          pipeline/authenticate.py
    2 inspect       body -> Features (the front door), bounds  pipeline/inspect.py
    3 decide        the policy engine on in-memory state       pipeline/route.py, core/engine.py
    4 plan          each candidate's output bound, the reserve core/plan.py
    5 admit         refusals, rate limits, budget reservation  pipeline/admit.py
    6 dispatch      first candidate with supply, fallbacks     router/dispatch.py
    7 settle        usage -> cost -> ledger, log and metrics   pipeline/settle.py
    8 answer        the response and its x-router-* headers    pipeline/answer.py

Money is right on every path: a request refused before dispatch reserved nothing or is
released, a served request is always settled, and a stream is settled when it ends, however
it ends.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response

from router.dispatch import Hops, Target
from router.runtime import Runtime
from router.server.body import read_json_body
from router.server.pipeline.admit import admit
from router.server.pipeline.answer import relay_stream, route_headers, usd
from router.server.pipeline.authenticate import authenticate
from router.server.pipeline.door import FrontDoor
from router.server.pipeline.inspect import inspect
from router.server.pipeline.route import route
from router.server.pipeline.routed import Routed
from router.server.pipeline.settle import completion_usage, settle
from router.server.request_id import request_id_of


async def serve(request: Request, door: FrontDoor) -> Response:
    runtime: Runtime = request.app.state.runtime
    limits = runtime.config.server
    started = time.monotonic()
    request_id = request_id_of(request)
    key = await authenticate(request, runtime)
    body = await read_json_body(request, limits.max_body_bytes, limits.max_json_depth)
    features, pinned = inspect(door, body, request.headers, runtime)
    plan = route(runtime, key, features, pinned)
    admission = await admit(runtime, request_id, key, plan)
    routed = Routed(request_id, key, body, features, plan, admission, started, Hops())
    targets = _targets(door, routed, runtime)
    deadline = started + limits.request_timeout_s
    routed.dispatched = time.monotonic()
    try:
        if features.stream:
            backend, events = await runtime.dispatcher.stream(targets, deadline, routed.hops)
        else:
            backend, completion = await runtime.dispatcher.complete(targets, deadline, routed.hops)
            upstream_s = time.monotonic() - routed.dispatched
    except BaseException:
        await asyncio.shield(runtime.accountant.release(admission))
        raise
    headers = route_headers(routed, backend)
    if features.stream:
        wants_usage = door.wants_usage(body)
        return relay_stream(runtime, routed, backend, events, headers, wants_usage=wants_usage)
    usage = completion_usage(runtime, routed, completion)
    entry = await settle(runtime, routed, backend, usage, upstream_s)
    headers["x-router-cost-usd"] = usd(entry.cost)
    return door.answer(completion, headers)


def _targets(door: FrontDoor, routed: Routed, runtime: Runtime) -> list[Target]:
    """Each candidate with the body the front door renders for it under the plan's bound;
    `tokens` (prompt plus that bound) is spent against a provider's TPM quota."""
    plan = routed.plan
    body, stream = routed.body, routed.features.stream
    backends = runtime.config.backends
    return [
        Target(
            name,
            door.target(body, backends[name], output, stream),
            tokens=plan.prompt_tokens + output,
        )
        for name, output in zip(plan.decision.candidates, plan.output_tokens, strict=True)
    ]
