"""`python -m bench`: fake upstream, the floor app, our router, LiteLLM's proxy, in one run.

See bench/README.md. Everything is loopback; every child process is stopped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import meta, targets
from bench.configs import ROUTER_CLIENT_KEY, ROUTER_TEAM_BUDGETS
from bench.loadgen import Point, run_wrk
from bench.probe import wait_ready
from bench.procs import cpu_pinning, cpu_seconds, rss_kb
from bench.report import comparisons, proxy_table, table, write_results
from bench.targets import Running, Settings, TargetUnavailable
from bench.upstream import NginxUpstream

TargetFn = Callable[[Settings, bool], AbstractContextManager[Running]]
TARGETS: dict[str, TargetFn] = {
    "upstream": targets.upstream,
    "floor": targets.floor,
    "router": targets.router,
    "litellm": targets.litellm,
}
REDIS_TARGETS = {"floor", "router"}  # their keys live under the run's `bench-<run>-` prefix
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 s per point instead of 10 s")
    ap.add_argument("--duration", type=float, help="seconds per point (overrides --quick)")
    ap.add_argument(
        "--targets",
        type=_csv(str),
        default=list(TARGETS),
        help="comma list of upstream,floor,router,litellm (default: all)",
    )
    ap.add_argument(
        "--concurrency",
        type=_csv(int),
        default=[1, 8, 32, 128],
        help="comma list of connection counts (default: 1,8,32,128)",
    )
    ap.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--stream: only streaming; --no-stream: only JSON (default: both)",
    )
    ap.add_argument("--model", default="mini", help="model name sent to the proxies")
    ap.add_argument(
        "--router-model",
        help="model sent to our router (default: --model; `auto` exercises the routing policy)",
    )
    ap.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin proxy to CPU 0, wrk + nginx to the rest (default: on)",
    )
    ap.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="router store; keys go under a per-run prefix and are deleted",
    )
    ap.add_argument(
        "--startup-deadline",
        type=float,
        default=180.0,
        help="seconds a proxy may take to serve its first request",
    )
    ap.add_argument("--warmup", type=float, help="seconds of unrecorded load per target/mode")
    ap.add_argument("--out", type=Path, help="results JSON path (default bench/results/<ts>.json)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    args = ap.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown targets {unknown}; choose from {list(TARGETS)}")
    if not args.concurrency or min(args.concurrency) < 1:
        ap.error("--concurrency needs positive integers")
    if args.duration is None:
        args.duration = 3.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def _tempdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        yield path
    finally:
        if keep:
            _log(f"kept configs and logs in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def measure_target(
    name: str, s: Settings, stream: bool, args: argparse.Namespace, load_cpus: set[int] | None
) -> tuple[list[Point], dict[str, Any]]:
    """Start one target for one mode, load it at every concurrency, stop it."""
    mode = "stream" if stream else "json"
    points: list[Point] = []
    info: dict[str, Any] = {}
    with TARGETS[name](s, stream) as running:
        if running.proc is not None:
            info["startup_s"] = running.startup_s
            info["rss_idle"] = rss_kb(running.proc.pid)
            _log(f"  {name}/{mode}: first request served {running.startup_s:.2f}s after spawn")
        warm_conns = min(8, max(args.concurrency))
        run_wrk(name, running.endpoint, stream, warm_conns, args.warmup, s.workdir, load_cpus)
        for conns in args.concurrency:
            cpu0 = cpu_seconds(running.cpu_pid) if running.cpu_pid else None
            p = run_wrk(name, running.endpoint, stream, conns, args.duration, s.workdir, load_cpus)
            if cpu0 is not None and running.cpu_pid and p.requests:
                used = cpu_seconds(running.cpu_pid) - cpu0
                p = replace(p, server_cpu_ms_per_req=round(used * 1000 / p.requests, 4))
            _log(
                f"  {name}/{mode} c={conns:<4} {p.rps:>9.1f} req/s  p50 {p.p50_ms:.2f} ms  "
                f"p99 {p.p99_ms:.2f} ms  errors {p.error_count}"
            )
            points.append(p)
        if running.proc is not None:
            if not running.proc.alive():
                info["exited_during_load"] = True
            info["rss_after_load"] = rss_kb(running.proc.pid)
    return points, info


def drop_redis_keys(redis_url: str, prefixes: list[str]) -> None:
    """Delete the run's keys (router and floor store) so runs leave Redis as they found it."""
    try:
        import redis  # the main .venv has it (router dependency)
    except ImportError:
        return
    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        for prefix in prefixes:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
    except redis.RedisError as e:
        _log(f"could not clean bench keys in redis: {e}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} not found: apt-get install -y nginx wrk")
    env = meta.collect()  # before the load, so loadavg shows what else the box was doing
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    modes = [False, True] if args.stream is None else [bool(args.stream)]
    proxy_cpus, load_cpus = cpu_pinning(args.pin)
    points: list[Point] = []
    proxies: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    errors: list[str] = []

    with _tempdir(args.keep_tmp) as workdir, NginxUpstream(workdir, cpus=load_cpus) as up:
        try:
            assert up.proc is not None
            s = Settings(
                workdir=workdir,
                upstream_pid=up.proc.pid,
                ports=up.ports,
                cpus=proxy_cpus,
                run_id=run_id,
                redis_url=args.redis_url,
                model=args.model,
                router_model=args.router_model or args.model,
                startup_deadline_s=args.startup_deadline,
            )
            for stream in modes:
                with targets.upstream(s, stream) as r:
                    ok, err = wait_ready(r.endpoint, stream, 10, up.proc.alive, time.monotonic())
                    if ok is None:
                        raise SystemExit(
                            f"fake upstream not answering: {err}\n{up.proc.log_tail()}"
                        )
            _log(f"fake upstream: nginx json :{up.ports.json_port}, sse :{up.ports.stream_port}")
            for stream in modes:
                mode = "stream" if stream else "json"
                _log(f"== mode {mode}")
                for name in args.targets:
                    if name in skipped:
                        continue
                    try:
                        pts, info = measure_target(name, s, stream, args, load_cpus)
                    except TargetUnavailable as e:
                        skipped[name] = str(e)
                        _log(f"  SKIP {name}: {e}")
                        continue
                    except RuntimeError as e:
                        errors.append(f"{name}/{mode}: {e}")
                        _log(f"  ERROR {name}/{mode}: {e}")
                        continue
                    points += pts
                    if info:
                        proxies.setdefault(name, {})[mode] = info
        finally:
            if REDIS_TARGETS & set(args.targets):
                drop_redis_keys(args.redis_url, [f"bench-{run_id}-"])

    return {
        "run_id": run_id,
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "args": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "targets": args.targets,
            "concurrency": args.concurrency,
            "modes": ["stream" if m else "json" for m in modes],
            "model": args.model,
            "router_model": args.router_model or args.model,
            "router_client_key": ROUTER_CLIENT_KEY,
            "router_team_budgets": ROUTER_TEAM_BUDGETS,
            "pin": args.pin,
            "proxy_cpus": sorted(proxy_cpus or []),
            "load_cpus": sorted(load_cpus or []),
        },
        "env": env,
        "points": [p.to_json() for p in points],
        "upstream_cost": [
            {
                "mode": "stream" if p.stream else "json",
                "connections": p.connections,
                "rps": p.rps,
                "p50_ms": p.p50_ms,
                "p99_ms": p.p99_ms,
                "cpu_ms_per_req": p.server_cpu_ms_per_req,
            }
            for p in points
            if p.target == "upstream"
        ],
        "comparisons": comparisons(points),
        "proxies": proxies,
        "skipped": skipped,
        "errors": errors,
    }


def _brief(text: str) -> str:
    lines = text.strip().splitlines() or [""]
    return lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1].strip()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        doc = run(args)
    except KeyboardInterrupt as e:
        _log(f"interrupted ({e or 'Ctrl-C'}); all servers stopped")
        return 130
    points = [Point(**{k: v for k, v in p.items() if k != "error_count"}) for p in doc["points"]]
    print()
    print(table(points))
    if doc["proxies"]:
        print()
        print(proxy_table(doc["proxies"]))
    for name, why in doc["skipped"].items():
        print(f"\nskipped {name}: {_brief(why)}")
    for err in doc["errors"]:
        print(f"\nerror: {_brief(err)}")
    out = args.out or RESULTS_DIR / f"{doc['run_id']}.json"
    print(f"\nresults: {write_results(out, doc)}")
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
