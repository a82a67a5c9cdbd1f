"""Every bound on what a client sends answers with a clear 4xx in OpenAI's shape, before any
upstream is called: body size (declared or streamed), message count, JSON nesting, and the
size of the request head."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.support import error_shape_ok, log_problems
from tests.fuzz.conftest import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_MESSAGES
from tests.router_process import CLIENT_KEY, RouterProcess

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
ENDLESS_HEADER_BYTES = 32 * 1024 * 1024


def chat(
    router: RouterProcess, content: bytes | Iterator[bytes], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{router.base_url}/chat/completions",
        content=content,
        timeout=30,
        headers={**AUTH, "content-type": "application/json", **(headers or {})},
    )


def assert_refused(
    resp: httpx.Response, status: int, code: str, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    assert resp.status_code == status, resp.text
    assert error_shape_ok(resp.json()) and resp.json()["error"]["code"] == code
    assert fakes[0].call_count == fakes[1].call_count == 0


def body(messages: list[object]) -> bytes:
    return orjson.dumps({"model": "auto", "messages": messages})


def test_a_body_over_the_limit_is_413(bounded, fakes):
    huge = body([{"role": "user", "content": "x" * MAX_BODY_BYTES}])
    assert_refused(chat(bounded, huge), 413, "request_too_large", fakes)


def test_a_chunked_body_over_the_limit_is_413(bounded, fakes):
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(64):
            yield b"x" * (64 * 1024)
        yield b'"}]}'

    resp = chat(bounded, chunks())
    assert_refused(resp, 413, "request_too_large", fakes)


def test_a_body_just_under_the_limit_is_served(bounded, fakes):
    filler = "word " * ((MAX_BODY_BYTES - 200) // 5)
    resp = chat(bounded, body([{"role": "user", "content": filler}]))
    assert resp.status_code == 200, resp.text


def test_too_many_messages_is_a_clear_4xx(bounded, fakes):
    many = [{"role": "user", "content": "hi"}] * (MAX_MESSAGES + 1)
    resp = chat(bounded, body(many))
    assert_refused(resp, 400, "too_many_messages", fakes)
    assert str(MAX_MESSAGES) in resp.json()["error"]["message"]


def test_json_nested_past_the_limit_is_413(bounded, fakes):
    nested: object = "deep"
    for _ in range(MAX_JSON_DEPTH + 1):
        nested = {"x": nested}
    resp = chat(
        bounded,
        orjson.dumps(
            {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "metadata": nested}
        ),
    )
    assert_refused(resp, 413, "json_too_deep", fakes)


@pytest.mark.parametrize("depth", [10_000, 1_000_000])
def test_pathologically_deep_json_is_a_400_not_a_crash(bounded, fakes, depth):
    resp = chat(bounded, b'{"model": "auto", "messages": ' + b"[" * depth + b"]" * depth + b"}")
    assert resp.status_code in (400, 413), resp.text
    assert error_shape_ok(resp.json())
    assert fakes[0].call_count == 0


def test_a_client_that_hangs_up_mid_body_leaves_no_traceback(bounded, fakes):
    with socket.create_connection(("127.0.0.1", bounded.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + CLIENT_KEY.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            b'{"model": "auto", "messa'
        )
    deadline = time.monotonic() + 5
    while '"client_disconnected"' not in bounded.logs() and time.monotonic() < deadline:
        time.sleep(0.02)  # bounded polling of the router's log
    assert '"client_disconnected"' in bounded.logs()
    assert log_problems(bounded) == []


def _raw(router: RouterProcess, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", router.port), timeout=20) as sock:
        with contextlib.suppress(OSError):  # refused midway: read what was answered
            sock.sendall(head)
        try:
            return sock.recv(65536)
        except OSError:
            return b""


def test_many_headers_are_answered_not_crashed_on(bounded):
    head = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(2_000))
        + b"\r\n"
    )
    assert _raw(bounded, head).startswith(b"HTTP/1.1 ")


def test_a_huge_header_is_refused_with_431(bounded):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * 1024 * 1024) + b"\r\n\r\n"
    answer = _raw(bounded, head)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large", status_line
    error = orjson.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "headers_too_large" and error["type"] == "invalid_request_error"


def test_an_endless_header_is_cut_off_early(bounded):
    """Send header bytes until the server stops us; it should after about
    server.max_header_bytes, not after everything a client cares to send."""
    sent = 0
    chunk = b"a" * (64 * 1024)
    with socket.create_connection(("127.0.0.1", bounded.port), timeout=3) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        with contextlib.suppress(OSError):  # reset, broken pipe or a full window: stopped
            while sent < ENDLESS_HEADER_BYTES:
                sock.sendall(chunk)
                sent += len(chunk)
    # What the kernel's socket buffers absorb on loopback: 0.6-1 MiB here.
    assert sent < 4 * 1024 * 1024, f"the server let the client send {sent} header bytes"
