"""Turn an upstream's failed HTTP answer into the exception the dispatcher acts on.

Messages are relayed so callers see what the provider said, but scrubbed of URLs and
anything that looks like a credential: an upstream must never leak its key or our
internal addresses through us.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

from router.backends.base import SHORTAGE_STATUSES, SupplyShortage
from router.errors import RouterError, UpstreamFailed, UpstreamRejected

_URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>]+", re.IGNORECASE)
_SECRET = re.compile(r"\b(?:sk|rk|pk|key|tok)[-_][A-Za-z0-9_\-]{8,}|\bBearer\s+\S+", re.IGNORECASE)
_MAX_MESSAGE = 500


def scrub(message: str) -> str:
    """Remove URLs and credential-looking tokens from a message we relay to a client."""
    cleaned = _SECRET.sub("[redacted]", _URL.sub("[upstream]", message))
    return cleaned[:_MAX_MESSAGE]


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_fields(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", None, None, None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        return (
            scrub(str(message)) if message else "",
            _str_or_none(error.get("type")),
            _str_or_none(error.get("code")),
            _str_or_none(error.get("param")),
        )
    if isinstance(error, str):
        return scrub(error), None, None, None
    return "", None, None, None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def classify(backend: str, status: int, body: bytes,
             headers: Mapping[str, str]) -> SupplyShortage | RouterError:
    """The exception for a non-2xx answer: shortage (fall back), rejection (relay) or failure."""
    if status in SHORTAGE_STATUSES:
        return SupplyShortage(backend, f"http_{status}", retry_after(headers))
    message, error_type, code, param = _error_fields(body)
    if 400 <= status < 500:
        return UpstreamRejected(
            status,
            message or f"The {backend} backend rejected the request (HTTP {status}).",
            code=code,
            error_type=error_type,
            param=param,
        )
    return UpstreamFailed(
        f"The {backend} backend failed (HTTP {status}). Retry the request; if it keeps "
        "failing, ask the router operator to check that backend.",
    )
