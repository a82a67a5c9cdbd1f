"""schemathesis over the router's own OpenAPI document (client, ops and admin routes), with
the client key on client routes and the admin key on /admin: no answer is a 500, and every
error is in OpenAI's shape. The router has its own in-memory store and fake upstreams, so
the admin calls the fuzzer makes (drains, forced breakers, new prices) touch nothing else.

The document is built in-process at import (schemathesis' lazy `from_fixture` loader does
not run under pytest 9), and checked equal to what the running router serves.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings

from router.config import RouterConfig
from router.server.app import create_app
from tests.faults.support import error_shape_ok
from tests.router_process import ADMIN_KEY, CLIENT_KEY, RouterProcess, router_config

CHAT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {
                    "role": {
                        "type": "string",
                        "enum": ["system", "developer", "user", "assistant", "tool"],
                    },
                    "content": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "null"},
                            {"type": "array", "items": {"type": "object"}},
                        ]
                    },
                },
            },
        },
        "stream": {"type": "boolean"},
        "max_tokens": {"type": "integer"},
        "max_completion_tokens": {"type": "integer"},
        "temperature": {"type": "number"},
    },
}
"""What the fuzzer generates chat bodies from; unknown fields pass through to the backend."""
EXPECTED_5XX = {
    502: {"upstream_error"},
    503: {"no_backend_available", "state_store_unavailable", "backend_at_capacity"},
    504: {"upstream_timeout"},
}
"""5xx answers that are the router working as designed (a fuzzed admin call may drain a
backend or force its breaker open); a 500 never is."""


def documented(doc: dict[str, Any]) -> dict[str, Any]:
    """The router's document, with a richer chat body to generate from than the one the
    router documents (roles and content forms)."""
    doc["paths"]["/v1/chat/completions"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": CHAT_BODY}},
    }
    return doc


def _document() -> dict[str, Any]:
    config = RouterConfig.model_validate(
        router_config("http://mini.invalid/v1", "http://full.invalid/v1")
    )
    return create_app(config).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(documented(copy.deepcopy(DOCUMENT)))


def test_the_fuzzed_document_is_the_one_the_router_serves(bounded: RouterProcess) -> None:
    assert httpx.get(f"{bounded.url}/openapi.json", timeout=10).json() == DOCUMENT


def test_the_chat_route_documents_its_body() -> None:
    """Without it, fuzzers and SDK generators see a body-less POST."""
    body = DOCUMENT["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["required"] == ["model", "messages"]


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_500_and_every_error_in_openai_shape(
    case: schemathesis.Case, bounded: RouterProcess
) -> None:
    key = ADMIN_KEY if case.path.startswith("/admin") else CLIENT_KEY
    resp = case.call(base_url=bounded.url, headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert resp.status_code != 500, resp.text
    if resp.status_code >= 400:
        body = resp.json()
        assert error_shape_ok(body), resp.text
        if resp.status_code >= 500:
            assert body["error"]["code"] in EXPECTED_5XX.get(resp.status_code, set()), resp.text
