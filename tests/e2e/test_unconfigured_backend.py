"""A full backend without its API key: Mini still serves, full-only requests get a 503 that
tells the operator what to set, and nothing is sent or charged for them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.router_process import CLIENT_KEY, RouterProcess, router_config

IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
        ],
    }
]


@pytest.fixture(scope="module")
def keyless(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    mini, full = upstreams
    config = router_config(mini.base_url, full.base_url)
    config["backends"]["full"]["api_key"] = ""
    config["backends"]["full"]["requires_api_key"] = True
    with RouterProcess(config, tmp_path_factory.mktemp("keyless")) as proc:
        yield proc


def test_full_only_request_explains_how_to_configure_the_key(keyless, fakes):
    mini, full = fakes
    client = openai.OpenAI(base_url=keyless.base_url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="auto", messages=IMAGE)
    assert info.value.status_code == 503
    body = info.value.body
    assert body["code"] == "backend_not_configured"
    assert "backends.full.api_key" in body["message"] and "image" in body["message"]
    assert full.call_count == 0 and mini.call_count == 0


def test_mini_still_serves_text(keyless, fakes):
    client = openai.OpenAI(base_url=keyless.base_url, api_key=CLIENT_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-router-backend"] == "mini"
    assert "x-router-fallbacks" not in raw.headers


def test_explain_names_the_same_refusal_the_request_gets(keyless, fakes):
    mini, full = fakes
    client = openai.OpenAI(base_url=keyless.base_url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="auto", messages=IMAGE)
    explained = httpx.post(
        f"{keyless.url}/v1/route/explain",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "auto", "messages": IMAGE},
    )
    assert explained.status_code == 200
    trace = explained.json()
    assert trace["decision"]["rejection"] == {
        "status": info.value.status_code,
        "code": "backend_not_configured",
        "message": info.value.body["message"],
    }
    assert trace["decision"]["candidates"] == [] and trace["candidates"] == []
    assert trace["dropped"]["full"] == "no API key"
    assert full.call_count == 0 and mini.call_count == 0


def test_explain_drops_the_keyless_backend_the_request_never_falls_back_to(keyless, fakes):
    trace = httpx.post(
        f"{keyless.url}/v1/route/explain",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    ).json()
    assert trace["decision"]["rejection"] is None
    assert trace["decision"]["candidates"] == ["mini"]
    assert [c["backend"] for c in trace["candidates"]] == ["mini"]
    assert trace["dropped"] == {"full": "no API key"}
