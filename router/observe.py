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
from router.logs import info_line
from router.metrics import Metrics

if TYPE_CHECKING:
    from router.server.pipeline.routed import Routed

log = logging.getLogger("router.request")


class _Served:
    """The labelled metric children one (backend, rule, key) combination updates, resolved
    once: prometheus-client's `labels()` lookup is a measurable cost per request."""

    __slots__ = ("cost", "latency", "overhead", "requests", "tokens_in", "tokens_out", "upstream")

    def __init__(
        self, m: Metrics, backend: str, rule: str, team: str, key: str, status: str, stream: str
    ) -> None:
        self.requests = m.requests.labels(backend, rule, status, stream)
        self.latency = m.latency.labels(backend, stream)
        self.upstream = m.upstream.labels(backend, stream)
        self.overhead = m.overhead.labels(backend, stream)
        self.tokens_in = m.tokens.labels(backend, team, key, "in")
        self.tokens_out = m.tokens.labels(backend, team, key, "out")
        self.cost = m.cost.labels(backend, team, key)


class Observer:
    def __init__(self, metrics: Metrics, *, log_prompts: bool = False) -> None:
        self.metrics = metrics
        self._log_prompts = log_prompts
        self._served: dict[tuple[str, str, str, str, str, bool], _Served] = {}
        if log_prompts:
            log.warning(
                "PROMPT LOGGING IS ON (server.log_prompts): every request's messages "
                "are written to the log. Turn it off outside debugging."
            )

    def _children(
        self, backend: str, rule: str, team: str, key: str, status: str, stream: bool
    ) -> _Served:
        index = (backend, rule, team, key, status, stream)
        children = self._served.get(index)
        if children is None:
            children = self._served[index] = _Served(
                self.metrics, backend, rule, team, key, status, "true" if stream else "false"
            )
        return children

    def served(
        self,
        routed: Routed,
        backend: str,
        usage: Usage,
        cost: int,
        *,
        stream: bool,
        upstream_s: float,
        status: str,
    ) -> None:
        total_s = time.monotonic() - routed.started
        rule = routed.decision.rule
        key, team = routed.key.key_id, routed.key.team
        m = self._children(backend, rule, team, key, status, stream)
        m.requests.inc()
        m.latency.observe(total_s)
        m.upstream.observe(upstream_s)
        m.overhead.observe(max(0.0, total_s - upstream_s))
        m.tokens_in.inc(usage.prompt_tokens)
        m.tokens_out.inc(usage.completion_tokens)
        m.cost.inc(cost)
        for skipped, reason in routed.hops.tried:
            self.metrics.fallbacks.labels(skipped, reason).inc()
        if not log.isEnabledFor(logging.INFO):
            return
        extra = {
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
        }
        if self._log_prompts:
            extra["messages"] = routed.body.get("messages")
        info_line(log, "served", extra)

    def rejected(self, request_id: str, path: str, error: RouterError) -> None:
        code = error.code or error.error_type
        self.metrics.rejections.labels(code).inc()
        log.info(
            "rejected",
            extra={"request_id": request_id, "path": path, "status": error.status, "code": code},
        )
