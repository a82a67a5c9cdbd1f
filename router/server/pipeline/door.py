"""A front door: the one part of the request path that knows an API's shape.

It reads the model the client named and turns its request body into Features, renders the
body each candidate backend is sent, and renders the answer and the errors. Everything
between (the steps in `serve`) is shared by every API the router speaks and knows none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from starlette.responses import Response

from router.backends.base import Completion
from router.config import BackendConfig
from router.core.model import Features
from router.core.tokens import TokenCounter
from router.errors import RouterError
from router.types import JSONObject


class FrontDoor(Protocol):
    def model(self, body: JSONObject) -> object:
        """The model the client named: a routed alias, or a backend to pin."""

    def parse(self, body: JSONObject, headers: Mapping[str, str], tokens: TokenCounter) -> Features:
        """The request's features, or InvalidRequest naming the parameter at fault."""

    def target(
        self, body: JSONObject, backend: BackendConfig, output_tokens: int, stream: bool
    ) -> JSONObject:
        """The body `backend` is sent: the client's request for it, its output bounded to
        `output_tokens`."""

    def wants_usage(self, body: JSONObject) -> bool:
        """Whether the client asked for the usage chunk at the end of a stream."""

    def answer(self, completion: Completion, headers: dict[str, str]) -> Response:
        """The response to a whole (not streamed) answer."""

    def error_body(self, error: RouterError) -> bytes:
        """The error as this API's clients expect it; the status is the error's own."""
