"""Run the README's quick start as its reader would: `router mini up` from the repository,
as a child process, then read what it printed.

Only the ports differ from the README (free ones: other routers may hold 8000 and 8080), and
FULL_BASE_URL points at a closed loopback port, so the keyless full backend's health probes
stay on this machine instead of going to a provider.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.router_process import REPO, free_port

ROUTER = Path(sys.executable).parent / "router"
"""The console script the README runs (.venv/bin/router), from the test's own venv."""
READY_TIMEOUT_S = 240.0
_EXPORT = re.compile(r"^\s+export (\w+)=(.+)$")
_OWN_ENV = re.compile(r"^(ROUTER_|MINI_|FULL_|OPENAI_)")
"""Variables a reader's shell would not have set: the quick start must work without them."""


def children(pid: int) -> list[int]:
    """Direct children of a process (Linux), to check that stopping leaves none behind."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def pid_alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(errors="replace")
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not _OWN_ENV.match(name)}
    return {**env, **extra}


class QuickStart:
    """`router mini up` in a child process; `start` returns once it printed the snippet."""

    def __init__(self, workdir: Path, *args: str, **env: str) -> None:
        self.mini_port = free_port()
        self.port = free_port()
        self.mini_log = workdir / f"mini-{self.mini_port}.log"
        self.stderr_path = workdir / f"mini-up-{self.port}.stderr"
        self.args = [
            str(ROUTER),
            "mini",
            "up",
            "--mini-port",
            str(self.mini_port),
            "--port",
            str(self.port),
            "--mini-log",
            str(self.mini_log),
            *args,
        ]
        self.env = clean_env(**{"FULL_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", **env})
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        with self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                self.args,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT_S) or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"`router mini up` printed no snippet:\n{self.transcript()}")
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "usage --group-by backend" in line:
                self._ready.set()
        self._ready.set()

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def transcript(self) -> str:
        log = self.mini_log.read_text(errors="replace") if self.mini_log.exists() else ""
        return f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}\nmini log:\n{log[-3000:]}"

    def exports(self) -> dict[str, str]:
        """The `export NAME=VALUE` lines it printed, unquoted as a shell would."""
        found = {}
        for line in self.lines:
            if match := _EXPORT.match(line):
                found[match.group(1)] = shlex.split(match.group(2))[0]
        return found

    def snippet(self) -> str:
        """The indented shell lines under "Ready", as a reader would paste them."""
        start = next(i for i, line in enumerate(self.lines) if line.startswith("Ready."))
        return "\n".join(line for line in self.lines[start:] if line.startswith("  "))

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        left = children(self.proc.pid) if self.proc and self.proc.poll() is None else []
        self.stop()
        for pid in left:  # never leave a llama.cpp server behind a failed test
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
