"""uvicorn's httptools protocol with a bound on the request head.

httptools buffers a header until its line ends, so an endless header grows in memory for as
long as the client keeps sending. This protocol counts the bytes that arrive while a head is
incomplete and, past the limit, answers 431 in OpenAI's error shape and closes the
connection. The limit is uvicorn's own `h11_max_incomplete_event_size` setting (the same
bound for its h11 parser), which `router serve` sets from `server.max_header_bytes`.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from router.errors import PayloadTooLarge


def _too_large_response(limit: int) -> bytes:
    error = PayloadTooLarge(
        f"The request head exceeds {limit} bytes. Send fewer or smaller headers.",
        code="headers_too_large",
    )
    body = error.body()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


class BoundedHeadProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head larger than the configured limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit: int = self.config.h11_max_incomplete_event_size or 64 * 1024
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._head_limit:
            self.transport.write(_too_large_response(self._head_limit))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
