"""What we measure: the fake upstream itself, the floor app, our router, LiteLLM's proxy.

Each proxy is started fresh per mode (non-stream / stream), because its backends point at
the upstream's JSON port or its SSE port. Start-up time is from spawning the process to the
first successful chat completion through it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.configs import (
    BENCH_TEAM,
    MINI_MODEL,
    REPO,
    ROUTER_CLIENT_KEY,
    ROUTER_TEAM_BUDGETS,
    litellm_config,
    router_config,
    write_yaml,
)
from bench.probe import Endpoint, chat_once, check_response, wait_ready
from bench.procs import Proc, free_port
from bench.upstream import UpstreamPorts

BENCH_DIR = REPO / "bench"
LITELLM_BIN = BENCH_DIR / ".litellm-venv" / "bin" / "litellm"
ROUTER_BIN = REPO / ".venv" / "bin" / "router"
REPO_PYTHON = REPO / ".venv" / "bin" / "python"

# Variables that could make a proxy leave loopback or pick up a database/provider key.
_SCRUB = {
    "DATABASE_URL",
    "DIRECT_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "REDIS_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
}


class TargetUnavailable(RuntimeError):
    """The target cannot be measured in this run; the message says why."""


@dataclass(slots=True)
class Running:
    endpoint: Endpoint
    proc: Proc | None = None
    startup_s: float | None = None
    cpu_pid: int | None = None  # whose CPU time to charge to the requests


@dataclass(frozen=True, slots=True)
class Settings:
    workdir: Path
    ports: UpstreamPorts
    cpus: set[int] | None
    upstream_pid: int
    run_id: str
    redis_url: str
    model: str  # model name sent to LiteLLM (and to the router unless router_model is set)
    router_model: str
    startup_deadline_s: float


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SCRUB}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


@contextmanager
def _serve(
    name: str,
    argv: list[str],
    s: Settings,
    stream: bool,
    ep: Endpoint,
    env: dict[str, str],
    cwd: Path,
) -> Iterator[Running]:
    """Spawn a proxy, wait for its first successful chat completion, stop it on exit."""
    try:
        proc = Proc(name, argv, s.workdir / f"{name}.log", env=env, cwd=cwd, cpus=s.cpus)
    except OSError as e:
        raise TargetUnavailable(f"{name}: cannot start {argv[0]}: {e}") from e
    with proc:
        startup, err = wait_ready(ep, stream, s.startup_deadline_s, proc.alive, proc.started_at)
        if startup is None:
            raise TargetUnavailable(
                f"{name}: {err}\n--- log tail ({proc.log_path}) ---\n{proc.log_tail()}"
            )
        yield Running(endpoint=ep, proc=proc, startup_s=round(startup, 3), cpu_pid=proc.pid)


@contextmanager
def upstream(s: Settings, stream: bool) -> Iterator[Running]:
    url = s.ports.base_url(stream) + "/chat/completions"
    ep = Endpoint(url=url, api_key=secrets.token_hex(8), model=MINI_MODEL)
    yield Running(endpoint=ep, cpu_pid=s.upstream_pid)


def floor_key_prefix(s: Settings, stream: bool) -> str:
    """Under the run's `bench-<run>-` prefix, so the end-of-run cleanup deletes it too."""
    return f"bench-{s.run_id}-floor-{'stream' if stream else 'json'}"


@contextmanager
def floor(s: Settings, stream: bool) -> Iterator[Running]:
    """bench/floor_app.py: the bare pass-through our goals are stated against."""
    mode = "stream" if stream else "json"
    port = free_port()
    argv = [str(REPO_PYTHON), "-m", "bench.floor_app", "--port", str(port)]
    argv += ["--upstream", s.ports.base_url(stream), "--redis-url", s.redis_url]
    argv += ["--key-prefix", floor_key_prefix(s, stream)]
    ep = Endpoint(f"http://127.0.0.1:{port}/v1/chat/completions", secrets.token_hex(8), s.model)
    with _serve(f"floor-{mode}", argv, s, stream, ep, clean_env(), REPO) as running:
        yield running


def litellm_unavailable() -> str | None:
    if not LITELLM_BIN.exists():
        return (
            f"{LITELLM_BIN} not found; create it with bench/run.sh (or: python -m venv "
            "bench/.litellm-venv && bench/.litellm-venv/bin/pip install -r "
            "bench/litellm-requirements.txt)"
        )
    return None


@contextmanager
def litellm(s: Settings, stream: bool) -> Iterator[Running]:
    reason = litellm_unavailable()
    if reason:
        raise TargetUnavailable(reason)
    mode = "stream" if stream else "json"
    port = free_port()
    master_key = "sk-bench-" + secrets.token_hex(12)
    cfg = write_yaml(
        s.workdir / f"litellm-{mode}.yaml",
        litellm_config(upstream_base_url=s.ports.base_url(stream), master_key=master_key),
    )
    argv = [str(LITELLM_BIN), "--config", str(cfg), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--num_workers", "1"]
    # Local cost map: no (failing) fetch from GitHub at start-up, which would add retries.
    env = clean_env(LITELLM_LOCAL_MODEL_COST_MAP="True")
    ep = Endpoint(f"http://127.0.0.1:{port}/v1/chat/completions", master_key, s.model)
    with _serve(f"litellm-{mode}", argv, s, stream, ep, env, s.workdir) as running:
        yield running


def router_command() -> list[str]:
    """`.venv/bin/router`, or `python -m router` when the package is not installed yet."""
    if ROUTER_BIN.exists():
        return [str(ROUTER_BIN)]
    return [str(REPO_PYTHON), "-m", "router"]


def router_unavailable() -> str | None:
    cmd = [*router_command(), "serve", "--help"]
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, env=clean_env(), cwd=REPO
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`{' '.join(cmd)}` failed: {e}"
    if res.returncode != 0:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        return f"`{' '.join(cmd)}` exited {res.returncode}: {tail}"
    return None


def router_key_prefix(s: Settings, stream: bool) -> str:
    return f"bench-{s.run_id}-{'stream' if stream else 'json'}"


@contextmanager
def router(s: Settings, stream: bool) -> Iterator[Running]:
    reason = router_unavailable()
    if reason:
        raise TargetUnavailable(reason)
    mode = "stream" if stream else "json"
    port = free_port()
    client_key = "sk-bench-" + secrets.token_hex(12)
    admin_key = "sk-admin-" + secrets.token_hex(12)
    cfg = write_yaml(
        s.workdir / f"router-{mode}.yaml",
        router_config(
            upstream_base_url=s.ports.base_url(stream),
            port=port,
            redis_url=s.redis_url,
            key_prefix=router_key_prefix(s, stream),
            admin_key=admin_key,
            client_key=client_key,
        ),
    )
    argv = [*router_command(), "serve", "--config", str(cfg), "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    ep = Endpoint(f"http://127.0.0.1:{port}/v1/chat/completions", client_key, s.router_model)
    with _serve(f"router-{mode}", argv, s, stream, ep, clean_env(), REPO) as running:
        minted = replace(ep, api_key=admit_client(f"http://127.0.0.1:{port}", admin_key))
        check_once(minted, stream)
        yield replace(running, endpoint=minted)


def check_once(ep: Endpoint, stream: bool) -> None:
    """One chat with the minted key before the load, so a refusal fails loudly, not as errors."""
    try:
        problem = check_response(*chat_once(ep, stream), stream)
    except OSError as e:
        problem = f"{type(e).__name__}: {e}"
    if problem is not None:
        raise RuntimeError(f"router refused the minted key: {problem}")


def admin_call(base_url: str, admin_key: str, method: str, path: str, body: Any) -> Any:
    """One admin API call; RuntimeError (with the router's answer) unless it is a 2xx."""
    req = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {path}: HTTP {e.code}: {e.read()[:300]!r}") from e
    except OSError as e:
        raise RuntimeError(f"{method} {path}: {e}") from e


def admit_client(base_url: str, admin_key: str) -> str:
    """Mint the load's client key and set its team budget, as an operator would.

    The bootstrap key has no budgets and no limits, so measuring with it would skip the
    admission work every production request pays for.
    """
    created = admin_call(base_url, admin_key, "POST", "/admin/keys", ROUTER_CLIENT_KEY)
    path = f"/admin/teams/{BENCH_TEAM}/budgets"
    admin_call(base_url, admin_key, "PUT", path, ROUTER_TEAM_BUDGETS)
    key = created.get("key") if isinstance(created, dict) else None
    if not isinstance(key, str) or not key:
        raise RuntimeError(f"POST /admin/keys answered without a key: {str(created)[:300]}")
    return key
