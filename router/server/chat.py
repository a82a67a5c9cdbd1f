"""POST /v1/chat/completions: OpenAI's chat API, the first front door of the pipeline.

The door reads a chat body into Features, renders what each candidate backend is sent, and
returns the upstream's answer unchanged; every step between is router/server/pipeline's.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from router.backends.base import Completion
from router.config import BackendConfig
from router.core.inspect import inspect
from router.core.model import Features
from router.core.tokens import TokenCounter
from router.errors import RouterError
from router.server.pipeline.serve import serve
from router.types import JSONObject

_JSON = "application/json"


class ChatCompletions:
    """The chat completions shape; every backend speaks it natively."""

    def model(self, body: JSONObject) -> object:
        return body.get("model")

    def parse(self, body: JSONObject, headers: Mapping[str, str], tokens: TokenCounter) -> Features:
        return inspect(body, headers, tokens)

    def target(
        self, body: JSONObject, backend: BackendConfig, output_tokens: int, stream: bool
    ) -> JSONObject:
        """The client's body with the backend's model name, the output bound in the field
        the backend honours, and usage asked for in streams (to settle them)."""
        sent = dict(body)
        sent["model"] = backend.model
        if stream:
            options = sent.get("stream_options")
            sent["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        sent.pop("max_tokens", None)
        sent.pop("max_completion_tokens", None)
        sent[backend.max_tokens_field] = output_tokens
        return sent

    def wants_usage(self, body: JSONObject) -> bool:
        options = body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def answer(self, completion: Completion, headers: dict[str, str]) -> Response:
        return Response(completion.body, media_type=_JSON, headers=headers)

    def error_body(self, error: RouterError) -> bytes:
        return error.body()


CHAT = ChatCompletions()


async def chat_completions(request: Request) -> Response:
    return await serve(request, CHAT)
