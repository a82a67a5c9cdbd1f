"""Hypothesis-generated chat bodies posted to a running router: odd content parts, huge and
negative numbers, unicode, nulls, wrong types, deep nesting, and bodies that are not JSON
objects at all. No answer is a 500, and every error is in OpenAI's shape (the module's
router fixture also fails on any traceback in its log)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.support import error_shape_ok
from tests.router_process import CLIENT_KEY, RouterProcess

EXAMPLES = 250
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
ALLOWED_5XX = {502: {"upstream_error"}, 503: {"no_backend_available"}, 504: {"upstream_timeout"}}
"""A fuzzed body may be one the upstream itself chokes on; that is relayed as its failure."""

huge_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63, -(2**63), 10**30]),
)
odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "\x00", "\u202e\u0301", "👩‍👩‍👧‍👦" * 20, "\ufeff", "a" * 5000, "null", "{}"]
    ),
)
scalars = st.one_of(
    st.none(), st.booleans(), huge_ints, odd_text, st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(odd_text, inner, max_size=4)
    ),
    max_leaves=20,
)

parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(odd_text, json_values)}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.one_of(
                st.fixed_dictionaries(
                    {"url": st.one_of(odd_text, st.just("data:image/png;base64,iVBORw0KGgo="))}
                ),
                json_values,
            ),
        }
    ),
    st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": json_values}),
    st.fixed_dictionaries({"type": st.just("file"), "file": json_values}),
    st.fixed_dictionaries({"type": st.one_of(odd_text, json_values)}),
    json_values,
)
content = st.one_of(odd_text, st.none(), st.lists(parts, max_size=5), json_values)
messages = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
                "content": content,
            },
            optional={"name": odd_text, "tool_call_id": scalars, "tool_calls": json_values},
        ),
        st.fixed_dictionaries({"role": st.one_of(odd_text, json_values), "content": content}),
        json_values,
    ),
    max_size=6,
)
options = st.fixed_dictionaries(
    {},
    optional={
        "max_tokens": st.one_of(huge_ints, json_values),
        "max_completion_tokens": st.one_of(huge_ints, json_values),
        "stream": st.one_of(st.booleans(), json_values),
        "stream_options": json_values,
        "n": st.one_of(huge_ints, json_values),
        "temperature": json_values,
        "tools": st.one_of(st.lists(json_values, max_size=3), json_values),
        "tool_choice": json_values,
        "response_format": st.one_of(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["json_object", "json_schema", "text"]),
                    "json_schema": json_values,
                }
            ),
            json_values,
        ),
        "modalities": st.one_of(st.lists(odd_text, max_size=3), json_values),
        "audio": json_values,
        "user": json_values,
        "metadata": json_values,
    },
)
bodies = st.builds(
    lambda model, msgs, opts: {"model": model, "messages": msgs, **opts},
    st.one_of(st.sampled_from(["auto", "mini", "full"]), json_values),
    st.one_of(messages, json_values),
    options,
)

valid_parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": odd_text}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries(
                {
                    "url": st.sampled_from(
                        ["data:image/png;base64,iVBORw0KGgo=", "https://x.invalid/a"]
                    )
                },
                optional={"detail": st.one_of(st.sampled_from(["low", "high", "auto"]), odd_text)},
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("input_audio"),
            "input_audio": st.fixed_dictionaries(
                {"data": st.text(alphabet="AB=", max_size=5000), "format": odd_text}
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("file"),
            "file": st.fixed_dictionaries(
                {},
                optional={"file_data": st.text(alphabet="AB", max_size=5000), "file_id": odd_text},
            ),
        }
    ),
)
plausible_messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "developer", "user", "assistant"]),
            "content": st.one_of(odd_text, st.lists(valid_parts, min_size=1, max_size=4)),
        },
        optional={"name": odd_text},
    ),
    min_size=1,
    max_size=5,
)
plausible_options = st.fixed_dictionaries(
    {},
    optional={
        "max_tokens": huge_ints,
        "max_completion_tokens": huge_ints,
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "temperature": st.floats(allow_nan=False, allow_infinity=False),
        "n": huge_ints,
        "seed": huge_ints,
        "tools": st.lists(
            st.fixed_dictionaries(
                {"type": st.just("function"), "function": st.fixed_dictionaries({"name": odd_text})}
            ),
            max_size=3,
        ),
        "response_format": st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "json_object"])}
        ),
        "modalities": st.lists(st.sampled_from(["text", "audio"]), max_size=2),
        "user": odd_text,
    },
)
plausible_bodies = st.builds(
    lambda model, msgs, opts: {"model": model, "messages": msgs, **opts},
    st.sampled_from(["auto", "mini", "full"]),
    plausible_messages,
    plausible_options,
)


@pytest.fixture(scope="module")
def client(bounded: RouterProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=bounded.base_url,
        timeout=30,
        headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
    ) as http:
        yield http


def check(resp: httpx.Response) -> None:
    assert resp.status_code != 500, resp.text
    if resp.status_code == 200:
        if resp.headers["content-type"].startswith("text/event-stream"):
            last = [line for line in resp.text.splitlines() if line.startswith("data: ")][-1]
            assert last == "data: [DONE]" or error_shape_ok(json.loads(last[6:])), last
        return
    body = resp.json()
    assert error_shape_ok(body), resp.text
    if resp.status_code >= 500:
        assert body["error"]["code"] in ALLOWED_5XX.get(resp.status_code, set()), resp.text


def post(client: httpx.Client, payload: bytes) -> httpx.Response:
    return client.post("/chat/completions", content=payload)


@SETTINGS
@given(body=bodies)
def test_chat_shaped_bodies(client: httpx.Client, body: dict[str, Any]) -> None:
    check(post(client, json.dumps(body).encode()))


@SETTINGS
@given(body=plausible_bodies)
def test_plausible_bodies_with_extreme_values(client: httpx.Client, body: dict[str, Any]) -> None:
    check(post(client, json.dumps(body).encode()))


@SETTINGS
@given(body=json_values)
def test_any_json_at_all(client: httpx.Client, body: Any) -> None:
    check(post(client, json.dumps(body).encode()))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_bytes_that_are_not_json(client: httpx.Client, raw: bytes) -> None:
    check(post(client, raw))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e999}',
        b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "n": NaN}',
        b'{"model": "auto", "model": "full", "messages": []}',
        b'\xef\xbb\xbf{"model": "auto", "messages": []}',
        b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"\xff\xfe" + b'"}]}',
    ],
)
def test_edge_encodings(client: httpx.Client, payload: bytes) -> None:
    check(post(client, payload))
