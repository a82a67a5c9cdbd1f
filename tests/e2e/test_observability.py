"""What operators see: one JSON log line per request (no prompts unless asked for, loudly),
and Prometheus metrics with bounded labels."""

from __future__ import annotations

import json

import httpx
import openai

from tests.e2e.support import wait_until
from tests.router_process import CLIENT_KEY, RouterProcess, router_config

SECRET_PROMPT = "the launch codes are swordfish"


def _served_lines(router: RouterProcess, request_id: str) -> list[dict[str, object]]:
    """The `served` lines of one request, once the router has written its line: the lines
    of one event-loop turn are written after that turn, so the answer may reach the client
    first."""

    def served() -> list[dict[str, object]]:
        text = router.logs()
        whole = text[: text.rfind("\n") + 1]
        lines = [json.loads(line) for line in whole.splitlines() if line.startswith("{")]
        return [
            line
            for line in lines
            if line.get("msg") == "served" and line.get("request_id") == request_id
        ]

    wait_until(lambda: bool(served()), 10, f"the served line of {request_id}")
    return served()


def test_one_json_line_per_request_without_the_prompt(router, fakes):
    client = openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": SECRET_PROMPT}]
    )
    mine = _served_lines(router, raw.headers["x-request-id"])
    assert len(mine) == 1
    line = mine[0]
    assert line["backend"] == "mini" and line["rule"] == "mini-first"
    assert line["cost_micros"] == int(float(raw.headers["x-router-cost-usd"]) * 1_000_000)
    assert line["prompt_tokens"] > 0 and "latency_ms" in line and "upstream_ms" in line
    assert SECRET_PROMPT not in router.logs()
    assert CLIENT_KEY not in router.logs()


def test_metrics_count_requests_cost_and_rejections(router, fakes):
    client = openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0)
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    httpx.post(f"{router.base_url}/chat/completions", json={"model": "auto"})
    text = httpx.get(f"{router.url}/metrics").text
    assert (
        'router_requests_total{backend="mini",rule="mini-first",status="ok",stream="false"}' in text
    )
    assert 'router_cost_micros_total{backend="mini",key="bootstrap",team="default"}' in text
    assert 'router_rejections_total{reason="invalid_api_key"}' in text
    assert "router_overhead_seconds_bucket" in text
    assert "req_" not in text


def test_prompt_logging_is_opt_in_and_announced(upstreams, tmp_path):
    mini, full = upstreams
    config = router_config(mini.base_url, full.base_url, server={"log_prompts": True})
    with RouterProcess(config, tmp_path) as loud:
        client = openai.OpenAI(base_url=loud.base_url, api_key=CLIENT_KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": SECRET_PROMPT}]
        )
        [line] = _served_lines(loud, raw.headers["x-request-id"])
        logs = loud.logs()
    assert line["messages"] == [{"role": "user", "content": SECRET_PROMPT}]
    assert "PROMPT LOGGING IS ON" in logs
    assert SECRET_PROMPT in logs
