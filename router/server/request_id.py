"""One request id per request: the client's `x-request-id` if it is sane, else a fresh one."""

from __future__ import annotations

import re

from starlette.requests import Request

from router.ids import unique_id

_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_of(request: Request) -> str:
    cached: str | None = getattr(request.state, "request_id", None)
    if cached is not None:
        return cached
    offered = request.headers.get("x-request-id")
    request_id = offered if offered and _SANE.match(offered) else f"req_{unique_id()}"
    request.state.request_id = request_id
    return request_id
