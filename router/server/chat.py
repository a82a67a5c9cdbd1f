"""POST /v1/chat/completions: authenticate, inspect, decide, admit, dispatch, settle, answer.

Each step is one call into the layer that owns it; this module only sequences them and makes
sure money is right on every path: a request rejected before dispatch is released, a served
request is always settled, and a stream is settled when it ends, however it ends.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from router.accounting import Admission
from router.core.model import Decision, Features, Usage
from router.dispatch import Hops, Target
from router.errors import InvalidRequest, NotFound
from router.runtime import Runtime
from router.server.body import read_json_body
from router.server.relay import Relay, RelayResponse
from router.server.request_id import request_id_of
from router.server.stream_meter import StreamMeter, generated_text, usage_from
from router.store.base import KeyRecord
from router.types import JSONObject

_JSON = "application/json"


@dataclass(slots=True)
class Routed:
    """One request's journey so far: who, what, where to, and what was reserved."""

    request_id: str
    key: KeyRecord
    body: JSONObject
    features: Features
    decision: Decision
    admission: Admission
    started: float
    hops: Hops
    dispatched: float = 0.0


def pinned_backend(body: JSONObject, runtime: Runtime) -> str | None:
    """The backend a client pinned, or None for a routed alias; 404 for anything else."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "`model` is required: use one of " + _models_hint(runtime) + ".",
            param="model",
            code="missing_model",
        )
    if model in runtime.config.backends:
        return model
    if model in runtime.aliases:
        return None
    raise NotFound(
        f"The model {model!r} does not exist here. Use one of "
        f"{_models_hint(runtime)} (GET /v1/models lists them).",
        param="model",
    )


def _models_hint(runtime: Runtime) -> str:
    return ", ".join(repr(name) for name in runtime.config.model_names())


def _targets(routed: Routed, runtime: Runtime) -> list[Target]:
    """The body each candidate receives: the client's, with the model name changed, the
    output bounded by what admission reserved (some servers, like llama.cpp's, would
    otherwise generate until their context is full), and usage asked for in streams."""
    targets = []
    for name in routed.decision.candidates:
        backend = runtime.config.backends[name]
        body = dict(routed.body)
        body["model"] = backend.model
        if routed.features.stream:
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        body.pop("max_tokens", None)
        body.pop("max_completion_tokens", None)
        limit = runtime.output_limit(routed.features, routed.decision, name)
        body[backend.max_tokens_field] = limit
        targets.append(Target(name, body, tokens=runtime.reserve_tokens(routed.features) + limit))
    return targets


def _route_headers(routed: Routed, backend: str, runtime: Runtime) -> dict[str, str]:
    decision = routed.decision
    headers = {
        "x-request-id": routed.request_id,
        "x-router-backend": backend,
        "x-router-rule": decision.rule,
        "x-router-reason": "; ".join(decision.reasons)[:200],
        "x-router-cost-estimate-usd": _usd(routed.admission.reserved),
        "x-router-price-version": str(routed.admission.prices[backend].version),
    }
    if routed.hops.tried:
        headers["x-router-fallbacks"] = routed.hops.header()
    return headers


def _usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"


async def caller_and_body(request: Request, runtime: Runtime) -> tuple[KeyRecord, JSONObject]:
    """Authenticate first (so strangers cannot make us parse), then read the bounded body."""
    client = request.client.host if request.client else "unknown"
    key = await runtime.keys.resolve(request.headers.get("authorization"), client)
    limits = runtime.config.server
    return key, await read_json_body(request, limits.max_body_bytes, limits.max_json_depth)


async def _route(request: Request, runtime: Runtime) -> Routed:
    started = time.monotonic()
    request_id = request_id_of(request)
    key, body = await caller_and_body(request, runtime)
    limits = runtime.config.server
    pinned = pinned_backend(body, runtime)
    features = runtime.inspect(body, request.headers)
    if features.message_count > limits.max_messages:
        raise InvalidRequest(
            f"The request has {features.message_count} messages; the limit is "
            f"{limits.max_messages}.",
            param="messages",
            code="too_many_messages",
        )
    decision = runtime.decide(features, key, pinned)
    if decision.rejection is not None:
        raise runtime.rejection_error(decision)
    decision = runtime.configured(features, decision)
    max_output = runtime.max_output_tokens(features, decision)
    admission = await runtime.accountant.admit(
        request_id,
        key,
        [(name, runtime.config.backends[name].price_key) for name in decision.candidates],
        runtime.reserve_tokens(features),
        max_output,
    )
    return Routed(request_id, key, body, features, decision, admission, started, Hops())


async def chat_completions(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    routed = await _route(request, runtime)
    deadline = routed.started + runtime.config.server.request_timeout_s
    targets = _targets(routed, runtime)
    routed.dispatched = time.monotonic()
    try:
        if routed.features.stream:
            backend, events = await runtime.dispatcher.stream(targets, deadline, routed.hops)
        else:
            backend, completion = await runtime.dispatcher.complete(targets, deadline, routed.hops)
            upstream_s = time.monotonic() - routed.dispatched
    except BaseException:
        await asyncio.shield(runtime.accountant.release(routed.admission))
        raise
    headers = _route_headers(routed, backend, runtime)
    if routed.features.stream:
        wants_usage = _client_wants_usage(routed.body)
        relay = Relay(
            backend,
            events,
            StreamMeter(strip_usage_chunk=not wants_usage),
            usage_of=partial(_stream_usage, runtime, routed),
            wants_usage=wants_usage,
            on_end=partial(_settle_stream, runtime, routed),
            spawn=runtime.spawn,
        )
        return RelayResponse(relay, headers)
    usage = usage_from(completion.payload) or _counted_usage(
        runtime, routed, generated_text(completion.payload)
    )
    entry = await runtime.accountant.settle(
        routed.admission,
        backend,
        usage,
        rule=routed.decision.rule,
        fallbacks=routed.hops.names,
        latency_ms=_elapsed_ms(routed),
    )
    headers["x-router-cost-usd"] = _usd(entry.cost)
    runtime.observer.served(
        routed, backend, usage, entry.cost, stream=False, upstream_s=upstream_s, status="ok"
    )
    return Response(completion.body, media_type=_JSON, headers=headers)


def _client_wants_usage(body: JSONObject) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _counted_usage(runtime: Runtime, routed: Routed, text: str) -> Usage:
    """Usage the router counts itself when the upstream reports none."""
    return Usage(
        prompt_tokens=routed.features.prompt.exact(),
        completion_tokens=runtime.count_tokens(text),
        counted=True,
    )


def _elapsed_ms(routed: Routed) -> int:
    return int((time.monotonic() - routed.started) * 1000)


def _stream_usage(runtime: Runtime, routed: Routed, meter: StreamMeter) -> Usage:
    return meter.usage or _counted_usage(runtime, routed, meter.text)


async def _settle_stream(
    runtime: Runtime, routed: Routed, backend: str, usage: Usage, status: str
) -> None:
    entry = await runtime.accountant.settle(
        routed.admission,
        backend,
        usage,
        rule=routed.decision.rule,
        fallbacks=routed.hops.names,
        latency_ms=_elapsed_ms(routed),
        status=status,
    )
    runtime.observer.served(
        routed,
        backend,
        usage,
        entry.cost,
        stream=True,
        upstream_s=time.monotonic() - routed.dispatched,
        status=status,
    )
