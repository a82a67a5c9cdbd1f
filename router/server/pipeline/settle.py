"""Step 7: charge what was used. Actual usage at the price version in force at admission
replaces the reservation, a ledger entry is written, and the request is logged and counted.
Usage the upstream did not report is counted by the router itself."""

from __future__ import annotations

import time

from router.backends.base import Completion
from router.core.model import Usage
from router.runtime import Runtime
from router.server.pipeline.routed import Routed
from router.server.stream_meter import StreamMeter, generated_text, usage_from
from router.store.base import LedgerEntry


async def settle(
    runtime: Runtime, routed: Routed, backend: str, usage: Usage, upstream_s: float
) -> LedgerEntry:
    """Settle a whole answer."""
    entry = await runtime.accountant.settle(
        routed.admission,
        backend,
        usage,
        rule=routed.plan.decision.rule,
        fallbacks=routed.hops.names,
        latency_ms=_elapsed_ms(routed),
    )
    runtime.observer.served(
        routed, backend, usage, entry.cost, stream=False, upstream_s=upstream_s, status="ok"
    )
    return entry


async def settle_stream(
    runtime: Runtime, routed: Routed, backend: str, usage: Usage, status: str
) -> None:
    """Settle a stream once it is over, however it ended (`status`)."""
    entry = await runtime.accountant.settle(
        routed.admission,
        backend,
        usage,
        rule=routed.plan.decision.rule,
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


def completion_usage(runtime: Runtime, routed: Routed, completion: Completion) -> Usage:
    """What a whole answer used: as the upstream reports it, else as the router counts it.
    Every backend answers in the chat completion shape, whatever the front door."""
    payload = completion.payload
    return usage_from(payload) or counted_usage(runtime, routed, generated_text(payload))


def counted_usage(runtime: Runtime, routed: Routed, text: str) -> Usage:
    """Usage the router counts itself when the upstream reports none."""
    return Usage(
        prompt_tokens=routed.features.prompt.exact(),
        completion_tokens=runtime.tokens.count_text(text) if text else 0,
        counted=True,
    )


def stream_usage(runtime: Runtime, routed: Routed, meter: StreamMeter) -> Usage:
    return meter.usage or counted_usage(runtime, routed, meter.text)


def _elapsed_ms(routed: Routed) -> int:
    return int((time.monotonic() - routed.started) * 1000)
