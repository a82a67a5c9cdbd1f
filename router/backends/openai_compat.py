"""OpenAI-compatible upstreams (vLLM, llama.cpp's server, Ollama, SGLang, OpenAI itself),
called over one pooled aiohttp session per backend: no new connection per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import orjson

from router.backends.base import Completion, SupplyShortage
from router.backends.sse import SSEFramer
from router.backends.upstream_errors import classify, scrub_event
from router.config import BackendConfig
from router.errors import UpstreamFailed, UpstreamTimeout
from router.types import JSONObject

_CHUNK = 64 * 1024
STEERING_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "api_type",
        "organization",
        "project",
        "extra_headers",
        "headers",
        "extra_query",
        "custom_llm_provider",
        "deployment_id",
        "azure_ad_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "vertex_credentials",
        "vertex_project",
        "vertex_location",
        "user_config",
        "litellm_params",
        "mock_response",
    }
)
"""Body fields that name an upstream URL, credential or headers. No OpenAI-compatible server
needs them from a client, and one that is itself a litellm proxy may act on them, so they
are dropped; every other field passes through unchanged."""


class OpenAICompatibleBackend:
    """One upstream base URL; the URL comes from config only, never from a client."""

    def __init__(self, name: str, config: BackendConfig) -> None:
        if config.base_url is None:
            raise ValueError(f"backend {name!r} needs a base_url")
        self.name = name
        self._config = config
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._models_url = config.base_url.rstrip("/") + "/models"
        self._headers = {"content-type": "application/json", **config.headers}
        if config.api_key is not None:
            self._headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        host = urlsplit(config.base_url).hostname
        self._secrets = frozenset(
            {
                *config.headers.values(),
                config.base_url.rstrip("/"),
                *([host] if host else []),
                *([config.api_key.get_secret_value()] if config.api_key is not None else []),
            }
        )
        """What an upstream's error may echo that a client must never see."""
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeouts = self._config.timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._config.max_connections, keepalive_timeout=30, ttl_dns_cache=300
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s
                ),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                auto_decompress=True,
                # Requests of every client share this session: an upstream's cookies must not
                # follow one client's request into another's (and skipping them is cheaper).
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _post(self, body: JSONObject, first_byte_s: float) -> aiohttp.ClientResponse:
        """POST and wait for the response head; failures before it are supply shortages."""
        try:
            async with asyncio.timeout(first_byte_s):
                return await self._client().post(
                    self._url,
                    data=orjson.dumps({k: v for k, v in body.items() if k not in STEERING_FIELDS}),
                    headers=self._headers,
                )
        except TimeoutError:
            raise SupplyShortage(self.name, "first_byte_timeout") from None
        except aiohttp.ClientConnectorError:
            raise SupplyShortage(self.name, "refused") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            raise SupplyShortage(self.name, "dropped") from None

    async def _read_limited(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._config.max_response_bytes
        if (response.content_length or 0) > limit:
            raise UpstreamFailed(f"The {self.name} backend sent a response over {limit} bytes.")
        if response.content_length is not None and "content-encoding" not in response.headers:
            return await response.read()  # exactly the declared length, checked above
        parts: list[bytes] = []
        size = 0
        async for part in response.content.iter_chunked(_CHUNK):
            size += len(part)
            if size > limit:
                raise UpstreamFailed(f"The {self.name} backend sent a response over {limit} bytes.")
            parts.append(part)
        return b"".join(parts)

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        if response.status == 200:
            return
        try:
            body = await self._read_limited(response)
        except (aiohttp.ClientError, TimeoutError, UpstreamFailed):
            body = b""
        finally:
            response.release()
        raise classify(self.name, response.status, body, response.headers, self._secrets)

    async def complete(self, body: JSONObject, timeout_s: float) -> Completion:
        first_byte_s = min(self._config.timeouts.first_byte_s, timeout_s)
        response = await self._post(body, first_byte_s)
        await self._raise_for_status(response)
        try:
            async with asyncio.timeout(min(self._config.timeouts.read_s, timeout_s)):
                raw = await self._read_limited(response)
        except TimeoutError:
            raise UpstreamTimeout(
                f"The {self.name} backend did not finish its answer in time. Retry, or lower "
                "max_tokens."
            ) from None
        except aiohttp.ClientError:
            raise UpstreamFailed(
                f"The {self.name} backend closed the connection mid-answer. Retry the request."
            ) from None
        finally:
            response.release()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamFailed(
                f"The {self.name} backend answered with invalid JSON. Retry the request."
            ) from None
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise UpstreamFailed(
                f"The {self.name} backend answered without a chat completion. Retry the request."
            )
        return Completion(body=raw, payload=payload)

    async def stream(self, body: JSONObject, timeout_s: float) -> _AiohttpEventStream:
        first_byte_s = min(self._config.timeouts.first_byte_s, timeout_s)
        response = await self._post(body, first_byte_s)
        await self._raise_for_status(response)
        stream = _AiohttpEventStream(
            self.name,
            response,
            self._config.timeouts.read_s,
            self._config.max_response_bytes,
            self._secrets,
        )
        try:
            async with asyncio.timeout(first_byte_s):
                await stream.read_first()
        except UpstreamFailed:
            response.close()
            raise
        except TimeoutError:
            response.close()
            raise SupplyShortage(self.name, "first_byte_timeout") from None
        except (aiohttp.ClientError, StopAsyncIteration):
            response.close()
            raise SupplyShortage(self.name, "dropped") from None
        return stream

    async def probe(self) -> None:
        try:
            async with asyncio.timeout(self._config.timeouts.connect_s):
                async with self._client().get(self._models_url, headers=self._headers) as resp:
                    if resp.status >= 500 or resp.status == 429:
                        raise SupplyShortage(self.name, "probe_failed")
        except TimeoutError:
            raise SupplyShortage(self.name, "probe_timeout") from None
        except aiohttp.ClientError:
            raise SupplyShortage(self.name, "probe_refused") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AiohttpEventStream:
    """Whole SSE events from an upstream response, read chunk by chunk, never buffered whole;
    a stream longer than `max_bytes` in all (or one endless event) is cut there."""

    def __init__(
        self,
        backend: str,
        response: aiohttp.ClientResponse,
        read_s: float,
        max_bytes: int,
        secrets: frozenset[str] = frozenset(),
    ) -> None:
        self._backend = backend
        self._secrets = secrets
        self._response = response
        self._read_s = read_s
        self._max_bytes = max_bytes
        self._size = 0
        self._framer = SSEFramer()
        self.first: list[bytes] = []

    async def _next_batch(self) -> list[bytes]:
        """The events with data that arrived together; comment-only events (`: ping`, which
        some servers send while they prefill) are keep-alives, not the first byte of an
        answer."""
        while True:
            chunk = await self._response.content.readany()
            if not chunk:
                raise StopAsyncIteration
            self._size += len(chunk)
            if self._size > self._max_bytes:
                raise UpstreamFailed(
                    f"The {self._backend} backend sent a stream over {self._max_bytes} "
                    "bytes; it was cut there."
                )
            batch = [
                scrub_event(event, self._secrets)
                for event in self._framer.feed(chunk)
                if not event.startswith(b":") or b"\ndata:" in event
            ]
            if batch:
                return batch

    async def read_first(self) -> None:
        self.first = await self._next_batch()

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[bytes]]:
        while True:
            try:
                async with asyncio.timeout(self._read_s):
                    batch = await self._next_batch()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamTimeout(f"The {self._backend} backend stalled mid-stream.") from None
            except aiohttp.ClientError:
                raise UpstreamFailed(f"The {self._backend} backend cut the stream off.") from None
            yield batch

    async def aclose(self) -> None:
        self._response.close()
