"""Run wrk at one concurrency against one endpoint and parse the JSON its `done()` prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.probe import Endpoint

LUA = Path(__file__).with_name("wrk_post.lua")
MARKER = "BENCH_JSON "


@dataclass(frozen=True, slots=True)
class Point:
    """One measured point: a target, a mode, a concurrency."""

    target: str
    stream: bool
    connections: int
    threads: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]  # wrk's socket errors plus `status` (non-2xx/3xx responses)
    # CPU time the server under test (its whole process tree) spent per request.
    server_cpu_ms_per_req: float | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["error_count"] = self.error_count
        return d


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    target: str,
    ep: Endpoint,
    stream: bool,
    connections: int,
    duration_s: float,
    workdir: Path,
    cpus: set[int] | None = None,
    timeout_s: float = 30.0,
) -> Point:
    """One wrk run; raises RuntimeError if wrk fails or prints no summary."""
    threads = max(1, min(2, connections))
    body_file = workdir / f"body-{'stream' if stream else 'json'}-{ep.model}.json"
    body_file.write_bytes(ep.body(stream))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={round(timeout_s)}s",
        "-s",
        str(LUA),
        ep.url,
    ]
    env = dict(os.environ, BENCH_BODY_FILE=str(body_file), BENCH_API_KEY=ep.api_key)
    try:
        proc = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=duration_s + timeout_s + 30,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"wrk did not finish in {e.timeout:.0f}s") from e
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (rc={proc.returncode}): {proc.stderr or proc.stdout}")
    data = json.loads(line[len(MARKER) :])
    lat = data["latency_us"]
    pct = lat["percentiles"]
    secs = data["duration_us"] / 1e6
    return Point(
        target=target,
        stream=stream,
        connections=connections,
        threads=threads,
        duration_s=round(secs, 3),
        requests=int(data["requests"]),
        rps=round(data["requests"] / secs, 1) if secs > 0 else 0.0,
        p50_ms=pct["50"] / 1000,
        p90_ms=pct["90"] / 1000,
        p99_ms=pct["99"] / 1000,
        mean_ms=round(lat["mean"] / 1000, 3),
        max_ms=lat["max"] / 1000,
        errors={k: int(v) for k, v in data["errors"].items()},
    )
