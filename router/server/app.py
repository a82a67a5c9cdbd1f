"""The FastAPI application: routes, one error handler for every client-facing error, and a
lifespan that builds the runtime once and tears it down gracefully.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from router.config import RouterConfig
from router.errors import InvalidRequest, NotFound, PayloadTooLarge, RouterError
from router.runtime import Runtime
from router.server import chat, probes
from router.server.admin import router as admin_router
from router.server.backends_admin import router as backends_admin_router
from router.server.pipeline.door import FrontDoor
from router.server.pipeline.serve import serve
from router.server.policy_routes import router as policy_router
from router.server.request_id import request_id_of

log = logging.getLogger("router.server")


def _error_response(
    request: Request, error: RouterError, door: FrontDoor | None = None
) -> Response:
    """The error in the shape of the API it answers (OpenAI's unless a front door says)."""
    request_id = request_id_of(request)
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        runtime.observer.rejected(request_id, request.url.path, error)
    headers = {"x-request-id": request_id, **error.headers()}
    body = error.body() if door is None else door.error_body(error)
    return Response(body, status_code=error.status, media_type="application/json", headers=headers)


async def _router_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RouterError)
    return _error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = f"Invalid request: {where + ': ' if where else ''}{first.get('msg', 'malformed')}."
    return _error_response(request, InvalidRequest(message, param=where or None))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: RouterError = NotFound(
            f"There is no route {request.url.path}. The API lives under /v1 "
            "(POST /v1/chat/completions, GET /v1/models).",
            code="unknown_url",
        )
    else:
        error = InvalidRequest(
            f"{exc.detail} ({request.method} {request.url.path}).", code="http_error"
        )
        error.status = exc.status_code
    return _error_response(request, error)


async def _unexpected_error(
    request: Request, exc: BaseException, door: FrontDoor | None = None
) -> Response:
    log.exception("unhandled error", extra={"request_id": request_id_of(request)})
    error = RouterError(
        "The router hit an internal error. Retry; if it persists, report the "
        "x-request-id to the operator.",
        code="internal_error",
    )
    return _error_response(request, error, door)


_CHAT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": {"type": "string"},
                    "messages": {"type": "array", "items": {"type": "object"}},
                    "stream": {"type": "boolean"},
                },
            }
        }
    },
}
"""OpenAI's chat body, at its least: the route reads the raw request (everything else passes
through to the backend), so FastAPI cannot infer it."""


async def _metrics(request: Request) -> Response:
    """Prometheus exposition of this process's metrics."""
    runtime: Runtime = request.app.state.runtime
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(config: RouterConfig, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; the runtime is created in the lifespan unless a test passes one in."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = runtime or await Runtime.build(config)
        app.state.runtime = active
        await active.start()
        try:
            yield
        finally:
            await active.stop()

    app = FastAPI(
        title="model-router",
        summary="OpenAI-compatible, cost-aware router between a Mini and a full model.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RouterError, _router_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_api_route(
        "/v1/chat/completions",
        chat.chat_completions,
        methods=["POST"],
        tags=["client"],
        openapi_extra={"requestBody": _CHAT_BODY},
    )
    app.add_api_route(
        "/chat/completions", chat.chat_completions, methods=["POST"], include_in_schema=False
    )
    app.add_api_route("/metrics", _metrics, methods=["GET"], tags=["ops"])
    app.include_router(probes.router)
    app.include_router(policy_router)
    app.include_router(admin_router)
    app.include_router(backends_admin_router)
    return app


class HotPath:
    """ASGI entry: `POST /v1/chat/completions` goes straight to the pipeline, skipping
    FastAPI's middleware and dependency machinery (a measured ~10% of the router's CPU per
    request); everything else, lifespan included, is FastAPI's. Errors render the same way
    on both paths. Oversized headers are refused here for every route; a head that is still
    arriving past the limit is cut off earlier, by router/server/http_protocol.py."""

    def __init__(self, app: FastAPI, max_header_bytes: int) -> None:
        self.app = app
        self._max_header_bytes = max_header_bytes
        self._doors: dict[tuple[str, str], FrontDoor] = {
            ("POST", "/v1/chat/completions"): chat.CHAT,
            ("POST", "/chat/completions"): chat.CHAT,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        if sum(len(k) + len(v) for k, v in scope["headers"]) > self._max_header_bytes:
            request = Request(scope, receive)
            too_big = PayloadTooLarge(
                f"The request headers exceed {self._max_header_bytes} bytes. Send fewer or "
                "smaller headers.",
                code="headers_too_large",
            )
            too_big.status = 431
            await _error_response(request, too_big)(scope, receive, send)
            return
        door = self._doors.get((scope["method"], scope["path"]))
        if door is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await serve(request, door)
        except RouterError as error:
            response = _error_response(request, error, door)
        except Exception as error:  # noqa: BLE001 - logged, answered in the door's shape
            response = await _unexpected_error(request, error, door)
        await response(scope, receive, send)


def build_asgi(config: RouterConfig) -> HotPath:
    """The application `router serve` runs."""
    return HotPath(create_app(config), config.server.max_header_bytes)
