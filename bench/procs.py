"""Child processes for the benchmark: start in their own process group, always stop the group.

Every server the harness starts goes through `Proc`, so a crash or Ctrl-C anywhere still
ends up in `stop()` via the context manager, which kills the whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_pinning(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """CPU sets for (servers under test, load generator + fake upstream), or no pinning.

    On a 2-core box the proxy gets core 0 to itself and wrk + nginx share core 1, so the
    load generator does not steal the proxy's CPU. With fewer than 2 cores: no pinning.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def _preexec(cpus: set[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


class Proc:
    """A child process in its own session (process group), logging to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started_at = time.monotonic()
        try:
            self.popen = self._spawn(env, cwd, cpus)
        except BaseException:
            self._log.close()
            raise

    def _spawn(
        self, env: Mapping[str, str] | None, cwd: Path | None, cpus: set[int] | None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=(lambda: _preexec(cpus)) if cpus else None,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds. Idempotent."""
        try:
            if self.alive():
                _signal_group(self.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=grace)
            # Kill stragglers in the group (workers) even if the leader already exited.
            _signal_group(self.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        finally:
            self._log.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return kids


def _tree(pid: int) -> list[int]:
    seen: list[int] = []
    stack = [pid]
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.append(p)
            stack += _children(p)
    return seen


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (from /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, ValueError, IndexError):
            continue
    return total / ticks


def rss_kb(pid: int) -> dict[str, int | None]:
    """VmRSS of the process itself and summed over it and all its descendants, in KiB."""
    own = _status_kb(pid, "VmRSS")
    tree = _tree(pid)
    total = sum(_status_kb(p, "VmRSS") or 0 for p in tree)
    return {"main_kb": own, "tree_kb": total if own is not None else None, "processes": len(tree)}
