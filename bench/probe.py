"""One real chat request over loopback: readiness polling and a functional check.

A target only counts as ready once it has served a *successful chat completion* (not
just a health endpoint), and the body must look like what the mode promises: a JSON
chat.completion, or an SSE stream ending in `data: [DONE]`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to send the benchmark request."""

    url: str  # full URL of POST /v1/chat/completions
    api_key: str
    model: str

    def body(self, stream: bool) -> bytes:
        req: dict[str, object] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            "max_tokens": 16,
        }
        if stream:
            req["stream"] = True
        return json.dumps(req, separators=(",", ":")).encode()


def chat_once(ep: Endpoint, stream: bool, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(
        ep.url,
        data=ep.body(stream),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {ep.api_key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def check_response(status: int, body: bytes, stream: bool) -> str | None:
    """None if the response is a valid success for the mode, else what is wrong."""
    if status != 200:
        return f"HTTP {status}: {body[:300]!r}"
    text = body.decode(errors="replace")
    if stream:
        if "data: [DONE]" not in text:
            return f"stream without data: [DONE]: {text[:300]!r}"
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return f"not JSON: {text[:300]!r}"
    if not isinstance(doc, dict) or not doc.get("choices"):
        return f"no choices: {text[:300]!r}"
    return None


def wait_ready(
    ep: Endpoint,
    stream: bool,
    deadline_s: float,
    alive: Callable[[], bool],
    started_at: float,
) -> tuple[float | None, str]:
    """Poll until a chat request succeeds. Returns (seconds since `started_at`, last error)."""
    last = "no attempt"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not alive():
            return None, f"process exited; last error: {last}"
        try:
            status, body = chat_once(ep, stream, timeout=5.0)
            problem = check_response(status, body, stream)
            if problem is None:
                return time.monotonic() - started_at, ""
            last = problem
        except (OSError, urllib.error.URLError) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.05)
    return None, f"not ready after {deadline_s:.0f}s; last error: {last}"
