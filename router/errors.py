"""Every error a client can see, each mapped to OpenAI's error shape and HTTP status.

Handlers raise these; one exception handler in the server renders them. The message always
tells the caller what to do next.
"""

from __future__ import annotations

from typing import ClassVar

import orjson


class RouterError(Exception):
    """Base of all client-facing errors: rendered as `{"error": {...}}` with `status`."""

    status: int = 500
    error_type: str = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.error_type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}


class InvalidRequest(RouterError):
    """The request body or parameters are malformed, or no backend could ever serve it."""

    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(RouterError):
    """The API key is missing, unknown, or disabled."""

    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(RouterError):
    """The key is valid but may not do this (e.g. a client key on an admin route)."""

    status = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFound(RouterError):
    """The model (or admin resource) named in the request does not exist."""

    status = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class PayloadTooLarge(RouterError):
    """The request body, message list, or nesting exceeds a configured bound."""

    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(RouterError):
    """A per-key RPM/TPM/concurrency limit, or too many failed auth attempts."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExceeded(RouterError):
    """A hard budget (per key or per team) has no room for this request's worst-case cost."""

    status = 429
    error_type = "insufficient_quota"
    default_code = "budget_exceeded"


class UpstreamFailed(RouterError):
    """The chosen backend answered with garbage or an unexpected server error."""

    status = 502
    error_type = "api_error"
    default_code = "upstream_error"


class UpstreamTimeout(RouterError):
    """The backend did not answer within the configured read timeout or request deadline."""

    status = 504
    error_type = "api_error"
    default_code = "upstream_timeout"


class NoBackendAvailable(RouterError):
    """Every candidate backend is short of supply (rate-limited, down, open circuit, full)."""

    status = 503
    error_type = "api_error"
    default_code = "no_backend_available"


class StoreUnavailable(RouterError):
    """The shared state store cannot be reached and the fail mode is `closed`."""

    status = 503
    error_type = "api_error"
    default_code = "state_store_unavailable"


class UpstreamRejected(RouterError):
    """A non-retryable upstream 4xx (bad request, auth, content policy), relayed with the
    upstream's own status and message but never its URL or credentials."""

    error_type = "invalid_request_error"
    default_code = "upstream_rejected"

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        error_type: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.status = status
        if error_type:
            self.error_type = error_type


_REFUSALS: dict[int, type[RouterError]] = {
    400: InvalidRequest,
    403: PermissionDenied,
    404: NotFound,
    413: PayloadTooLarge,
    429: BudgetExceeded,
}


def refusal(status: int, code: str, message: str) -> RouterError:
    """The client error for a refusal the routing policy or the plan decided (a rejection
    rule, no capable backend, a backend with no API key), with the status it chose."""
    error = _REFUSALS.get(status, NoBackendAvailable)(message, code=code)
    error.status = status
    return error
