"""Structured JSON logs: one object per line, request fields passed as `extra`.

Secrets never reach here: callers log key ids, never keys, and never prompts unless the
operator turned on `server.log_prompts`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from collections.abc import Mapping

import orjson

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per request is on the hot path: skip the record fields no line prints (the
    # logging HOWTO's "Optimization" switches).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class _Lines:
    """Lines written in one turn of the event loop leave stderr in one write."""

    def __init__(self) -> None:
        self._pending: list[str] = []
        atexit.register(self.flush)

    def add(self, line: str) -> None:
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a CLI): write now
                sys.stderr.write(line)
                return
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            text, self._pending = "".join(self._pending), []
            sys.stderr.write(text)


_lines = _Lines()


def info_line(logger: logging.Logger, msg: str, fields: Mapping[str, object]) -> None:
    """One info line in JSONFormatter's shape, written to stderr, where `configure_logging`
    sends every record: the per-request line is on the hot path, and logging's record and
    handler machinery cost about 20 µs of it against about 5 µs here. Lines are whole, and
    the lines of one event-loop turn share one write."""
    if logger.isEnabledFor(logging.INFO):
        line = {
            "ts": round(time.time(), 3),
            "level": "info",
            "logger": logger.name,
            "msg": msg,
            **fields,
        }
        _lines.add(orjson.dumps(line, default=str).decode() + "\n")
