"""Step 8: the answer. The upstream's response goes back unchanged in shape, with headers
that say which backend served, under which rule, and what it cost; a stream is relayed
event by event and settled when it ends."""

from __future__ import annotations

from functools import partial

from starlette.responses import Response

from router.backends.base import EventStream
from router.runtime import Runtime
from router.server.pipeline.routed import Routed
from router.server.pipeline.settle import settle_stream, stream_usage
from router.server.relay import Relay, RelayResponse
from router.server.stream_meter import StreamMeter


def route_headers(routed: Routed, backend: str) -> dict[str, str]:
    decision = routed.plan.decision
    headers = {
        "x-request-id": routed.request_id,
        "x-router-backend": backend,
        "x-router-rule": decision.rule,
        "x-router-reason": "; ".join(decision.reasons)[:200],
        "x-router-cost-estimate-usd": usd(routed.admission.reserved),
        "x-router-price-version": str(routed.admission.prices[backend].version),
    }
    if routed.hops.tried:
        headers["x-router-fallbacks"] = routed.hops.header()
    return headers


def usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"


def relay_stream(
    runtime: Runtime,
    routed: Routed,
    backend: str,
    events: EventStream,
    headers: dict[str, str],
    *,
    wants_usage: bool,
) -> Response:
    """Relay the stream; it is settled once it ends, finished, cut or abandoned."""
    relay = Relay(
        backend,
        events,
        StreamMeter(strip_usage_chunk=not wants_usage),
        usage_of=partial(stream_usage, runtime, routed),
        wants_usage=wants_usage,
        on_end=partial(settle_stream, runtime, routed),
        spawn=runtime.spawn,
    )
    return RelayResponse(relay, headers)
