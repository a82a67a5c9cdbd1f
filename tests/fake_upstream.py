"""A fake OpenAI-compatible upstream: a real HTTP server on loopback, programmable per test.

Why a real server instead of mocking the HTTP client: the router's failure handling
(retries, timeouts, stream cuts, garbage bodies, concurrency caps, charging from reported
usage) lives in how it talks to sockets, so the tests must exercise real connections.
The fake speaks the OpenAI Chat Completions wire format exactly (``chat.completion`` and
``chat.completion.chunk`` objects, SSE ending in ``data: [DONE]``), reports deterministic
token counts that tests can compute, records every request it receives, and can be told
at run time to misbehave in the ways real providers and self-hosted servers do.

It runs an aiohttp server in a background thread with its own event loop, so sync tests,
async tests (on any loop) and the router under test can all use it at once::

    with FakeUpstream() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
        fake.fail(503, times=1, retry_after=0.01)   # next call fails, then recovers
        fake.configure(latency_ms=20, reply_words=5)  # several knobs atomically
        fake.behaviour.chunk_delay_ms = 5            # or one knob directly
        ...
        rec = fake.last_request
        assert rec.usage == {"prompt_tokens": ..., "completion_tokens": 5, ...}

Token counting (deterministic, see :func:`count_prompt_tokens`):

* ``prompt_tokens`` = for every message, the number of whitespace-separated words in its
  text content (a string, or the ``text`` of ``{"type": "text"}`` parts) plus
  :data:`MESSAGE_OVERHEAD_TOKENS` (4). Replaceable with ``Behaviour.prompt_tokens_fn``.
* ``completion_tokens`` = number of words in the reply actually produced; a stream sends
  exactly one content chunk per word, so it is also the number of content chunks. If the
  request sets ``max_completion_tokens``/``max_tokens`` below the reply length, the reply
  is truncated to that many words and ``finish_reason`` is ``"length"``.

To run it in a separate process (e2e tests)::

    python -m tests.fake_upstream --port 8001 --model fake-model [--set latency_ms=50]

It prints ``READY <base_url>`` on stdout once listening and stops on SIGTERM/SIGINT.
A process-mode fake is controlled over HTTP under ``/_fake/`` (see
:class:`RemoteFakeUpstream` and :func:`fake_upstream_process`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import json
import math
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

import orjson
from aiohttp import web

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_REPLY_WORDS",
    "MESSAGE_OVERHEAD_TOKENS",
    "RETRYABLE_STATUSES",
    "Behaviour",
    "FakeUpstream",
    "RecordedRequest",
    "RemoteFakeUpstream",
    "count_prompt_tokens",
    "count_words",
    "default_reply",
    "fake_upstream_process",
    "main",
    "message_text",
    "running_fake_upstream",
    "split_reply",
]

HOST = "127.0.0.1"
DEFAULT_MODEL = "fake-model"
DEFAULT_REPLY_WORDS = 8
MESSAGE_OVERHEAD_TOKENS = 4
"""Fixed prompt tokens added per message (role/separators), like real chat templates."""

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""Statuses that get a ``Retry-After`` header when injected with :meth:`FakeUpstream.fail`."""

CONTROL_PREFIX = "/_fake"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
)
_WORD_RE = re.compile(r"\s*\S+")

# status -> (error.type, error.code, message), shaped like OpenAI's (529 like Anthropic's).
_ERROR_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (fake upstream)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (fake)."),
    403: ("permission_error", None, "You are not allowed to do this (fake upstream)."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist (fake)."),
    408: ("timeout", None, "Request timed out (fake upstream)."),
    409: ("conflict", None, "Conflict (fake upstream)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (fake upstream)."),
    500: ("server_error", None, "The server had an error (fake upstream)."),
    502: ("server_error", "bad_gateway", "Bad gateway (fake upstream)."),
    503: ("server_error", "service_unavailable", "The engine is overloaded (fake upstream)."),
    504: ("server_error", "gateway_timeout", "Gateway timeout (fake upstream)."),
    529: ("overloaded_error", "overloaded", "Overloaded (fake upstream)."),
}


# --------------------------------------------------------------------------- token counting


def message_text(message: Any) -> str:
    """The text of one chat message: string content, or ``text`` parts joined by spaces."""
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p["text"]
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
        return " ".join(parts)
    return ""


def count_words(text: str) -> int:
    """Whitespace-separated words: the fake's unit of "token"."""
    return len(text.split())


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Default prompt token count of a chat request body.

    Sum over messages of ``count_words(message_text(m)) + MESSAGE_OVERHEAD_TOKENS``.
    Non-list ``messages`` counts as 0. Tests use this to compute expected charges exactly.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(count_words(message_text(m)) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def default_reply(words: int = DEFAULT_REPLY_WORDS) -> str:
    """The default deterministic reply: ``words`` NATO-alphabet words separated by spaces."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(max(0, words)))


def split_reply(text: str) -> list[str]:
    """Split a reply into per-word pieces (leading whitespace kept) whose join is ``text``.

    Each piece is one stream content chunk and one completion token.
    """
    pieces = _WORD_RE.findall(text)
    if pieces:
        tail = text[sum(map(len, pieces)) :]
        pieces[-1] += tail
    return pieces


def _huge_reply(total_bytes: int, words: int) -> str:
    """About ``total_bytes`` of content made of exactly ``max(1, words)`` words."""
    words = max(1, words)
    word_len = max(1, total_bytes // words - 1)
    return " ".join("x" * word_len for _ in range(words))


# --------------------------------------------------------------------------- behaviour


@dataclasses.dataclass
class Behaviour:
    """Everything a test can make the fake do, for ``/v1/chat/completions``.

    Fields may be assigned directly from any thread (``fake.behaviour.latency_ms = 5``);
    each request works from a snapshot taken when it arrives. Use
    :meth:`FakeUpstream.configure` to change several fields atomically and
    :meth:`FakeUpstream.fail` to set up failures (it also restarts the failure pattern).
    """

    # -- timing
    latency_ms: float = 0.0
    """Delay before the response starts (applies to errors too)."""
    stall_s: float = 0.0
    """After accepting the request, send nothing for this long (then respond normally).
    Interrupted by :meth:`FakeUpstream.stop` (connection aborted) so tests never hang."""

    # -- injected failures
    fail_status: int | None = None
    """Respond with this HTTP status and an OpenAI-shaped error body instead of a reply."""
    fail_times: int | None = None
    """Failures left; decremented on each injected failure, failing stops at 0.
    ``None`` = unlimited."""
    fail_fraction: float | Fraction | str | None = None
    """Fail only this fraction of calls, deterministically: call ``i`` (0-based, counted
    from the last :meth:`FakeUpstream.fail`) fails iff ``ceil((i+1)*f) > ceil(i*f)``.
    So ``1/2`` fails calls 0, 2, 4, ... and ``1/3`` fails calls 0, 3, 6, ...
    ``None`` = every call."""
    retry_after: float | None = 1.0
    """``Retry-After`` seconds sent with retryable statuses (see RETRYABLE_STATUSES);
    ``None`` omits the header."""
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None

    # -- reply content
    reply: str | None = None
    """Reply text; ``None`` means :func:`default_reply` of ``reply_words`` words."""
    reply_words: int = DEFAULT_REPLY_WORDS
    """Words in the default reply = completion tokens = stream content chunks."""
    huge_bytes: int | None = None
    """Replace the reply by ~this many bytes of content in ``reply_words`` words."""
    response_model: str | None = None
    """``model`` in responses; ``None`` echoes the request's model."""
    finish_reason: str | None = None
    """Override ``finish_reason`` (default ``"stop"``, or ``"length"`` when truncated)."""
    prompt_tokens_fn: Callable[[Mapping[str, Any]], int] | None = None
    """Replaces :func:`count_prompt_tokens` (called with the parsed request body)."""
    cached_tokens: int | None = None
    """If set, usage includes ``prompt_tokens_details.cached_tokens`` (capped at prompt)."""

    # -- streaming
    chunk_delay_ms: float = 0.0
    """Delay before each stream content chunk."""
    cut_after_chunks: int | None = None
    """Stream: after this many content chunks, abort the connection (no finish chunk, no
    ``[DONE]``, no terminating HTTP chunk). Non-stream: send headers with the full
    Content-Length and half the body, then abort."""

    # -- malformed / awkward responses
    garbage: bool = False
    """Respond 200 with ``garbage_body`` (not JSON / not SSE JSON)."""
    garbage_body: bytes = b"<html>upstream exploded</html> {not json"
    omit_usage: bool = False
    """Never report usage (non-stream 200 without ``usage``; no usage in streams)."""
    trickle_bytes: int | None = None
    """Write the response body this many bytes at a time, ``trickle_interval_ms`` apart."""
    trickle_interval_ms: float = 10.0

    # -- real-server quirks
    ignore_include_usage: bool = False
    """Ignore ``stream_options.include_usage`` (never send stream usage), like llama.cpp."""
    always_stream_usage: bool = False
    """Send stream usage even when the request did not ask for it."""
    usage_in_final_chunk: bool = False
    """Put stream usage on the finish chunk (with non-empty ``choices``) instead of a
    separate usage-only chunk."""
    finish_in_last_content_chunk: bool = False
    """Set ``finish_reason`` on the last content chunk instead of a separate empty-delta
    chunk."""
    omit_done: bool = False
    """End streams cleanly but without ``data: [DONE]``."""

    # -- other endpoints
    health_status: int = 200
    """Status of ``GET /health``."""


_BEHAVIOUR_FIELDS = frozenset(f.name for f in dataclasses.fields(Behaviour))
_FAIL_FIELDS = frozenset({"fail_status", "fail_times", "fail_fraction"})


def _as_fraction(value: float | Fraction | str) -> Fraction:
    frac = Fraction(value).limit_denominator(1_000_000)
    if not 0 <= frac <= 1:
        raise ValueError(f"fail_fraction must be within [0, 1], got {value!r}")
    return frac


# --------------------------------------------------------------------------- request log


@dataclasses.dataclass
class RecordedRequest:
    """One request the fake received, filled in as it is answered.

    A record is final (``finished`` true, counts and ``usage`` set, in-flight count
    released) *before* the last byte of its response is written, so a test that has
    read a complete response can assert on the record without waiting. Only outcomes
    caused by the client (disconnects) are recorded after the fact; use
    :meth:`FakeUpstream.wait_for_requests` / :meth:`FakeUpstream.wait_idle` for those.

    ``prompt_tokens``/``completion_tokens``/``cached_tokens`` are what the fake actually
    produced (for a cut stream: the content chunks sent before the cut), whether or not it
    reported them; ``usage`` is exactly the usage object it sent to the client, or ``None``
    if it sent none (errors, garbage, cut streams, streams without ``include_usage``,
    ``omit_usage``...). Header names are lower-cased.
    """

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """Parsed JSON body, or ``None`` if empty / not JSON."""
    raw_body: bytes
    received_at: float
    """``time.monotonic()`` at arrival."""
    stream: bool = False
    include_usage: bool = False
    status: int | None = None
    outcome: str = "pending"
    """``pending``, ``ok``, ``error`` (any non-200), ``garbage``, ``cut``,
    ``client_disconnected`` or ``aborted`` (server stopped while answering)."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    usage: dict[str, Any] | None = None
    content: str | None = None
    """Reply content actually sent (for streams: the joined content chunks)."""
    chunks_sent: int = 0
    """Stream content chunks sent (the role-only first chunk is not counted)."""
    finished_at: float | None = None
    _live: bool = dataclasses.field(default=False, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the fake is done with this request (whatever the outcome)."""
        return self.finished_at is not None

    @property
    def model(self) -> str | None:
        """The ``model`` the client asked for."""
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[Any]:
        """The request's ``messages`` (empty if absent)."""
        msgs = self.body.get("messages") if isinstance(self.body, dict) else None
        return msgs if isinstance(msgs, list) else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``raw_body`` decoded as UTF-8 with replacement)."""
        data = dataclasses.asdict(self)
        del data["_live"]
        data["raw_body"] = self.raw_body.decode("utf-8", "replace")
        return data


class _Cut(Exception):
    """Internal: the handler aborted the connection on purpose."""


# --------------------------------------------------------------------------- the server


class FakeUpstream:
    """A programmable OpenAI-compatible server on ``host:port`` (port 0 = pick a free one).

    Args:
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free port (read it back from :attr:`port`).
        model: default model id, listed by ``/v1/models`` and used when a request has none.
        models: extra model ids for ``/v1/models``.
        api_key: if set, chat requests must send ``Authorization: Bearer <api_key>``
            or get a 401 (``outcome == "error"``).
        behaviour: initial behaviour (copied); ``reset()`` returns to it.
        **knobs: shortcuts for :class:`Behaviour` fields applied to the initial behaviour.

    Only ``/v1/chat/completions`` (and ``/chat/completions``) requests go into
    :attr:`requests` and count for :attr:`call_count`, in-flight tracking and failure
    patterns; other paths are recorded in :attr:`other_requests`; ``/_fake/*`` control
    requests are not recorded.
    """

    def __init__(
        self,
        host: str = HOST,
        port: int = 0,
        *,
        model: str = DEFAULT_MODEL,
        models: Sequence[str] = (),
        api_key: str | None = None,
        behaviour: Behaviour | None = None,
        **knobs: Any,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port: int = port
        self.model = model
        self.models: list[str] = [model, *(m for m in models if m != model)]
        self.api_key = api_key
        initial = copy.copy(behaviour) if behaviour is not None else Behaviour()
        _check_knobs(knobs)
        for name, value in knobs.items():
            setattr(initial, name, value)
        if initial.fail_fraction is not None:
            _as_fraction(initial.fail_fraction)
        self._initial = initial
        self.behaviour: Behaviour = copy.copy(initial)

        self._cond = threading.Condition(threading.Lock())
        self._requests: list[RecordedRequest] = []
        self._other: list[RecordedRequest] = []
        self._seq = 0
        self._fail_seq = 0
        self._in_flight = 0
        self._max_in_flight = 0

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._active: dict[asyncio.Task[Any], web.BaseRequest] = {}
        self._start_error: BaseException | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def root_url(self) -> str:
        """``http://host:port`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, ``http://host:port/v1``."""
        return f"{self.root_url}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> Self:
        """Bind, start the server thread, and return once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(1024)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready), name=f"fake-upstream:{self.port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("fake upstream did not start in time")
        if self._start_error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise RuntimeError("fake upstream failed to start") from self._start_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Abort in-flight requests (stalls included), close the listener, join the thread.

        Idempotent; the instance cannot be started again afterwards.
        """
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._astart(sock))
        except BaseException as exc:
            self._start_error = exc
            sock.close()
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._shutdown())
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _astart(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/chat/completions", self._handle_chat)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/v1/models/{model:.+}", self._handle_model)
        app.router.add_get("/health", self._handle_health)
        app.router.add_route("*", CONTROL_PREFIX + "/{action}", self._handle_control)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        self._stopping = True
        for task, request in list(self._active.items()):
            if request.transport is not None:
                request.transport.abort()
            task.cancel()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ control (test side)

    def configure(self, **knobs: Any) -> None:
        """Set several :class:`Behaviour` fields atomically (unknown names raise TypeError).

        Touching any ``fail_*`` field restarts the failure pattern.
        """
        _check_knobs(knobs)
        if knobs.get("fail_fraction") is not None:
            _as_fraction(knobs["fail_fraction"])
        with self._cond:
            for name, value in knobs.items():
                setattr(self.behaviour, name, value)
            if _FAIL_FIELDS & knobs.keys():
                self._fail_seq = 0

    def fail(
        self,
        status: int = 503,
        *,
        times: int | None = None,
        fraction: float | Fraction | str | None = None,
        retry_after: float | None = 1.0,
        message: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
    ) -> None:
        """Make chat calls fail with ``status`` and an OpenAI-shaped error body.

        ``times=N``: only the next N (matching) calls fail. ``fraction=f``: a deterministic
        fraction of calls fail (see ``Behaviour.fail_fraction``); both combine. Neither:
        every call fails. ``Retry-After: retry_after`` is sent for retryable statuses.
        """
        self.configure(
            fail_status=status,
            fail_times=times,
            fail_fraction=fraction,
            retry_after=retry_after,
            error_message=message,
            error_type=error_type,
            error_code=code,
        )

    def succeed(self) -> None:
        """Stop injecting failures."""
        self.configure(fail_status=None, fail_times=None, fail_fraction=None)

    def reset(self) -> None:
        """Back to the constructor's behaviour (and restart the failure pattern)."""
        with self._cond:
            self.behaviour = copy.copy(self._initial)
            self._fail_seq = 0

    def clear(self) -> None:
        """Forget recorded requests; max in-flight restarts from the current in-flight."""
        with self._cond:
            self._requests.clear()
            self._other.clear()
            self._max_in_flight = self._in_flight

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Chat completion requests received, oldest first (a copy of the list)."""
        with self._cond:
            return list(self._requests)

    @property
    def other_requests(self) -> list[RecordedRequest]:
        """Requests to paths other than chat completions (models, health, unknown)."""
        with self._cond:
            return list(self._other)

    @property
    def last_request(self) -> RecordedRequest | None:
        """Most recent chat completion request, or ``None``."""
        with self._cond:
            return self._requests[-1] if self._requests else None

    @property
    def call_count(self) -> int:
        """Number of chat completion requests received (since the last ``clear()``)."""
        with self._cond:
            return len(self._requests)

    @property
    def in_flight(self) -> int:
        """Chat completion requests being answered right now."""
        with self._cond:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Highest concurrent in-flight chat requests seen (since the last ``clear()``)."""
        with self._cond:
            return self._max_in_flight

    def wait_for_requests(
        self, n: int, *, timeout: float = 5.0, finished: bool = False
    ) -> list[RecordedRequest]:
        """Block until ``n`` chat requests have arrived (and, if ``finished``, are done).

        Returns the request list; raises ``TimeoutError`` otherwise. This is the way to
        synchronise with the fake instead of sleeping.
        """

        def ok() -> bool:
            if len(self._requests) < n:
                return False
            return not finished or all(r.finished for r in self._requests[:n])

        with self._cond:
            if not self._cond.wait_for(ok, timeout):
                raise TimeoutError(
                    f"wanted {n} {'finished ' if finished else ''}requests, "
                    f"have {len(self._requests)}"
                )
            return list(self._requests)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no chat request is in flight; ``TimeoutError`` otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"{self._in_flight} requests still in flight")

    # ------------------------------------------------------------------ handlers

    def _record(self, request: web.BaseRequest, raw: bytes, chat: bool) -> RecordedRequest:
        body: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                body = orjson.loads(raw)
        rec = RecordedRequest(
            index=0,
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            raw_body=raw,
            received_at=time.monotonic(),
        )
        if isinstance(body, dict):
            rec.stream = body.get("stream") is True
            opts = body.get("stream_options")
            rec.include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        with self._cond:
            rec.index = self._seq
            self._seq += 1
            if chat:
                self._requests.append(rec)
                rec._live = True
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)
            else:
                self._other.append(rec)
            self._cond.notify_all()
        return rec

    def _finish(self, rec: RecordedRequest, outcome: str) -> None:
        """Make the record final and release its in-flight slot (a later call may only
        change the outcome, e.g. to ``client_disconnected`` if the last write fails)."""
        with self._cond:
            rec.outcome = outcome
            if rec.finished_at is None:
                rec.finished_at = time.monotonic()
            if rec._live:
                rec._live = False
                self._in_flight -= 1
            self._cond.notify_all()

    def _decide_failure(self, b: Behaviour) -> bool:
        """Decide (atomically, in arrival order) whether this call gets the injected error."""
        if b.fail_status is None:
            return False
        with self._cond:
            live = self.behaviour
            if live.fail_times is not None and live.fail_times <= 0:
                return False
            i = self._fail_seq
            self._fail_seq += 1
            if b.fail_fraction is not None:
                f = _as_fraction(b.fail_fraction)
                if math.ceil((i + 1) * f) <= math.ceil(i * f):
                    return False
            if live.fail_times is not None:
                live.fail_times -= 1
            return True

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._active[task] = request
        rec: RecordedRequest | None = None
        try:
            raw = await request.read()
            rec = self._record(request, raw, chat=True)
            with self._cond:
                b = copy.copy(self.behaviour)
            return await self._answer_chat(request, rec, b)
        except _Cut:
            return web.Response()  # never sent: the transport is already aborted
        except ConnectionError:
            # The client went away while we were writing.
            if rec is not None:
                self._finish(rec, "client_disconnected")
            return web.Response()  # never sent
        except asyncio.CancelledError:
            # stop() cancels in-flight handlers; aiohttp cancels them on client disconnect.
            if rec is not None and not rec.finished:
                self._finish(rec, "aborted" if self._stopping else "client_disconnected")
            raise
        finally:
            self._active.pop(task, None)
            if rec is not None and not rec.finished:
                self._finish(rec, "aborted")

    async def _answer_chat(
        self, request: web.Request, rec: RecordedRequest, b: Behaviour
    ) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return self._error_response(rec, 401, b, use_behaviour_text=False)
        failing = self._decide_failure(b)
        if b.latency_ms > 0:
            await asyncio.sleep(b.latency_ms / 1000)
        if b.stall_s > 0:
            await asyncio.sleep(b.stall_s)
        if failing:
            assert b.fail_status is not None
            return self._error_response(rec, b.fail_status, b)
        body = rec.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error_response(
                rec,
                400,
                b,
                use_behaviour_text=False,
                message="Request body must be a JSON object with a 'messages' list.",
            )
        if b.garbage:
            return await self._garbage(request, rec, b)

        # Build the reply.
        text = b.reply if b.reply is not None else default_reply(b.reply_words)
        if b.huge_bytes is not None:
            text = _huge_reply(b.huge_bytes, b.reply_words)
        pieces = split_reply(text)
        limit = body.get("max_completion_tokens")
        if limit is None:
            limit = body.get("max_tokens")
        truncated = isinstance(limit, int) and 0 <= limit < len(pieces)
        if truncated:
            pieces = pieces[:limit]
        finish = b.finish_reason or ("length" if truncated else "stop")
        prompt_tokens = (b.prompt_tokens_fn or count_prompt_tokens)(body)
        model = b.response_model or (
            body["model"] if isinstance(body.get("model"), str) else self.model
        )
        rec.prompt_tokens = prompt_tokens
        if b.cached_tokens is not None:
            rec.cached_tokens = min(b.cached_tokens, prompt_tokens)
        head: dict[str, Any] = {
            "id": f"chatcmpl-fake-{rec.index}",
            "object": "chat.completion.chunk" if rec.stream else "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if rec.stream:
            return await self._stream(request, rec, b, head, pieces, finish)
        return await self._complete(request, rec, b, head, pieces, finish)

    def _usage(self, rec: RecordedRequest) -> dict[str, Any]:
        prompt = rec.prompt_tokens or 0
        completion = rec.completion_tokens or 0
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if rec.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": rec.cached_tokens}
        return usage

    async def _complete(
        self,
        request: web.Request,
        rec: RecordedRequest,
        b: Behaviour,
        head: dict[str, Any],
        pieces: list[str],
        finish: str,
    ) -> web.StreamResponse:
        content = "".join(pieces)
        rec.completion_tokens = len(pieces)
        payload: dict[str, Any] = {
            **head,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
        }
        usage = None if b.omit_usage else self._usage(rec)
        if usage is not None:
            payload["usage"] = usage
        data = orjson.dumps(payload)
        if b.cut_after_chunks is None and b.trickle_bytes is None:
            rec.status, rec.usage, rec.content = 200, usage, content
            self._finish(rec, "ok")
            return web.Response(body=data, content_type="application/json")
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.content_length = len(data)
        await resp.prepare(request)
        rec.status = 200
        if b.cut_after_chunks is not None:
            await resp.write(data[: len(data) // 2])
            self._cut(request, rec)
        rec.usage, rec.content = usage, content
        self._finish(rec, "ok")
        await self._write(resp, data, b)
        await resp.write_eof()
        return resp

    async def _stream(
        self,
        request: web.Request,
        rec: RecordedRequest,
        b: Behaviour,
        head: dict[str, Any],
        pieces: list[str],
        finish: str,
    ) -> web.StreamResponse:
        send_usage = not b.omit_usage and (
            b.always_stream_usage or (rec.include_usage and not b.ignore_include_usage)
        )
        null_usage = send_usage and not b.usage_in_final_chunk

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            obj: dict[str, Any] = {
                **head,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
            }
            if null_usage:
                obj["usage"] = None
            return obj

        def sse(obj: dict[str, Any]) -> bytes:
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            },
        )
        await resp.prepare(request)
        rec.status = 200
        rec.completion_tokens = 0
        rec.content = ""
        role = {"role": "assistant", "content": "", "refusal": None}
        await self._write(resp, sse(chunk(role)), b)
        last = len(pieces) - 1
        finish_sent = False
        for i, piece in enumerate(pieces):
            if b.cut_after_chunks is not None and i >= b.cut_after_chunks:
                self._cut(request, rec)
            if b.chunk_delay_ms > 0:
                await asyncio.sleep(b.chunk_delay_ms / 1000)
            fr = finish if b.finish_in_last_content_chunk and i == last else None
            finish_sent = fr is not None
            rec.chunks_sent += 1
            rec.completion_tokens += 1
            rec.content += piece
            await self._write(resp, sse(chunk({"content": piece}, fr)), b)
        if b.cut_after_chunks is not None:
            self._cut(request, rec)
        usage = self._usage(rec) if send_usage else None
        tail = b""
        if not finish_sent:
            final = chunk({}, finish)
            if usage is not None and b.usage_in_final_chunk:
                final["usage"] = usage
            tail += sse(final)
        elif usage is not None and b.usage_in_final_chunk:
            # finish went out on the last content chunk: send usage in a trailing chunk
            # that still carries choices, as some servers do.
            extra = chunk({})
            extra["usage"] = usage
            tail += sse(extra)
        if usage is not None and not b.usage_in_final_chunk:
            tail += sse({**head, "choices": [], "usage": usage})
        if not b.omit_done:
            tail += b"data: [DONE]\n\n"
        rec.usage = usage
        self._finish(rec, "ok")
        await self._write(resp, tail, b)
        await resp.write_eof()
        return resp

    async def _garbage(
        self, request: web.Request, rec: RecordedRequest, b: Behaviour
    ) -> web.StreamResponse:
        ctype = "text/event-stream" if rec.stream else "application/json"
        resp = web.StreamResponse(status=200)
        resp.content_type = ctype
        resp.content_length = len(b.garbage_body)
        await resp.prepare(request)
        rec.status = 200
        self._finish(rec, "garbage")
        await self._write(resp, b.garbage_body, b)
        await resp.write_eof()
        return resp

    def _error_response(
        self,
        rec: RecordedRequest,
        status: int,
        b: Behaviour,
        *,
        use_behaviour_text: bool = True,
        message: str | None = None,
    ) -> web.Response:
        etype, code, default_msg = _ERROR_DEFAULTS.get(
            status,
            (
                "server_error" if status >= 500 else "invalid_request_error",
                None,
                f"HTTP {status} (fake upstream).",
            ),
        )
        if use_behaviour_text:
            etype = b.error_type or etype
            code = b.error_code or code
            message = message or b.error_message
        body = {
            "error": {"message": message or default_msg, "type": etype, "param": None, "code": code}
        }
        headers: dict[str, str] = {}
        if status in RETRYABLE_STATUSES and b.retry_after is not None:
            ra = b.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else repr(float(ra))
        rec.status = status
        self._finish(rec, "error")
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers=headers,
        )

    def _cut(self, request: web.BaseRequest, rec: RecordedRequest) -> NoReturn:
        """Record the cut, then drop the connection abruptly (no terminating chunk)."""
        self._finish(rec, "cut")
        if request.transport is not None:
            request.transport.abort()
        raise _Cut

    @staticmethod
    async def _write(resp: web.StreamResponse, data: bytes, b: Behaviour) -> None:
        step = b.trickle_bytes
        if not step or step <= 0:
            await resp.write(data)
            return
        delay = b.trickle_interval_ms / 1000
        for start in range(0, len(data), step):
            await resp.write(data[start : start + step])
            if delay > 0:
                await asyncio.sleep(delay)

    async def _handle_models(self, request: web.Request) -> web.Response:
        rec = self._record(request, b"", chat=False)
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake-upstream"}
            for m in self.models
        ]
        rec.status = 200
        self._finish(rec, "ok")
        return web.json_response({"object": "list", "data": data}, dumps=_dumps)

    async def _handle_model(self, request: web.Request) -> web.Response:
        rec = self._record(request, b"", chat=False)
        name = request.match_info["model"]
        if name not in self.models:
            rec.status = 404
            self._finish(rec, "error")
            return _plain_error(404, f"The model '{name}' does not exist", "model_not_found")
        rec.status = 200
        self._finish(rec, "ok")
        return web.json_response(
            {"id": name, "object": "model", "created": 0, "owned_by": "fake-upstream"},
            dumps=_dumps,
        )

    async def _handle_health(self, request: web.Request) -> web.Response:
        rec = self._record(request, b"", chat=False)
        status = self.behaviour.health_status
        rec.status = status
        self._finish(rec, "ok" if status == 200 else "error")
        return web.json_response(
            {"status": "ok" if status == 200 else "unhealthy"}, status=status, dumps=_dumps
        )

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        rec = self._record(request, await request.read(), chat=False)
        rec.status = 404
        self._finish(rec, "error")
        return _plain_error(404, f"Unknown path {request.method} {request.path}", None)

    async def _handle_control(self, request: web.Request) -> web.Response:
        """``/_fake/*``: let a test in another process drive a process-mode fake."""
        action = request.match_info["action"]
        args: dict[str, Any] = {}
        raw = await request.read()
        if raw:
            try:
                args = orjson.loads(raw)
            except ValueError:
                return _plain_error(400, "control body must be JSON", None)
        try:
            if action == "configure":
                if isinstance(args.get("garbage_body"), str):
                    args["garbage_body"] = args["garbage_body"].encode()
                self.configure(**args)
            elif action == "fail":
                self.fail(**args)
            elif action == "succeed":
                self.succeed()
            elif action == "reset":
                self.reset()
            elif action == "clear":
                self.clear()
            elif action == "requests":
                return web.json_response([r.to_dict() for r in self.requests], dumps=_dumps)
            elif action != "stats":
                return _plain_error(404, f"unknown control action {action!r}", None)
        except (TypeError, ValueError) as exc:
            return _plain_error(400, str(exc), None)
        return web.json_response(
            {
                "call_count": self.call_count,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "port": self.port,
            },
            dumps=_dumps,
        )


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def _plain_error(status: int, message: str, code: str | None) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _check_knobs(knobs: Mapping[str, Any]) -> None:
    unknown = set(knobs) - _BEHAVIOUR_FIELDS
    if unknown:
        raise TypeError(f"unknown Behaviour field(s): {', '.join(sorted(unknown))}")


# --------------------------------------------------------------------------- pytest helpers


def running_fake_upstream(**kwargs: Any) -> Iterator[FakeUpstream]:
    """Generator for pytest fixtures: ``yield from running_fake_upstream(model="m")``.

    Starts a :class:`FakeUpstream` with ``kwargs`` and stops it afterwards.
    """
    with FakeUpstream(**kwargs) as fake:
        yield fake


# --------------------------------------------------------------------------- process mode


class RemoteFakeUpstream:
    """Drive a fake running in another process (``python -m tests.fake_upstream``) over
    its ``/_fake/*`` control endpoints. Same knob names as :class:`FakeUpstream`."""

    def __init__(self, base_url: str, process: subprocess.Popen[str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.root_url = self.base_url.removesuffix("/v1")
        self.process = process

    def _call(self, action: str, payload: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(dict(payload or {})).encode()
        req = urllib.request.Request(
            f"{self.root_url}{CONTROL_PREFIX}/{action}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def configure(self, **knobs: Any) -> None:
        """Same as :meth:`FakeUpstream.configure` (``prompt_tokens_fn`` not supported)."""
        if isinstance(knobs.get("fail_fraction"), Fraction):
            knobs["fail_fraction"] = str(knobs["fail_fraction"])
        if isinstance(knobs.get("garbage_body"), bytes):
            knobs["garbage_body"] = knobs["garbage_body"].decode()
        self._call("configure", knobs)

    def fail(self, status: int = 503, **kwargs: Any) -> None:
        if isinstance(kwargs.get("fraction"), Fraction):
            kwargs["fraction"] = str(kwargs["fraction"])
        self._call("fail", {"status": status, **kwargs})

    def succeed(self) -> None:
        self._call("succeed")

    def reset(self) -> None:
        self._call("reset")

    def clear(self) -> None:
        self._call("clear")

    def requests(self) -> list[dict[str, Any]]:
        """Recorded chat requests as dicts (fields of :class:`RecordedRequest`)."""
        result: list[dict[str, Any]] = self._call("requests")
        return result

    def stats(self) -> dict[str, Any]:
        """``call_count``, ``in_flight``, ``max_in_flight``, ``port``."""
        result: dict[str, Any] = self._call("stats")
        return result


@contextlib.contextmanager
def fake_upstream_process(
    port: int = 0,
    *,
    model: str = DEFAULT_MODEL,
    args: Sequence[str] = (),
    startup_timeout: float = 15.0,
) -> Iterator[RemoteFakeUpstream]:
    """Run ``python -m tests.fake_upstream`` as a child process; yield a controller.

    Waits for its ``READY`` line, and terminates it (then kills if needed) on exit.
    """
    cmd = [
        sys.executable,
        "-m",
        "tests.fake_upstream",
        "--port",
        str(port),
        "--model",
        model,
        *args,
    ]
    proc = subprocess.Popen(cmd, cwd=_REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = None
        deadline = time.monotonic() + startup_timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while base_url is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    raise RuntimeError("fake upstream process did not become ready")
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"fake upstream process exited ({proc.wait()})")
                if line.startswith("READY "):
                    base_url = line.split(maxsplit=1)[1].strip()
        yield RemoteFakeUpstream(base_url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_upstream",
        description="Fake OpenAI-compatible upstream for tests.",
    )
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KNOB=JSON",
        help="initial Behaviour field, value as JSON (bare strings allowed), repeatable",
    )
    ns = parser.parse_args(argv)
    knobs: dict[str, Any] = {}
    for item in ns.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set needs KNOB=VALUE, got {item!r}")
        try:
            knobs[name] = json.loads(value)
        except ValueError:
            knobs[name] = value
    if isinstance(knobs.get("garbage_body"), str):
        knobs["garbage_body"] = knobs["garbage_body"].encode()
    try:
        fake = FakeUpstream(ns.host, ns.port, model=ns.model, api_key=ns.api_key, **knobs)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fake.start()
    print(f"READY {fake.base_url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
