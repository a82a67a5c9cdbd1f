"""The policy, end to end through the SDK: where image, long-context, tool and over-budget
requests land; explain charges nothing; a policy edit is picked up live, a broken one is
refused while the old one keeps serving."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.router_process import ADMIN_KEY, CLIENT_KEY, REPO, RouterProcess, router_config

TEXT = [{"role": "user", "content": "route me somewhere sensible"}]
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this picture"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
]
LONG = [{"role": "user", "content": "token " * 140_000}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "look something up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def live(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RouterProcess, Path]]:
    """A router whose policy is a copy the tests may edit."""
    mini, full = upstreams
    workdir = tmp_path_factory.mktemp("policy")
    policy = workdir / "policy.yaml"
    shutil.copy(REPO / "policies" / "default.yaml", policy)
    config = router_config(mini.base_url, full.base_url, policy=str(policy))
    with RouterProcess(config, workdir) as proc:
        yield proc, policy


def sdk(router: RouterProcess, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0, timeout=30)


def backend_of(router: RouterProcess, key: str = CLIENT_KEY, **request: object) -> str:
    raw = sdk(router, key).chat.completions.with_raw_response.create(model="auto", **request)
    return raw.headers["x-router-backend"]


def test_text_goes_to_mini_and_images_to_full(live, fakes):
    router, _ = live
    mini, full = fakes
    assert backend_of(router, messages=TEXT) == "mini"
    assert backend_of(router, messages=IMAGE) == "full"
    assert mini.call_count == 1 and full.call_count == 1


def test_a_prompt_past_minis_window_goes_to_full_even_pinned_it_is_refused(live, fakes):
    router, _ = live
    mini, _ = fakes
    assert backend_of(router, messages=LONG, max_tokens=16) == "full"
    with pytest.raises(openai.BadRequestError) as info:
        sdk(router).chat.completions.create(model="mini", messages=LONG, max_tokens=16)
    assert info.value.body["code"] == "context_length_exceeded"
    assert mini.call_count == 0


def test_tool_requests_stay_on_mini_which_supports_tools(live, fakes):
    router, _ = live
    assert backend_of(router, messages=TEXT, tools=TOOLS) == "mini"
    received = fakes[0].last_request
    assert received is not None and received.body["tools"] == TOOLS


def test_explain_traces_without_calling_or_charging(live, fakes):
    router, _ = live
    mini, full = fakes
    before = httpx.get(
        f"{router.url}/admin/ledger", params={"format": "jsonl"}, headers=ADMIN
    ).text.count("\n")
    trace = httpx.post(
        f"{router.url}/v1/route/explain",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "auto", "messages": IMAGE},
    ).json()
    assert trace["decision"]["candidates"] == ["full"]
    assert trace["decision"]["rule"] == "full"
    assert "image" in trace["features"]["input"]
    [candidate] = trace["candidates"]
    assert candidate["backend"] == "full" and candidate["worst_case_micros"] > 0
    assert candidate["price_version"] >= 1
    after = httpx.get(
        f"{router.url}/admin/ledger", params={"format": "jsonl"}, headers=ADMIN
    ).text.count("\n")
    assert (mini.call_count, full.call_count, after) == (0, 0, before)


def test_past_the_soft_limit_only_mini_work_is_served(live, fakes):
    router, _ = live
    created = httpx.post(
        f"{router.url}/admin/keys",
        headers=ADMIN,
        json={
            "team": "thrifty",
            "budgets": [{"period": "day", "limit_usd": "5", "soft_limit_usd": "0.000001"}],
        },
    ).json()
    key = created["key"]
    assert backend_of(router, key, messages=TEXT) == "mini"
    raw = sdk(router, key).chat.completions.with_raw_response.create(model="auto", messages=TEXT)
    assert raw.headers["x-router-rule"] == "key-budget-low"
    with pytest.raises(openai.RateLimitError) as info:
        sdk(router, key).chat.completions.create(model="auto", messages=IMAGE)
    assert info.value.body["code"] == "budget_soft_limit"
    assert "budget" in info.value.body["message"]
    assert fakes[1].call_count == 0


def _wait_for_backend(router: RouterProcess, wanted: str, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    seen = ""
    while time.monotonic() < deadline:
        seen = backend_of(router, messages=TEXT)
        if seen == wanted:
            return seen
        time.sleep(0.1)
    return seen


def test_an_edited_policy_is_picked_up_and_a_broken_one_refused(live, fakes):
    router, policy = live
    original = policy.read_text()
    try:
        policy.write_text("version: 1\nrules:\n  - name: all-full\n    route: [full]\n")
        assert _wait_for_backend(router, "full") == "full"
        policy.write_text("version: 1\nrules:\n  - name: broken\n    route: [nowhere]\n")
        reload = httpx.post(f"{router.url}/admin/policy/reload", headers=ADMIN)
        assert reload.status_code == 400
        assert reload.json()["error"]["code"] == "policy_invalid"
        assert "nowhere" in reload.json()["error"]["message"]
        assert backend_of(router, messages=TEXT) == "full"
    finally:
        policy.write_text(original)
    assert httpx.post(f"{router.url}/admin/policy/reload", headers=ADMIN).status_code == 200
    assert backend_of(router, messages=TEXT) == "mini"


def test_reload_needs_the_admin_key(live):
    router, _ = live
    resp = httpx.post(
        f"{router.url}/admin/policy/reload", headers={"authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert resp.status_code == 403
