"""Split a byte stream into whole server-sent events, however the network chunked it."""

from __future__ import annotations

_SEPARATOR = b"\n\n"


class SSEFramer:
    """Feed raw chunks, get back complete events (each ending with a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
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
