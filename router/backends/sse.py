"""Split a byte stream into whole server-sent events, however the network chunked it.

Lines may end in LF, CRLF or a lone CR (the SSE spec allows all three); events come out with
LF line ends only. A CRLF that a read splits in two (`\\r` at the end of one chunk, `\\n` at
the start of the next) is one line end, not two.
"""

from __future__ import annotations

_SEPARATOR = b"\n\n"


class SSEFramer:
    """Feed raw chunks, get back complete events (each ending with a blank line)."""

    __slots__ = ("_after_cr", "_buffer")

    def __init__(self) -> None:
        self._buffer = b""
        self._after_cr = False
        """The last chunk ended in CR: an LF that opens the next one belongs to it."""

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._after_cr and chunk:
            self._after_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._after_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        data = self._buffer + chunk if self._buffer else chunk
        events: list[bytes] = []
        start = 0
        while (end := data.find(_SEPARATOR, start)) != -1:
            end += len(_SEPARATOR)
            if data[start:end].strip():
                events.append(data[start:end])
            start = end
        self._buffer = data[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event that never finished: a cut stream leaves them behind."""
        return self._buffer
