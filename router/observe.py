"""What one request leaves behind for operators: a JSON log line and its metrics.

Only ids, names from config, numbers and short codes go out: never keys, prompts or
completions (unless the operator turned on `server.log_prompts`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from router.core.model import Usage
from router.errors import RouterError
from router.metrics import Metrics

if TYPE_CHECKING:
    from router.server.chat import Routed

log = logging.getLogger("router.request")


class Observer:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def served(self, routed: Routed, backend: str, usage: Usage, cost: int, *, stream: bool,
               upstream_s: float, status: str) -> None:
        total_s = time.monotonic() - routed.started
        stream_label = "true" if stream else "false"
        m = self.metrics
        rule = routed.decision.rule
        key, team = routed.key.key_id, routed.key.team
        m.requests.labels(backend, rule, status, stream_label).inc()
        m.latency.labels(backend, stream_label).observe(total_s)
        m.upstream.labels(backend, stream_label).observe(upstream_s)
        m.overhead.labels(backend, stream_label).observe(max(0.0, total_s - upstream_s))
        m.tokens.labels(backend, team, key, "in").inc(usage.prompt_tokens)
        m.tokens.labels(backend, team, key, "out").inc(usage.completion_tokens)
        m.cost.labels(backend, team, key).inc(cost)
        for skipped, reason in routed.hops.tried:
            m.fallbacks.labels(skipped, reason).inc()
        log.info("served", extra={
            "request_id": routed.request_id,
            "key_id": key,
            "team": team,
            "backend": backend,
            "rule": rule,
            "candidates": list(routed.decision.candidates),
            "fallbacks": routed.hops.header(),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "usage_counted": usage.counted,
            "cost_micros": cost,
            "price_version": routed.admission.prices[backend].version,
            "status": status,
            "stream": stream,
            "latency_ms": round(total_s * 1000, 2),
            "upstream_ms": round(upstream_s * 1000, 2),
        })

    def rejected(self, request_id: str, path: str, error: RouterError) -> None:
        code = error.code or error.error_type
        self.metrics.rejections.labels(code).inc()
        log.info("rejected", extra={"request_id": request_id, "path": path,
                                    "status": error.status, "code": code})
