"""The router as a drop-in OpenAI endpoint: the official SDK and litellm, unchanged, through
a real router process to real (fake) upstream servers."""

from __future__ import annotations

import httpx
import openai
import pytest

from router.core.tokens import TokenCounter
from tests.fake_upstream import count_prompt_tokens
from tests.router_process import CLIENT_KEY, RouterProcess

HELLO = [{"role": "user", "content": "say hello to the router please"}]


def client(router: RouterProcess, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0, timeout=20)


def test_non_streaming_reaches_mini_unchanged_but_for_the_model(router, fakes):
    mini, full = fakes
    raw = client(router).chat.completions.with_raw_response.create(
        model="auto",
        messages=HELLO,
        temperature=0.3,
        user="u-1",
        extra_headers={"x-request-id": "trace-123"},
    )
    completion = raw.parse()
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.choices[0].message.content
    assert raw.headers["x-router-backend"] == "mini"
    assert raw.headers["x-request-id"] == "trace-123"
    assert raw.headers["x-router-rule"]
    received = mini.last_request
    assert received is not None and full.call_count == 0
    assert received.body == {
        "model": "mini-upstream",
        "messages": HELLO,
        "temperature": 0.3,
        "user": "u-1",
        "max_tokens": 8192,
    }
    assert received.headers["authorization"] == "Bearer upstream-secret-key"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_prompt_tokens(received.body)


def test_output_is_bounded_by_what_was_reserved(router, fakes):
    """Servers like llama.cpp ignore max_completion_tokens; the router always sends the
    bound it reserved for, in the field the backend honours."""
    mini, _ = fakes
    client(router).chat.completions.create(model="auto", messages=HELLO, max_completion_tokens=5)
    received = mini.last_request
    assert received is not None
    assert received.body["max_tokens"] == 5 and "max_completion_tokens" not in received.body
    with pytest.raises(openai.BadRequestError) as info:
        client(router).chat.completions.create(model="auto", messages=HELLO, max_tokens=10**6)
    assert "max" in info.value.body["message"].lower()
    assert mini.call_count == 1


def test_counted_usage_is_sent_to_a_client_that_asked_when_upstream_sends_none(router, fakes):
    mini, _ = fakes
    mini.configure(reply_words=5, ignore_include_usage=True)
    chunks = list(
        client(router).chat.completions.create(
            model="auto", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    usages = [c.usage for c in chunks if c.usage is not None]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 5 and len(usages) == 1
    assert usages[0].completion_tokens == TokenCounter().count_text(text)
    assert chunks[-1].usage is not None
    received = mini.last_request
    assert received is not None and received.usage is None
    assert usages[0].prompt_tokens > 0


def test_request_id_is_generated_when_absent(router, fakes):
    raw = client(router).chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert raw.headers["x-request-id"].startswith("req_")


def test_streaming_passes_chunks_through_and_hides_usage_it_added(router, fakes):
    mini, _ = fakes
    mini.configure(reply_words=6)
    chunks = list(client(router).chat.completions.create(model="auto", messages=HELLO, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 6
    assert all(c.usage is None for c in chunks)
    received = mini.last_request
    assert received is not None and received.stream
    assert received.body["stream_options"] == {"include_usage": True}


def test_streaming_keeps_usage_the_client_asked_for(router, fakes):
    mini, _ = fakes
    mini.configure(reply_words=4)
    chunks = list(
        client(router).chat.completions.create(
            model="auto", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1 and usages[0].completion_tokens == 4


def test_sse_is_relayed_event_by_event_with_done(router, fakes):
    mini, _ = fakes
    mini.configure(reply_words=3)
    with httpx.stream(
        "POST",
        f"{router.base_url}/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "auto", "messages": HELLO, "stream": True},
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-router-backend"] == "mini"
        lines = [line for line in resp.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    assert len(lines) >= 5


async def test_async_client_stream_and_non_stream(router, fakes):
    async with openai.AsyncOpenAI(
        base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0
    ) as aclient:
        completion = await aclient.chat.completions.create(model="auto", messages=HELLO)
        assert completion.choices[0].message.content
        stream = await aclient.chat.completions.create(model="auto", messages=HELLO, stream=True)
        pieces = [chunk async for chunk in stream]
        assert any(c.choices and c.choices[0].finish_reason == "stop" for c in pieces)


def test_pinned_backend_by_model_name(router, fakes):
    mini, full = fakes
    raw = client(router).chat.completions.with_raw_response.create(model="full", messages=HELLO)
    assert raw.headers["x-router-backend"] == "full"
    assert full.last_request is not None and full.last_request.model == "full-upstream"
    assert mini.call_count == 0


def test_unknown_model_is_404_in_openai_shape(router, fakes):
    with pytest.raises(openai.NotFoundError) as info:
        client(router).chat.completions.create(model="gpt-nonexistent", messages=HELLO)
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert "auto" in error["message"]
    assert fakes[0].call_count == 0


def test_wrong_or_missing_key_is_401(router, fakes):
    with pytest.raises(openai.AuthenticationError) as info:
        client(router, key="sk-wrong").chat.completions.create(model="auto", messages=HELLO)
    assert info.value.body["type"] == "authentication_error"
    resp = httpx.post(f"{router.base_url}/chat/completions", json={"model": "auto"})
    assert resp.status_code == 401
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
    assert fakes[0].call_count == 0


def test_models_lists_aliases_and_backends(router):
    models = client(router).models.list()
    ids = [m.id for m in models.data]
    assert ids[0] == "auto" and sorted(ids[1:]) == ["full", "mini"]


def test_body_over_the_limit_is_413(router, fakes):
    huge = "x" * (5 * 1024 * 1024)
    resp = httpx.post(
        f"{router.base_url}/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "auto", "messages": [{"role": "user", "content": huge}]},
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"
    assert fakes[0].call_count == 0


def test_invalid_json_is_400(router):
    resp = httpx.post(
        f"{router.base_url}/chat/completions",
        content=b"{nope",
        headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_json"


def test_upstream_server_error_is_a_clean_502(router, fakes):
    mini, _ = fakes
    mini.fail(500)
    with pytest.raises(openai.InternalServerError) as info:
        client(router).chat.completions.create(model="mini", messages=HELLO)
    assert info.value.status_code == 502
    assert "mini" in info.value.body["message"]
    assert "127.0.0.1" not in info.value.body["message"]


def test_upstream_client_error_is_relayed(router, fakes):
    mini, _ = fakes
    mini.fail(400, message="messages[0].content is too weird")
    with pytest.raises(openai.BadRequestError) as info:
        client(router).chat.completions.create(model="mini", messages=HELLO)
    assert info.value.body["message"] == "messages[0].content is too weird"


def test_garbage_from_upstream_is_a_clean_502(router, fakes):
    mini, _ = fakes
    mini.configure(garbage=True)
    with pytest.raises(openai.InternalServerError) as info:
        client(router).chat.completions.create(model="mini", messages=HELLO)
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_error"


def test_health_and_readiness(router):
    assert httpx.get(f"{router.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{router.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_litellm_as_a_client(router, fakes):
    from router.litellm_loader import load_litellm

    litellm = load_litellm()
    response = litellm.completion(
        model="openai/auto", api_base=router.base_url, api_key=CLIENT_KEY, messages=HELLO
    )
    assert response.choices[0].message.content
    assert fakes[0].last_request is not None
    assert fakes[0].last_request.model == "mini-upstream"


def test_unknown_route_is_openai_shaped_404(router):
    resp = httpx.get(f"{router.url}/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "unknown_url"
