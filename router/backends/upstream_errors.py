"""Turn an upstream's failed HTTP answer into the exception the dispatcher acts on.

Messages are relayed so callers see what the provider said, but scrubbed of URLs, addresses
(`10.0.0.7:8000`, `vllm.internal:8000`), anything that looks like a credential, and the
backend's own secrets (its API key and header values, however they look): an upstream must
never leak its key or our internal addresses through us. Error events inside a stream get
the same treatment.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import orjson

from router.backends.base import SHORTAGE_STATUSES, SupplyShortage
from router.errors import RouterError, UpstreamFailed, UpstreamRejected

_URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>]+", re.IGNORECASE)
_SECRET = re.compile(r"\b(?:sk|rk|pk|key|tok)[-_][A-Za-z0-9_\-]{8,}|\bBearer\s+\S+", re.IGNORECASE)
_ADDRESS = re.compile(r"\b(?:(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?|[\w-]+(?:\.[\w-]+)+:\d{1,5})\b")
_MAX_MESSAGE = 500
_MAX_FIELD = 100
_SHORTEST_SECRET = 4


def scrub(message: str, secrets: Collection[str] = ()) -> str:
    """Remove `secrets`, URLs, addresses and credential-looking tokens from a message we
    relay to a client."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _SHORTEST_SECRET:
            message = message.replace(secret, "[redacted]")
    cleaned = _SECRET.sub("[redacted]", _URL.sub("[upstream]", message))
    return _ADDRESS.sub("[upstream]", cleaned)[:_MAX_MESSAGE]


def scrub_event(event: bytes, secrets: Collection[str] = ()) -> bytes:
    """An SSE event as relayed: an error payload's fields scrubbed, anything else as is."""
    if b'"error"' not in event:
        return event
    lines = event.split(b"\n")
    for index, line in enumerate(lines):
        if not line.startswith(b"data:"):
            continue
        try:
            payload = orjson.loads(line[len(b"data:") :])
        except orjson.JSONDecodeError:
            continue
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            payload["error"] = {
                **error,
                **{
                    name: _scrubbed(error.get(name), secrets)
                    for name in ("message", "param", "code")
                },
            }
        elif isinstance(error, str):
            payload["error"] = scrub(error, secrets)
        else:
            continue
        lines[index] = b"data: " + orjson.dumps(payload)
    return b"\n".join(lines)


def _scrubbed(value: object, secrets: Collection[str]) -> str | None:
    return None if value is None else scrub(str(value), secrets)


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_fields(
    body: bytes, secrets: Collection[str]
) -> tuple[str, str | None, str | None, str | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", None, None, None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        return (
            scrub(str(message), secrets) if message else "",
            _field(error.get("type"), secrets),
            _field(error.get("code"), secrets),
            _field(error.get("param"), secrets),
        )
    if isinstance(error, str):
        return scrub(error, secrets), None, None, None
    return "", None, None, None


def _field(value: object, secrets: Collection[str]) -> str | None:
    return None if value is None else scrub(str(value), secrets)[:_MAX_FIELD]


def classify(
    backend: str,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Collection[str] = (),
) -> SupplyShortage | RouterError:
    """The exception for a non-2xx answer: shortage (fall back), rejection (relay) or failure.
    `secrets` (the backend's key, header values, host) never reach the client."""
    if status in SHORTAGE_STATUSES:
        return SupplyShortage(backend, f"http_{status}", retry_after(headers))
    message, error_type, code, param = _error_fields(body, secrets)
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
