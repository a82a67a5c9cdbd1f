"""Who may use /admin: the bearer of ROUTER_ADMIN_KEY, compared in constant time. No key or a
wrong one is 401, a valid client key is 403, and so is every request while no admin key is
set. Wrong keys count against the same per-address throttle as client keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr
from starlette.requests import Request

from router.errors import AuthenticationFailed, PermissionDenied
from router.keys import bearer_token, constant_time_equals
from router.server.pipeline.authenticate import client_address

if TYPE_CHECKING:
    from router.runtime import Runtime


async def require_admin(request: Request) -> None:
    runtime: Runtime = request.app.state.runtime
    client = client_address(request)
    runtime.keys.check_throttle(client)
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise AuthenticationFailed(
            "Missing admin key. Send it as 'Authorization: Bearer <ROUTER_ADMIN_KEY>'."
        )
    configured: SecretStr | str | None = runtime.config.auth.admin_key
    secret = configured.get_secret_value() if isinstance(configured, SecretStr) else configured
    if secret and constant_time_equals(token, secret):
        return
    if await runtime.keys.lookup(token) is not None:
        raise PermissionDenied("This is a client API key; the admin API needs the admin key.")
    if not secret:
        raise PermissionDenied(
            "The admin API is disabled: set ROUTER_ADMIN_KEY (auth.admin_key) to enable it.",
            code="admin_disabled",
        )
    runtime.keys.failed(client)
    raise AuthenticationFailed("Invalid admin key.")
