"""Supply shortages end to end: real router processes, the openai SDK, fake upstreams that
misbehave on cue, and (for two replicas) a real Redis.

A backend known to be short is put last by the policy engine, so once a breaker is open
requests usually reach the full model with no hop recorded; the tests look at the admin
API and the upstreams' call counts for proof that Mini was left alone.

Waiting on a breaker's cooldown or another replica's refresh is waiting for time the
router itself measures, so those waits poll what a client or operator can observe
(responses, GET /admin/backends) until a bound, never sleep a fixed time.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.e2e.support import REDIS_URL
from tests.fake_upstream import FakeUpstream
from tests.router_process import ADMIN_KEY, CLIENT_KEY, RouterProcess, router_config

HELLO = [{"role": "user", "content": "say hello to the router please"}]
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this picture"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
]
LONG = [{"role": "user", "content": "word " * 3000}]
COOLDOWN_S = 2.0

BREAKER = {
    "consecutive_failures": 3,
    "failure_rate": 0.5,
    "min_requests": 4,
    "window_s": 10,
    "cooldown_s": COOLDOWN_S,
    "half_open_probes": 1,
}


def config(
    mini_url: str,
    full_url: str,
    *,
    mini_supply: dict[str, Any] | None = None,
    full_supply: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The e2e config with quick breakers, Mini's window small enough that a 3000-word
    prompt only fits the full model, and short first-byte timeouts."""
    built = router_config(mini_url, full_url, **overrides)
    mini, full = built["backends"]["mini"], built["backends"]["full"]
    mini["capabilities"]["context_window"] = 2048
    mini["capabilities"]["max_output_tokens"] = 512
    for backend, supply in ((mini, mini_supply), (full, full_supply)):
        backend["timeouts"] = {"connect_s": 1, "first_byte_s": 0.5, "read_s": 10}
        backend["supply"] = {"breaker": BREAKER, "probe": {"interval_s": 0.2}, **(supply or {})}
    return built


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], RouterProcess]]:
    started: list[RouterProcess] = []

    def run(cfg: dict[str, Any]) -> RouterProcess:
        started.append(RouterProcess(cfg, tmp_path).start())
        return started[-1]

    yield run
    for proc in started:
        proc.stop()


def sdk(router: RouterProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def ask(
    router: RouterProcess, messages: list[dict[str, Any]] = HELLO, **kwargs: Any
) -> tuple[str, str]:
    """(backend that served, x-router-fallbacks) of one successful completion."""
    raw = sdk(router).chat.completions.with_raw_response.create(
        model="auto", messages=messages, **kwargs
    )
    assert raw.parse().choices[0].message.content
    return raw.headers["x-router-backend"], raw.headers.get("x-router-fallbacks", "")


def backends(router: RouterProcess) -> dict[str, dict[str, Any]]:
    resp = httpx.get(
        f"{router.url}/admin/backends", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    resp.raise_for_status()
    result: dict[str, dict[str, Any]] = resp.json()["backends"]
    return result


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("status", [429, 503])
def test_a_flaky_mini_never_shows_and_its_breaker_opens_then_recovers(start, fakes, status):
    mini, full = fakes
    router = start(config(mini.base_url, full.base_url))
    mini.fail(status, fraction="1/2", retry_after=None)
    served = [ask(router) for _ in range(12)]
    assert {backend for backend, _ in served} <= {"mini", "full"}
    assert f"mini:http_{status}" in ",".join(hops for _, hops in served)
    assert backends(router)["mini"]["breaker"] == "open"
    assert mini.call_count <= 6, "once open, Mini is left alone"
    mini.succeed()
    wait_until(lambda: ask(router)[0] == "mini", COOLDOWN_S + 5, "Mini to serve again")
    assert backends(router)["mini"]["breaker"] == "closed"


def test_a_retry_after_keeps_requests_away_from_mini_for_that_long(start, fakes):
    mini, full = fakes
    router = start(config(mini.base_url, full.base_url))
    mini.fail(429, times=1, retry_after=30)
    assert ask(router) == ("full", "mini:http_429")
    assert ask(router)[0] == "full"
    assert mini.call_count == 1
    assert backends(router)["mini"]["retry_after_s"] > 25


def test_a_dead_mini_moves_traffic_to_full_and_full_only_requests_never_fail(start, fakes):
    _, full = fakes
    with FakeUpstream(model="mini-upstream") as doomed:
        router = start(config(doomed.base_url, full.base_url))
        assert ask(router) == ("mini", "")
    served = [ask(router) for _ in range(6)]
    assert all(backend == "full" for backend, _ in served)
    reasons = {hop for _, hops in served for hop in hops.split(",") if hop}
    assert reasons <= {"mini:refused", "mini:dropped", "mini:circuit_open"}
    assert backends(router)["mini"]["breaker"] == "open"
    wait_until(
        lambda: backends(router)["mini"]["last_probe"]["ok"] is False,
        2,
        "a failed probe of the dead Mini",
    )
    for messages in (IMAGE, LONG):
        assert ask(router, messages) == ("full", "")


def test_when_both_are_down_the_answer_is_a_fast_503_without_a_retry_storm(start, fakes):
    mini, full = fakes
    router = start(config(mini.base_url, full.base_url))
    mini.fail(503, retry_after=None)
    full.fail(503, retry_after=None)
    timings = []
    for _ in range(8):
        began = time.monotonic()
        with pytest.raises(openai.APIStatusError) as raised:
            sdk(router).chat.completions.create(model="auto", messages=HELLO)
        timings.append(time.monotonic() - began)
        error = raised.value
        assert error.status_code == 503
        assert isinstance(error.body, dict)
        assert error.body["code"] == "no_backend_available"
        assert "unavailable right now" in error.body["message"]
        assert error.response.headers["retry-after"]
    assert max(timings) < 1.0 and timings[-1] < 0.2
    calls = mini.call_count + full.call_count
    assert mini.call_count <= 3 and full.call_count <= 4, calls
    for _ in range(4):
        with pytest.raises(openai.APIStatusError):
            sdk(router).chat.completions.create(model="auto", messages=HELLO)
    assert mini.call_count + full.call_count == calls, "open circuits are not called"


@pytest.mark.parametrize("stream", [False, True])
def test_a_stall_before_the_first_byte_falls_back(start, fakes, stream):
    mini, full = fakes
    router = start(config(mini.base_url, full.base_url))
    mini.configure(stall_s=2)
    began = time.monotonic()
    raw = sdk(router).chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, stream=stream
    )
    text = (
        "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
        if stream
        else raw.parse().choices[0].message.content
    )
    assert text
    assert raw.headers["x-router-backend"] == "full"
    assert raw.headers["x-router-fallbacks"] == "mini:first_byte_timeout"
    assert time.monotonic() - began < 3
    assert full.last_request is not None and full.last_request.stream is stream


def _redis_available() -> bool:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture
def replicas(start, fakes) -> tuple[RouterProcess, RouterProcess]:
    """Two routers sharing one Redis (one key prefix); Mini capped at 2 in flight."""
    if not _redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")
    mini, full = fakes
    prefix = f"t{uuid.uuid4().hex[:10]}"
    capped = {"capacity": {"max_in_flight": 2, "overflow": "fallback"}}
    cfg = config(
        mini.base_url, full.base_url, mini_supply=capped, store_url=REDIS_URL, key_prefix=prefix
    )
    yield start(cfg), start(cfg)
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)


def test_two_replicas_share_mini_capacity(replicas, fakes):
    mini, _ = fakes
    mini.wait_idle(timeout=10)
    mini.clear()
    mini.configure(latency_ms=300)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        served = list(pool.map(lambda i: ask(replicas[i % 2]), range(16)))
    assert mini.max_in_flight <= 2
    assert sum(backend == "mini" for backend, _ in served) == mini.call_count >= 2
    assert all(hops in ("", "mini:capacity") for _, hops in served)
    assert any(backend == "full" for backend, _ in served)


def test_one_replicas_evidence_opens_the_breaker_for_both(replicas, fakes):
    one, two = replicas
    mini, _ = fakes
    mini.fail(503, retry_after=None)
    for _ in range(3):
        assert ask(one)[0] == "full"
    assert backends(one)["mini"]["breaker"] == "open"
    wait_until(
        lambda: backends(two)["mini"]["breaker"] == "open",
        2,
        "the second replica to see the open breaker",
    )
    calls = mini.call_count
    assert ask(two)[0] == "full"
    assert mini.call_count == calls


def test_a_provider_quota_is_spent_before_the_call(start, fakes):
    mini, full = fakes
    router = start(config(mini.base_url, full.base_url, full_supply={"quota": {"rpm": 2}}))
    for _ in range(2):
        assert ask(router, IMAGE) == ("full", "")
    with pytest.raises(openai.APIStatusError) as raised:
        sdk(router).chat.completions.create(model="auto", messages=IMAGE)
    assert raised.value.status_code == 503
    assert isinstance(raised.value.body, dict)
    assert "full has used up its provider quota for now" in raised.value.body["message"]
    assert full.call_count == 2, "the provider never saw the request over its quota"
    assert ask(router) == ("mini", ""), "what Mini can serve still is"
    assert backends(router)["full"]["quota_left"] == 0.0
