"""What the results were measured on: versions, CPU, git revision. Best effort, never fails."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from bench.configs import REPO

BENCH_DIR = REPO / "bench"


def _run(argv: list[str], cwd: Path | None = None, any_rc: bool = False) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (res.stdout + res.stderr).strip() if res.returncode == 0 or any_rc else ""


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return m.group(1) if m else ""


def _litellm_version() -> str:
    lib = BENCH_DIR / ".litellm-venv" / "lib"
    for d in lib.glob("python*/site-packages/litellm-*.dist-info"):
        return d.name.removeprefix("litellm-").removesuffix(".dist-info")
    return ""


def collect() -> dict[str, Any]:
    wrk = _run(["wrk", "-v"], any_rc=True).splitlines()
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "nginx": _run(["nginx", "-v"]),
        "wrk": wrk[0] if wrk else "",
        "litellm": _litellm_version(),
        "git_rev": _run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO),
    }
