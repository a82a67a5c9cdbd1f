"""Request inspection: features read off the body, and malformed bodies named by param."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.core.inspect import (
    IMAGE_LOW_TOKENS,
    IMAGE_TOKENS,
    MESSAGE_TOKENS,
    REPLY_TOKENS,
    inspect,
)
from router.core.model import Modality
from router.core.tokens import TokenCounter
from router.errors import InvalidRequest

TXT, IMG, AUD, FIL = Modality.TEXT, Modality.IMAGE, Modality.AUDIO, Modality.FILE
USER = {"role": "user", "content": "Hello there"}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


def _body(**fields: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [USER], **fields}


def _parts(*parts: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": list(parts)}]}


@pytest.mark.parametrize(
    ("body", "inputs"),
    [
        (_body(), {TXT}),
        (_parts({"type": "text", "text": "hi"}, IMAGE), {TXT, IMG}),
        (_parts(IMAGE), {IMG}),
        (_parts({"type": "image_url", "image_url": "https://example.com/a.png"}), {IMG}),
        (_parts({"type": "input_image", "image_url": "https://example.com/a.png"}), {IMG}),
        (_parts({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}), {AUD}),
        (_parts({"type": "file", "file": {"file_id": "file-1"}}), {FIL}),
        (_parts({"type": "file", "file": {"file_data": "JVBERi0=", "filename": "a.pdf"}}), {FIL}),
        (_parts({"type": "input_file", "file_id": "file-1"}), {FIL}),
        (_parts({"type": "input_text", "text": "hi"}), {TXT}),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    }
                ]
            },
            set(),
        ),
    ],
)
def test_input_modalities(
    counter: TokenCounter, body: dict[str, Any], inputs: set[Modality]
) -> None:
    assert inspect(body, {}, counter).input_modalities == inputs


@pytest.mark.parametrize(
    ("fields", "outputs", "realtime"),
    [
        ({}, {TXT}, False),
        ({"modalities": ["text"]}, {TXT}, False),
        (
            {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
            {TXT, AUD},
            False,
        ),
        ({"audio": {"voice": "alloy", "format": "pcm16"}}, {TXT, AUD}, False),
        ({"modalities": ["text", "audio"], "stream": True}, {TXT, AUD}, True),
        ({"modalities": [], "stream": True}, {TXT}, False),
    ],
)
def test_output_modalities_and_realtime(
    counter: TokenCounter, fields: dict[str, Any], outputs: set[Modality], realtime: bool
) -> None:
    found = inspect(_body(**fields), {}, counter)
    assert found.output_modalities == outputs
    assert found.realtime_audio is realtime


def test_image_generation_tool(counter: TokenCounter) -> None:
    body = _body(
        tools=[
            {"type": "image_generation"},
            {"type": "function", "function": {"name": "f", "parameters": {}}},
        ]
    )
    found = inspect(body, {}, counter)
    assert found.image_generation
    assert IMG in found.output_modalities
    assert found.tools == 1


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {},
            {
                "max_output_tokens": None,
                "tools": 0,
                "tool_choice": None,
                "json_schema": False,
                "json_object": False,
                "stream": False,
            },
        ),
        ({"max_tokens": 50}, {"max_output_tokens": 50}),
        ({"max_completion_tokens": 70, "max_tokens": 50}, {"max_output_tokens": 70}),
        (
            {
                "tools": [{"type": "function", "function": {"name": "a"}}] * 3,
                "tool_choice": "required",
            },
            {"tools": 3, "tool_choice": "required"},
        ),
        (
            {"tool_choice": {"type": "function", "function": {"name": "a"}}},
            {"tool_choice": "function"},
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
            {"json_schema": True, "json_object": False},
        ),
        ({"response_format": {"type": "json_object"}}, {"json_schema": False, "json_object": True}),
        ({"response_format": {"type": "text"}}, {"json_schema": False, "json_object": False}),
        ({"stream": True, "stream_options": {"include_usage": True}}, {"stream": True}),
        ({"stream": None}, {"stream": False}),
    ],
)
def test_request_parameters(
    counter: TokenCounter, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    found = inspect(_body(**fields), {}, counter)
    assert {key: getattr(found, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("value", "prefer"),
    [
        ("cost", "cost"),
        ("Quality", "quality"),
        (" latency ", "latency"),
        ("cheap", None),
        (None, None),
    ],
)
def test_prefer_header(counter: TokenCounter, value: str | None, prefer: str | None) -> None:
    headers = {} if value is None else {"x-router-prefer": value}
    assert inspect(_body(), headers, counter).prefer == prefer


def test_prompt_size_counts_overheads_media_and_tools(counter: TokenCounter) -> None:
    text = "Describe these pictures."
    low_image = {"type": "image_url", "image_url": {"url": "u", "detail": "low"}}
    body = {
        "messages": [
            {"role": "system", "content": "Be brief.", "name": "ops"},
            {"role": "user", "content": [{"type": "text", "text": text}, IMAGE, low_image]},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
    }
    found = inspect(body, {}, counter)
    tool_json = '[{"type":"function","function":{"name":"lookup"}}]'
    expected = (
        2 * MESSAGE_TOKENS
        + 1
        + REPLY_TOKENS
        + IMAGE_TOKENS
        + IMAGE_LOW_TOKENS
        + sum(map(counter.count_text, ["Be brief.", "ops", text, tool_json]))
    )
    assert found.prompt.lower <= expected <= found.prompt.upper
    assert not found.prompt.tokenized
    assert found.prompt.exact() == expected
    assert found.message_count == 2


def test_long_prompt_is_bounded_without_tokenizing(counter: TokenCounter) -> None:
    found = inspect(_body(messages=[{"role": "user", "content": "word " * 100_000}]), {}, counter)
    assert found.prompt.at_most(10_000_000)
    assert not found.prompt.at_most(50_000)
    assert not found.prompt.tokenized


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [5]}]}, "messages[0].content[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
            "messages[0].content[0].text",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0].image_url",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": 1}]}
                ]
            },
            "messages[0].content[0].input_audio",
        ),
        ({"messages": [USER, {"role": "assistant", "tool_calls": {}}]}, "messages[1].tool_calls"),
        ({"messages": [{"role": "user", "content": "x", "name": 7}]}, "messages[0].name"),
        (_body(max_tokens=0), "max_tokens"),
        (_body(max_tokens="5"), "max_tokens"),
        (_body(max_completion_tokens=True), "max_completion_tokens"),
        (_body(tools={}), "tools"),
        (_body(tools=["f"]), "tools"),
        (_body(tool_choice="sometimes"), "tool_choice"),
        (_body(response_format={"type": "yaml"}), "response_format"),
        (_body(response_format="json"), "response_format"),
        (_body(stream="yes"), "stream"),
        (_body(modalities="audio"), "modalities"),
        (_body(modalities=["video"]), "modalities"),
        (_body(modalities=[["audio"]]), "modalities"),
        (_body(response_format={"type": {}}), "response_format"),
        (_body(tool_choice=["auto"]), "tool_choice"),
    ],
)
def test_malformed_bodies_name_the_param(
    counter: TokenCounter, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        inspect(body, {}, counter)
    assert caught.value.param == param
    assert param in caught.value.message
    assert caught.value.status == 400


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.sampled_from(["text", "image_url", "user", "input_audio", "file", "function"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "role",
                    "content",
                    "type",
                    "text",
                    "image_url",
                    "url",
                    "input_audio",
                    "data",
                    "file",
                    "tool_calls",
                    "function",
                    "name",
                    "arguments",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    messages=json_values,
    extra=st.dictionaries(
        st.sampled_from(
            [
                "tools",
                "tool_choice",
                "response_format",
                "stream",
                "max_tokens",
                "modalities",
                "audio",
            ]
        ),
        json_values,
        max_size=3,
    ),
)
def test_any_body_is_features_or_invalid_request(
    counter: TokenCounter, messages: Any, extra: dict[str, Any]
) -> None:
    try:
        found = inspect({"messages": messages, **extra}, {}, counter)
    except InvalidRequest as error:
        assert error.param
    else:
        assert found.prompt.lower <= found.prompt.exact() <= found.prompt.upper
