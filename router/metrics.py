"""Prometheus metrics, one registry per process (so tests can build several apps).

Labels come only from small fixed sets (backend and rule names from config, status codes,
reason codes) or from ids an operator created (key ids, teams): never request ids or text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "router_requests",
            "Chat requests answered, by outcome.",
            ["backend", "rule", "status", "stream"],
            registry=r,
        )
        self.latency = Histogram(
            "router_request_seconds",
            "Whole request latency as the client saw it.",
            ["backend", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "router_overhead_seconds",
            "Time spent in the router itself: request latency minus upstream time.",
            ["backend", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "router_upstream_seconds",
            "Time waiting for the upstream (to the last byte).",
            ["backend", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "router_tokens",
            "Tokens charged, by direction.",
            ["backend", "team", "key", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "router_cost_micros",
            "Spend charged, in micro-dollars.",
            ["backend", "team", "key"],
            registry=r,
        )
        self.fallbacks = Counter(
            "router_fallbacks",
            "Backends skipped for a request, by cause.",
            ["backend", "reason"],
            registry=r,
        )
        self.rejections = Counter(
            "router_rejections",
            "Requests refused before dispatch, by cause.",
            ["reason"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "router_breaker_open",
            "1 while a backend's circuit is open, 0.5 half-open.",
            ["backend"],
            registry=r,
        )
        self.in_flight = Gauge(
            "router_backend_in_flight",
            "Requests in flight to a backend, across replicas.",
            ["backend"],
            registry=r,
        )
        self.capacity = Gauge(
            "router_backend_capacity",
            "A backend's in-flight cap, across replicas.",
            ["backend"],
            registry=r,
        )
        self.store_errors = Counter(
            "router_store_errors",
            "Calls to the shared store that failed or timed out.",
            ["operation"],
            registry=r,
        )
