"""Providers that do not speak OpenAI's wire format (Anthropic, Bedrock, Vertex, ...), reached
through litellm. It costs milliseconds per call, so OpenAI-compatible backends never use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from router.backends.base import Completion, SupplyShortage
from router.config import BackendConfig
from router.errors import UpstreamFailed, UpstreamRejected, UpstreamTimeout
from router.litellm_loader import load_litellm
from router.types import JSONObject

_CHAT_PARAMS = frozenset(
    {
        "messages",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "seed",
        "logprobs",
        "top_logprobs",
        "modalities",
        "audio",
        "stream_options",
        "reasoning_effort",
        "prediction",
    }
)
"""OpenAI chat parameters passed on. Anything else (api_base, api_key, extra_headers, ...) is
dropped, so a client can never steer litellm to another URL or credential."""


class LitellmBackend:
    """Calls `litellm.acompletion` and re-encodes its answer as OpenAI JSON / SSE bytes."""

    def __init__(self, name: str, config: BackendConfig) -> None:
        self.name = name
        self._config = config
        self._litellm = load_litellm()

    def _kwargs(self, body: JSONObject, timeout_s: float) -> dict[str, Any]:
        kwargs = {k: v for k, v in body.items() if k in _CHAT_PARAMS}
        kwargs["model"] = self._config.model
        kwargs["timeout"] = min(timeout_s, self._config.timeouts.read_s)
        if self._config.base_url is not None:
            kwargs["api_base"] = self._config.base_url
        if self._config.api_key is not None:
            kwargs["api_key"] = self._config.api_key.get_secret_value()
        if self._config.headers:
            kwargs["extra_headers"] = dict(self._config.headers)
        return kwargs

    def _translate(self, exc: Exception) -> Exception:
        lib = self._litellm
        if isinstance(exc, lib.RateLimitError):
            return SupplyShortage(self.name, "http_429")
        if isinstance(exc, lib.ServiceUnavailableError):
            return SupplyShortage(self.name, "http_503")
        if isinstance(exc, lib.Timeout):
            return UpstreamTimeout(f"The {self.name} backend timed out. Retry the request.")
        if isinstance(exc, lib.APIConnectionError):
            return SupplyShortage(self.name, "refused")
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            return UpstreamRejected(status, f"The {self.name} backend rejected the request.")
        return UpstreamFailed(f"The {self.name} backend failed. Retry the request.")

    async def complete(self, body: JSONObject, timeout_s: float) -> Completion:
        try:
            response = await self._litellm.acompletion(**self._kwargs(body, timeout_s))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - litellm raises many types; all are mapped
            raise self._translate(exc) from None
        payload: JSONObject = response.model_dump(exclude_none=True)
        return Completion(body=orjson.dumps(payload), payload=payload)

    async def stream(self, body: JSONObject, timeout_s: float) -> _LitellmEventStream:
        kwargs = self._kwargs(body, timeout_s)
        kwargs["stream"] = True
        try:
            async with asyncio.timeout(min(timeout_s, self._config.timeouts.first_byte_s)):
                chunks = await self._litellm.acompletion(**kwargs)
                stream = _LitellmEventStream(self, chunks.__aiter__())
                await stream.read_first()
        except TimeoutError:
            raise SupplyShortage(self.name, "first_byte_timeout") from None
        except StopAsyncIteration:
            raise SupplyShortage(self.name, "dropped") from None
        except Exception as exc:  # noqa: BLE001 - see complete()
            raise self._translate(exc) from None
        return stream

    async def probe(self) -> None:
        """litellm providers have no free health call; the breaker learns from real traffic."""

    async def close(self) -> None:
        """litellm keeps its own clients; nothing of ours to release."""


def _event(chunk: Any) -> bytes:
    return b"data: " + orjson.dumps(chunk.model_dump(exclude_none=True)) + b"\n\n"


class _LitellmEventStream:
    def __init__(self, backend: LitellmBackend, chunks: AsyncIterator[Any]) -> None:
        self._backend = backend
        self._chunks = chunks
        self.first: list[bytes] = []

    async def read_first(self) -> None:
        self.first = [_event(await self._chunks.__anext__())]

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[bytes]]:
        try:
            async for chunk in self._chunks:
                yield [_event(chunk)]
        except Exception as exc:  # noqa: BLE001 - see LitellmBackend.complete()
            raise self._backend._translate(exc) from None
        yield [b"data: [DONE]\n\n"]

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()
