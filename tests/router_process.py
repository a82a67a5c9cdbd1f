"""Run the real router as a separate process on a free port, as an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

REPO = Path(__file__).resolve().parent.parent
CLIENT_KEY = "sk-test-client-0123456789abcdef"
ADMIN_KEY = "sk-test-admin-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backend_config(
    base_url: str,
    *,
    model: str,
    context_window: int,
    max_output: int,
    inputs: list[str],
    outputs: list[str],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "provider": "openai",
        "base_url": base_url,
        "api_key": "upstream-secret-key",
        "model": model,
        "capabilities": {
            "context_window": context_window,
            "max_output_tokens": max_output,
            "input_modalities": inputs,
            "output_modalities": outputs,
            "image_generation": "image" in outputs,
            "realtime_audio": "audio" in outputs,
        },
        "timeouts": {"connect_s": 1, "first_byte_s": 5, "read_s": 10},
        **extra,
    }


def router_config(
    mini_url: str,
    full_url: str,
    *,
    store_url: str = "memory://",
    key_prefix: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A config like config/router.yaml, pointing both backends at test upstreams."""
    config: dict[str, Any] = {
        "server": {
            "host": "127.0.0.1",
            "port": 0,
            "request_timeout_s": 30,
            "graceful_timeout_s": 5,
            "log_level": "info",
        },
        "store": {"url": store_url, "key_prefix": key_prefix or f"t{uuid.uuid4().hex[:10]}"},
        "auth": {"admin_key": ADMIN_KEY, "bootstrap_key": CLIENT_KEY},
        "aliases": ["auto"],
        "policy": str(REPO / "policies" / "default.yaml"),
        "prices": str(REPO / "config" / "prices.yaml"),
        "backends": {
            "mini": backend_config(
                mini_url,
                model="mini-upstream",
                context_window=131072,
                max_output=8192,
                inputs=["text"],
                outputs=["text"],
                price_model="mini",
            ),
            "full": backend_config(
                full_url,
                model="full-upstream",
                context_window=262144,
                max_output=32768,
                inputs=["text", "image", "audio", "file"],
                outputs=["text", "audio", "image"],
                price_model="full",
            ),
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


class RouterProcess:
    """`python -m router serve` in a child process; stopped with SIGTERM like in production."""

    def __init__(
        self, config: Mapping[str, Any], workdir: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.config_path = workdir / f"router-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(config)))
        self.log_path = workdir / f"router-{self.port}.log"
        self._env = {**os.environ, **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self, timeout: float = 20.0) -> Self:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "router",
                "serve",
                "--config",
                str(self.config_path),
                "--port",
                str(self.port),
            ],
            cwd=REPO,
            env=self._env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"router exited early:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=0.5) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"router did not come up in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        assert self._proc is not None
        return self._proc.wait(timeout)

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
