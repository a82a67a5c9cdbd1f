"""Errors of translation, and a router error rendered in each API's own error shapes.

`UnsupportedFeature` is a 400 for what a client asked that a chat-completions backend cannot
do (a hosted tool such as web search, a stored conversation): the request is refused with a
message naming the parameter, never served with the feature silently dropped.
"""

from __future__ import annotations

from typing import Any

from router.errors import InvalidRequest, RouterError
from router.types import JSONObject


class UnsupportedFeature(InvalidRequest):
    """The request uses a feature only a backend speaking its API natively can serve."""

    default_code = "unsupported_feature"


def invalid(param: str, what: str) -> InvalidRequest:
    """A malformed request body, named by the parameter at fault."""
    return InvalidRequest(f"Invalid '{param}': {what}.", param=param, code="invalid_request_body")


def expect_dict(value: Any, param: str) -> JSONObject:
    if not isinstance(value, dict):
        raise invalid(param, "expected an object")
    return value


def expect_list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(param, "expected a list")
    return value


def expect_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise invalid(param, "expected a string")
    return value


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status, among those its SDK's types name (a 413 is an
    invalid request there); other 4xx are invalid requests, other 5xx api errors."""
    known = _ANTHROPIC_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error(error: RouterError, request_id: str | None = None) -> JSONObject:
    """The body of an error response, and the data of a stream's `error` event, on /v1/messages."""
    body: JSONObject = {
        "type": "error",
        "error": {"type": anthropic_error_type(error.status), "message": error.message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


def response_error(error: RouterError) -> JSONObject:
    """The `error` of a failed Response: its `code` is one of the few the Responses API names."""
    if error.status == 429:
        code = "rate_limit_exceeded"
    elif 400 <= error.status < 500:
        code = "invalid_prompt"
    else:
        code = "server_error"
    return {"code": code, "message": error.message}


def responses_error_event(error: RouterError, sequence_number: int) -> JSONObject:
    """A Responses stream `error` event, keeping the router's own code and param."""
    return {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "param": error.param,
        "sequence_number": sequence_number,
    }
