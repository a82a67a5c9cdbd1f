"""The router in front of a real self-hosted Mini: llama.cpp's server over SmolLM2-135M-Instruct on
CPU, started like `router mini serve` does, with a fake provider as the full backend.

Runs wherever the local-mini extra is installed (CI installs it). Answers are kept to a few
tokens so the module finishes in seconds on 2 cores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

pytest.importorskip(
    "llama_cpp", reason="needs the local-mini extra: pip install -e '.[local-mini]'"
)

from router.core.tokens import TokenCounter
from router.mini import LocalMini
from tests.fake_upstream import FakeUpstream
from tests.local_mini import (
    MAX_TOKENS,
    local_mini_router_config,
    mini_cost,
    running_local_mini,
    served_entry,
)
from tests.router_process import CLIENT_KEY, RouterProcess

pytestmark = pytest.mark.local_mini

ASK = [{"role": "user", "content": "Name one colour of the sky."}]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-mini")


@pytest.fixture(scope="module")
def mini(workdir: Path) -> Iterator[LocalMini]:
    with running_local_mini(workdir) as server:
        yield server


@pytest.fixture(scope="module")
def full() -> Iterator[FakeUpstream]:
    with FakeUpstream(model="full-upstream") as fake:
        yield fake


@pytest.fixture(scope="module")
def router(mini: LocalMini, full: FakeUpstream, workdir: Path) -> Iterator[RouterProcess]:
    with RouterProcess(local_mini_router_config(mini, full.base_url), workdir) as proc:
        yield proc


@pytest.fixture
def fresh_full(full: FakeUpstream) -> FakeUpstream:
    full.reset()
    full.clear()
    return full


def sdk(base_url: str, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)


def test_the_real_mini_lists_its_alias(mini: LocalMini) -> None:
    assert [m.id for m in sdk(mini.base_url).models.list().data] == [mini.settings.alias]


def test_the_real_mini_answers_a_factual_question_and_stops_by_itself(mini: LocalMini) -> None:
    """An instruction-tuned model with its own chat template: the answer, then its end-of-turn
    token, far below any bound (a base model echoes the prompt until max_tokens)."""
    completion = sdk(mini.base_url).chat.completions.create(
        model=mini.settings.alias,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=256,
    )
    answer = completion.choices[0].message.content or ""
    assert "paris" in answer.lower(), answer
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens < 64


def test_non_streaming_through_the_router_is_charged_from_reported_usage(
    router: RouterProcess, mini: LocalMini, fresh_full: FakeUpstream
) -> None:
    raw = sdk(router.base_url).chat.completions.with_raw_response.create(
        model="auto", messages=ASK, max_tokens=MAX_TOKENS
    )
    completion = raw.parse()
    assert raw.headers["x-router-backend"] == "mini"
    assert fresh_full.call_count == 0
    assert completion.model == mini.settings.alias
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= MAX_TOKENS
    served = served_entry(router, raw.headers["x-request-id"])
    assert served["backend"] == "mini"
    assert served["usage_counted"] is False
    assert served["prompt_tokens"] == completion.usage.prompt_tokens
    assert served["completion_tokens"] == completion.usage.completion_tokens
    cost = mini_cost(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert served["cost_micros"] == cost > 0
    assert raw.headers["x-router-cost-usd"] == f"{cost / 1_000_000:.6f}"


def test_streaming_through_the_router_is_charged_from_counted_tokens(
    router: RouterProcess, fresh_full: FakeUpstream
) -> None:
    """llama.cpp never reports usage in a stream, so the router counts what it relayed."""
    raw = sdk(router.base_url).chat.completions.with_raw_response.create(
        model="mini", messages=ASK, max_tokens=MAX_TOKENS, stream=True
    )
    assert raw.headers["x-router-backend"] == "mini"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.usage is None for c in chunks)
    served = served_entry(router, raw.headers["x-request-id"])
    assert served["usage_counted"] is True
    assert served["completion_tokens"] == TokenCounter().count_text(text)
    assert served["prompt_tokens"] > 0
    assert (
        served["cost_micros"] == mini_cost(served["prompt_tokens"], served["completion_tokens"]) > 0
    )
    assert fresh_full.call_count == 0


def test_a_stream_that_asked_for_usage_still_ends_cleanly(router: RouterProcess) -> None:
    chunks = list(
        sdk(router.base_url).chat.completions.create(
            model="mini",
            messages=ASK,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


def test_sse_from_the_real_mini_is_relayed_with_done(router: RouterProcess) -> None:
    with httpx.stream(
        "POST",
        f"{router.base_url}/chat/completions",
        timeout=60,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "mini", "messages": ASK, "max_tokens": 4, "stream": True},
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"


def test_a_prompt_over_the_minis_context_goes_to_full(
    router: RouterProcess, mini: LocalMini, fresh_full: FakeUpstream
) -> None:
    long = [{"role": "user", "content": "hello " * (mini.settings.ctx + 500)}]
    raw = sdk(router.base_url).chat.completions.with_raw_response.create(
        model="auto", messages=long, max_tokens=MAX_TOKENS
    )
    assert raw.headers["x-router-backend"] == "full"
    assert fresh_full.call_count == 1


def test_a_prompt_over_the_minis_context_pinned_to_mini_is_refused_before_dispatch(
    router: RouterProcess, mini: LocalMini
) -> None:
    long = [{"role": "user", "content": "hello " * (mini.settings.ctx + 500)}]
    with pytest.raises(openai.BadRequestError) as info:
        sdk(router.base_url).chat.completions.create(
            model="mini", messages=long, max_tokens=MAX_TOKENS
        )
    assert "context" in info.value.body["message"].lower()


def test_a_dead_mini_falls_back_to_full(workdir: Path, fresh_full: FakeUpstream) -> None:
    with (
        running_local_mini(workdir) as own_mini,
        RouterProcess(
            local_mini_router_config(own_mini, fresh_full.base_url), workdir
        ) as own_router,
    ):
        client = sdk(own_router.base_url)
        first = client.chat.completions.with_raw_response.create(
            model="auto", messages=ASK, max_tokens=MAX_TOKENS
        )
        assert first.headers["x-router-backend"] == "mini"
        own_mini.kill()
        for stream in (False, True):
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=ASK, max_tokens=MAX_TOKENS, stream=stream
            )
            assert raw.headers["x-router-backend"] == "full"
            assert raw.headers.get("x-router-fallbacks", "mini:").startswith("mini:")
            if stream:
                assert any(c.choices and c.choices[0].finish_reason for c in raw.parse())
            else:
                assert raw.parse().choices[0].message.content
        assert fresh_full.call_count == 2


def test_a_mini_killed_mid_stream_cuts_that_stream_and_charges_it(
    workdir: Path, fresh_full: FakeUpstream
) -> None:
    """After the first byte a stream cannot move; the client is told, the rest go to full."""
    with (
        running_local_mini(workdir) as own_mini,
        RouterProcess(
            local_mini_router_config(own_mini, fresh_full.base_url), workdir
        ) as own_router,
    ):
        client = sdk(own_router.base_url)
        raw = client.chat.completions.with_raw_response.create(
            model="mini",
            messages=[{"role": "user", "content": "Count from 1 to 200."}],
            max_tokens=400,
            stream=True,
        )
        stream = raw.parse()
        killer = threading.Timer(0, own_mini.kill)
        received = []
        with pytest.raises(openai.APIError):
            for chunk in stream:
                received.append(chunk)
                if len(received) == 3:
                    killer.start()
        killer.join()
        assert len(received) >= 3
        served = served_entry(own_router, raw.headers["x-request-id"])
        assert served["backend"] == "mini" and served["completion_tokens"] > 0
        after = client.chat.completions.with_raw_response.create(
            model="auto", messages=ASK, max_tokens=MAX_TOKENS
        )
        assert after.headers["x-router-backend"] == "full"


def test_the_router_bounds_max_completion_tokens_which_llama_cpp_ignores(
    router: RouterProcess,
) -> None:
    """llama-cpp-python drops `max_completion_tokens` (and generates up to its context), so
    the router must send the limit it reserved for as `max_tokens`. Read as a stream and
    stop early, so a failure costs no long generation."""
    content_chunks = 0
    with sdk(router.base_url).chat.completions.create(
        model="mini", messages=ASK, max_completion_tokens=MAX_TOKENS, stream=True
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                content_chunks += 1
            if content_chunks > MAX_TOKENS:
                break
    assert content_chunks <= MAX_TOKENS


def test_a_client_that_asked_for_stream_usage_gets_the_counted_usage(router: RouterProcess) -> None:
    chunks = list(
        sdk(router.base_url).chat.completions.create(
            model="mini",
            messages=ASK,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1 and usages[0].completion_tokens > 0


def test_with_no_full_key_a_full_only_request_says_how_to_configure_one(
    mini: LocalMini, fresh_full: FakeUpstream, workdir: Path
) -> None:
    config = local_mini_router_config(mini, fresh_full.base_url)
    del config["backends"]["full"]["api_key"]
    config["backends"]["full"]["requires_api_key"] = True
    with RouterProcess(config, workdir) as keyless:
        image = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                ],
            }
        ]
        with pytest.raises(openai.APIStatusError) as info:
            sdk(keyless.base_url).chat.completions.create(
                model="auto", messages=image, max_tokens=MAX_TOKENS
            )
        assert info.value.status_code == 503
        assert info.value.body["code"] == "backend_not_configured"
        assert "api_key" in info.value.body["message"].lower().replace(" ", "_")
        text = sdk(keyless.base_url).chat.completions.with_raw_response.create(
            model="auto", messages=ASK, max_tokens=MAX_TOKENS
        )
        assert text.headers["x-router-backend"] == "mini"
    assert fresh_full.call_count == 0


class TestRealServerQuirks:
    """What llama-cpp-python's server really does, pinned so tests/fake_upstream.py can
    mimic it (ignore_include_usage, and the shapes below) and so an upgrade that changes
    it is noticed."""

    def test_streams_carry_no_usage_even_when_asked(self, mini: LocalMini) -> None:
        with httpx.stream(
            "POST",
            f"{mini.base_url}/chat/completions",
            timeout=60,
            json={
                "model": mini.settings.alias,
                "messages": ASK,
                "max_tokens": 3,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ) as resp:
            raw = resp.read()
        events = [e for e in raw.split(b"\n\n") if e]
        assert b"\r" not in raw and raw.endswith(b"data: [DONE]\n\n")
        chunks = [httpx.Response(200, content=e[len(b"data: ") :]).json() for e in events[:-1]]
        assert all("usage" not in c for c in chunks)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
        assert chunks[-1]["choices"][0]["delta"] == {}
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert sum(1 for c in chunks if c["choices"][0]["delta"].get("content")) == 3

    def test_any_model_name_is_served_and_echoed(self, mini: LocalMini) -> None:
        reply = httpx.post(
            f"{mini.base_url}/chat/completions",
            timeout=60,
            json={"model": "no-such-model", "messages": ASK, "max_tokens": 2},
        ).json()
        assert reply["model"] == "no-such-model"
        assert reply["usage"]["completion_tokens"] == 2

    def test_over_context_is_400_unstreamed_and_an_empty_200_streamed(
        self, mini: LocalMini
    ) -> None:
        body = {
            "model": mini.settings.alias,
            "max_tokens": 2,
            "messages": [{"role": "user", "content": "hello " * (mini.settings.ctx + 100)}],
        }
        plain = httpx.post(f"{mini.base_url}/chat/completions", json=body, timeout=60)
        assert plain.status_code == 400
        assert plain.json()["error"]["code"] == "context_length_exceeded"
        assert set(plain.json()["error"]) == {"message", "type", "param", "code"}
        streamed = httpx.post(
            f"{mini.base_url}/chat/completions", timeout=60, json={**body, "stream": True}
        )
        assert streamed.status_code == 200 and streamed.content == b""

    def test_json_schema_is_a_500_not_a_400(self, mini: LocalMini) -> None:
        resp = httpx.post(
            f"{mini.base_url}/chat/completions",
            timeout=60,
            json={
                "model": mini.settings.alias,
                "messages": ASK,
                "max_tokens": 2,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}},
                },
            },
        )
        assert resp.status_code == 500
        assert resp.json()["error"]["type"] == "internal_server_error"
