"""What a hostile or careless client cannot do: reach the admin API with a client key or no
key, steer a request to another URL, header or credential, read an upstream's key or
internal address out of an error, or guess keys quickly. (Keys at rest, in Redis and in the
logs, are covered by tests/e2e/test_secrets_at_rest.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.support import HELLO, error_shape_ok
from tests.fuzz.test_openapi import DOCUMENT
from tests.router_process import ADMIN_KEY, CLIENT_KEY, RouterProcess, router_config

UPSTREAM_KEY = "upstream-secret-key"
"""The api_key tests/router_process.py configures on both backends."""
ADMIN_ROUTES = sorted(
    (method.upper(), path)
    for path, ops in DOCUMENT["paths"].items()
    if path.startswith("/admin")
    for method in ops
)


def _admin_call(
    router: RouterProcess, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    url = router.url + re.sub(r"\{[^}]+\}", "x", path)
    return httpx.request(method, url, headers=headers, json={}, timeout=10)


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_client_keys_and_missing_keys(bounded, method, path):
    as_client = _admin_call(bounded, method, path, {"authorization": f"Bearer {CLIENT_KEY}"})
    assert as_client.status_code == 403, as_client.text
    assert as_client.json()["error"]["type"] == "permission_error"
    anonymous = _admin_call(bounded, method, path, {})
    assert anonymous.status_code == 401, anonymous.text
    assert error_shape_ok(anonymous.json()) and error_shape_ok(as_client.json())


def test_a_wrong_admin_key_is_401(bounded):
    resp = _admin_call(bounded, "GET", "/admin/keys", {"authorization": f"Bearer {ADMIN_KEY}x"})
    assert resp.status_code == 401 and error_shape_ok(resp.json())


STEERING: dict[str, Any] = {
    "api_base": "http://evil.invalid/v1",
    "base_url": "http://evil.invalid/v1",
    "api_key": "sk-client-chosen-0000",
    "api_version": "2099-01-01",
    "organization": "org-evil",
    "extra_headers": {"authorization": "Bearer sk-evil"},
    "headers": {"x-evil": "1"},
    "custom_llm_provider": "evil",
    "user_config": {"model_list": [{"litellm_params": {"api_base": "http://evil.invalid"}}]},
}
"""Fields that name a URL, a credential or headers: what litellm (or a litellm proxy used as
an upstream) would act on."""


def test_a_client_cannot_choose_the_upstream_url_headers_or_key(bounded, fakes):
    mini, _ = fakes
    resp = httpx.post(
        f"{bounded.base_url}/chat/completions",
        timeout=20,
        json={"model": "mini", "messages": HELLO, "temperature": 0.5, **STEERING},
        headers={
            "authorization": f"Bearer {CLIENT_KEY}",
            "x-api-key": "sk-evil",
            "api-key": "sk-evil",
            "openai-organization": "org-evil",
            "x-forwarded-host": "evil.invalid",
            "host": "evil.invalid",
        },
    )
    assert resp.status_code == 200, resp.text
    received = mini.last_request
    assert received is not None and received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "evil" not in str(received.headers)
    assert received.body["temperature"] == 0.5, "ordinary parameters pass through"
    assert not STEERING.keys() & received.body.keys(), "steering fields are stripped"


def test_upstream_errors_never_carry_its_key_or_internal_addresses(bounded, fakes):
    mini, _ = fakes
    mini.fail(
        401,
        message=(
            f"Incorrect API key provided: {UPSTREAM_KEY}. Sent by 10.1.2.3:8000 to "
            f"http://vllm.internal:8000/v1/chat/completions with Bearer {UPSTREAM_KEY}; "
            "see sk-proj-abcdefghijklmnop."
        ),
        code="invalid_api_key",
    )
    with pytest.raises(openai.AuthenticationError) as info:
        openai.OpenAI(
            base_url=bounded.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20
        ).chat.completions.create(model="mini", messages=HELLO)
    relayed = str(info.value.body)
    for secret in (
        UPSTREAM_KEY,
        "vllm.internal",
        "10.1.2.3",
        "sk-proj-abcdefghijklmnop",
        mini.base_url,
        "127.0.0.1",
    ):
        assert secret not in relayed, relayed
    assert UPSTREAM_KEY not in bounded.logs()


def test_an_upstream_error_event_inside_a_stream_is_scrubbed_too(bounded, fakes):
    mini, _ = fakes
    leak = (
        f'data: {{"error": {{"message": "bad key {UPSTREAM_KEY} at '
        f'http://vllm.internal:8000/v1", "type": "server_error", "param": null, '
        f'"code": null}}}}\n\n'
    ).encode()
    mini.configure(garbage=True, garbage_body=leak)
    resp = httpx.post(
        f"{bounded.base_url}/chat/completions",
        timeout=20,
        json={"model": "mini", "messages": HELLO, "stream": True},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert UPSTREAM_KEY not in resp.text and "vllm.internal" not in resp.text, resp.text


def test_repeated_bad_keys_from_one_address_get_429_with_retry_after(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    mini, full = upstreams
    config = router_config(mini.base_url, full.base_url, auth={"failed_auth_per_minute": 5})
    with RouterProcess(config, tmp_path) as router:
        statuses = []
        for attempt in range(8):
            resp = httpx.post(
                f"{router.base_url}/chat/completions",
                timeout=10,
                json={"model": "auto", "messages": HELLO},
                headers={"authorization": f"Bearer sk-guess-{attempt:04d}"},
            )
            statuses.append(resp.status_code)
            assert error_shape_ok(resp.json())
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.json()["error"]["code"] == "too_many_auth_failures"
        admin = httpx.get(
            f"{router.url}/admin/keys", timeout=10, headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert admin.status_code == 429, "the admin API shares the throttle"
