"""llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`) as a child process.

The child runs in its own session so a Ctrl-C in the terminal reaches only us and we
forward it exactly once; on Linux it is also told to stop if we die without cleaning up.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from router.mini._errors import INSTALL_HINT, MiniError, MiniExited, MiniNotInstalled
from router.mini._model import DEFAULT_ALIAS, DEFAULT_CHAT_FORMAT

SERVER_MODULES = (
    "llama_cpp",
    "fastapi",
    "uvicorn",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
"""What `python -m llama_cpp.server` imports: llama-cpp-python and its `server` extra."""

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.1
STOP_GRACE_S = 3.0
"""How long a stopped server may take to exit before it is killed. An idle one exits in
about a second; a busy one waits for its running generation, which nothing interrupts
(minutes for a long answer), and holds nothing worth waiting for."""


def require_server() -> None:
    """Raise MiniNotInstalled unless llama.cpp's server can be imported (without importing
    it: loading llama.cpp's shared library is slow and the child does it anyway)."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MiniNotInstalled(
            f"The local Mini needs llama-cpp-python with its server extra (missing: "
            f"{', '.join(missing)}). Install it with {INSTALL_HINT}; it compiles llama.cpp, "
            "which takes a few minutes."
        )


@dataclass(frozen=True, slots=True)
class MiniSettings:
    """How to run llama.cpp's server; every field maps to one of its command-line flags."""

    model_path: Path
    host: str = "127.0.0.1"
    port: int = 8000
    alias: str = DEFAULT_ALIAS
    chat_format: str | None = DEFAULT_CHAT_FORMAT
    ctx: int = 8192
    threads: int | None = None
    verbose: bool = False

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def command(self, python: str = sys.executable) -> list[str]:
        """The server's command line.

        `interrupt_requests` is off because, left on, a second request ends the running
        stream early: `[DONE]` with no finish_reason, then the connection is dropped.
        Ping comments are off because during a long prefill they arrive every 15 s before
        any data, so a proxy would take one for the first byte of the answer.
        """
        command = [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.alias,
            "--n_ctx",
            str(self.ctx),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--interrupt_requests",
            "false",
            "--disable_ping_events",
            "true",
            "--verbose",
            "true" if self.verbose else "false",
        ]
        if self.chat_format is not None:
            command += ["--chat_format", self.chat_format]
        if self.threads is not None:
            command += ["--n_threads", str(self.threads)]
        return command


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux, get SIGTERM when the parent dies."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not in use
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class LocalMini:
    """One llama.cpp server process: start it, wait until it serves, stop it.

    Its output goes to `output`, else to the file `log_path` (written afresh), else to our
    stderr, so our stdout carries only what we print.
    """

    def __init__(
        self,
        settings: MiniSettings,
        *,
        output: IO[bytes] | None = None,
        log_path: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.settings = settings
        self._output = output
        self._log_path = log_path
        self._python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._own_log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 120.0) -> Self:
        """Spawn the server and return once GET /v1/models lists our alias."""
        require_server()
        settings = self.settings
        if _port_in_use(settings.host, settings.port):
            raise MiniError(
                f"Port {settings.port} on {settings.host} is already in use: stop "
                "what listens there, or pick another port with --port."
            )
        output = self._output
        if output is None and self._log_path is not None:
            output = self._own_log = self._log_path.open("wb")
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and flags
            settings.command(self._python),
            stdin=subprocess.DEVNULL,
            stdout=output if output is not None else sys.stderr,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # prctl only; safe before exec
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise MiniExited(
                    f"llama.cpp's server exited with status {code} before it "
                    f"served.{self._log_hint()}",
                    code,
                )
            if self._serves_alias():
                return
            time.sleep(_POLL_S)
        raise MiniError(
            f"llama.cpp's server did not answer GET {self.base_url}/models within "
            f"{timeout_s:.0f}s.{self._log_hint()}"
        )

    def _serves_alias(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=1) as resp:  # noqa: S310
                listing = json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return False
        models = listing.get("data") if isinstance(listing, dict) else None
        return isinstance(models, list) and any(
            isinstance(model, dict) and model.get("id") == self.settings.alias for model in models
        )

    def _log_hint(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        tail = self._log_path.read_text(errors="replace").splitlines()[-20:]
        return "\nLast lines of its log:\n" + "\n".join(tail)

    def send_signal(self, signum: int) -> None:
        if self.running:
            assert self._proc is not None
            self._proc.send_signal(signum)

    def wait(self, timeout_s: float | None = None) -> int:
        assert self._proc is not None
        return self._proc.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL, as if the machine took the process away; for tests of a dying Mini."""
        if self.running:
            assert self._proc is not None
            self._proc.kill()
            self._proc.wait()

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = STOP_GRACE_S) -> int | None:
        """Forward `signum`, wait for a clean exit, and kill the process if it lingers."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signum)
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._own_log is not None:
            self._own_log.close()
            self._own_log = None
        return self._proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
