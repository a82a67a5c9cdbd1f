"""Zero-cost fake OpenAI upstream: nginx answering from memory with canned bodies.

Two loopback ports served by one nginx process:
  * JSON port:   POST /v1/chat/completions -> a chat.completion with `usage`
  * stream port: POST /v1/chat/completions -> an SSE stream (role chunk, content chunks,
                 finish chunk, usage chunk, `data: [DONE]`), sent as one response body
Both ports also answer GET /v1/models. The request body is never read for routing, so
the same request works against either port; the stream benchmark points the proxies'
backends at the stream port.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.procs import Proc, free_port

CREATED = 1_700_000_000
WORDS = ["Hello", " from", " the", " fake", " upstream", "."]
USAGE = {"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS)}


def completion_body(model: str = "mini-model") -> str:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(WORDS), "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    return json.dumps(body, separators=(",", ":"))


def _chunk(model: str, choices: list[dict[str, Any]], usage: dict[str, int] | None) -> str:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = usage
    return "data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n"


def stream_body(model: str = "mini-model") -> str:
    def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

    parts = [_chunk(model, delta({"role": "assistant", "content": ""}), None)]
    parts += [_chunk(model, delta({"content": w}), None) for w in WORDS]
    parts.append(_chunk(model, delta({}, "stop"), None))
    parts.append(_chunk(model, [], USAGE))
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def models_body() -> str:
    data = [
        {"id": m, "object": "model", "created": CREATED, "owned_by": "bench"}
        for m in ("mini-model", "full-model")
    ]
    return json.dumps({"object": "list", "data": data}, separators=(",", ":"))


def _nginx_str(s: str) -> str:
    """Quote a string for nginx.conf (single quotes; nginx unescapes \\n, \\', \\\\)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _server(port: int, chat_type: str, chat_body: str) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        keepalive_requests 1000000;
        keepalive_timeout 120s;
        location = /v1/chat/completions {{
            default_type {chat_type};
            add_header Cache-Control no-cache;
            return 200 {_nginx_str(chat_body)};
        }}
        location = /v1/models {{
            default_type application/json;
            return 200 {_nginx_str(models_body())};
        }}
        location / {{
            default_type application/json;
            return 404 '{{"error":{{"message":"not found","type":"invalid_request_error"}}}}';
        }}
    }}"""


def nginx_conf(workdir: Path, json_port: int, stream_port: int, workers: int = 1) -> str:
    return f"""
worker_processes {workers};
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    client_max_body_size 1m;
    client_body_buffer_size 64k;
    {_server(json_port, "application/json", completion_body())}
    {_server(stream_port, "text/event-stream", stream_body())}
}}
"""


@dataclass(frozen=True, slots=True)
class UpstreamPorts:
    json_port: int
    stream_port: int

    def base_url(self, stream: bool) -> str:
        return f"http://127.0.0.1:{self.stream_port if stream else self.json_port}/v1"


class NginxUpstream:
    """nginx in the foreground (`daemon off`) as a child process; config in `workdir`."""

    def __init__(self, workdir: Path, cpus: set[int] | None = None) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.workdir = workdir
        self.ports = UpstreamPorts(free_port(), free_port())
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_conf(workdir, self.ports.json_port, self.ports.stream_port))
        self._argv = [binary, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"]
        self._cpus = cpus
        self.proc: Proc | None = None

    def __enter__(self) -> NginxUpstream:
        self.proc = Proc("nginx", self._argv, self.workdir / "nginx.out", cpus=self._cpus)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.stop()
