"""Anthropic Messages <-> chat completions, as data: a request in, a chat request out; a chat
completion in, a Message out, checked with the anthropic SDK's own types."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from pydantic import TypeAdapter

from router.core.translate import UnsupportedFeature, chat_to_message, messages_to_chat
from router.errors import InvalidRequest, UpstreamFailed
from tests.unit import openai_spec
from tests.unit.chat_fixtures import MODEL, Call, Reply, completion, usage_object

CREATE = TypeAdapter(MessageCreateParamsNonStreaming)
WEATHER = {
    "name": "weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CHAT_WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": WEATHER["input_schema"],
        "description": "Weather in a city",
    },
}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def _request(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"model": "auto", "max_tokens": 256, "messages": messages, **fields}


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "system as text blocks, string content, sampling, stop sequences, user id",
        _request(
            [{"role": "user", "content": "Hi"}],
            system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            temperature=0.3,
            top_p=0.8,
            top_k=40,
            stop_sequences=["END"],
            metadata={"user_id": "u-1"},
        ),
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "Be brief.\nBe kind."},
                {"role": "user", "content": "Hi"},
            ],
            "max_tokens": 256,
            "stop": ["END"],
            "temperature": 0.3,
            "top_p": 0.8,
            "top_k": 40,
            "user": "u-1",
        },
    ),
    (
        "images (base64, url) and documents (pdf, plain text)",
        _request(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare."},
                        {"type": "image", "source": PNG},
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                        {
                            "type": "document",
                            "title": "a.pdf",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBE",
                            },
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "text",
                                "media_type": "text/plain",
                                "data": "Notes.",
                            },
                        },
                    ],
                }
            ]
        ),
        {
            "model": "auto",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare."},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                        {
                            "type": "file",
                            "file": {
                                "file_data": "data:application/pdf;base64,JVBE",
                                "filename": "a.pdf",
                            },
                        },
                        {"type": "text", "text": "Notes."},
                    ],
                }
            ],
            "max_tokens": 256,
        },
    ),
    (
        "a tool round: tool_use, tool_result with error and image, thinking dropped",
        _request(
            [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "weather",
                            "input": {"city": "Paris"},
                        },
                        {
                            "type": "tool_use",
                            "id": "toolu_2",
                            "name": "weather",
                            "input": {"city": "Rome"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [
                                {"type": "text", "text": "sunny"},
                                {"type": "image", "source": PNG},
                            ],
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "content": "no station",
                            "is_error": True,
                        },
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
            tools=[WEATHER],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            thinking={"type": "enabled", "budget_tokens": 1024},
        ),
        {
            "model": "auto",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "toolu_2",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no station"},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
            "max_tokens": 256,
            "tools": [CHAT_WEATHER],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        },
    ),
    (
        "tool_choice tool, structured output, effort, stream",
        _request(
            [{"role": "user", "content": "Hi"}],
            tools=[WEATHER],
            tool_choice={"type": "tool", "name": "weather"},
            output_config={
                "format": {"type": "json_schema", "schema": {"type": "object"}},
                "effort": "low",
            },
            stream=True,
        ),
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 256,
            "tools": [CHAT_WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": {"type": "object"}},
            },
            "reasoning_effort": "low",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
]


@pytest.mark.parametrize(
    ("request_body", "chat"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_request_translation(request_body: dict[str, Any], chat: dict[str, Any]) -> None:
    CREATE.validate_python({key: value for key, value in request_body.items() if key != "stream"})
    translated = messages_to_chat(request_body)
    assert translated.for_chat_backend() == chat
    chat_without_top_k = {key: value for key, value in chat.items() if key != "top_k"}
    openai_spec.assert_valid("CreateChatCompletionRequest", chat_without_top_k)


@pytest.mark.parametrize(("choice", "chat_choice"), [("auto", "auto"), ("none", "none")])
def test_tool_choice_auto_and_none(choice: str, chat_choice: str) -> None:
    body = _request(
        [{"role": "user", "content": "Hi"}], tools=[WEATHER], tool_choice={"type": choice}
    )
    assert messages_to_chat(body).body["tool_choice"] == chat_choice


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0]"),
        ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]}, "tools[0]"),
        ({"container": "container_1"}, "container"),
        ({"mcp_servers": [{"type": "url", "url": "https://x.test", "name": "x"}]}, "mcp_servers"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages[0].content[0].source",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "Find it."},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "server_tool_use",
                                "id": "s",
                                "name": "web_search",
                                "input": {},
                            }
                        ],
                    },
                ]
            },
            "messages[1].content[0]",
        ),
    ],
)
def test_server_tools_and_state_are_refused_for_a_chat_backend(
    fields: dict[str, Any], param: str
) -> None:
    translated = messages_to_chat(_request([{"role": "user", "content": "Hi"}]) | fields)
    with pytest.raises(UnsupportedFeature) as raised:
        translated.for_chat_backend()
    assert (raised.value.status, raised.value.param) == (400, param)
    assert "Messages API natively" in raised.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}, "max_tokens"),
        (_request([]), "messages"),
        (_request([{"role": "robot", "content": "Hi"}]), "messages[0].role"),
        (
            _request([{"role": "user", "content": [{"type": "text"}]}]),
            "messages[0].content[0].text",
        ),
        (
            _request([{"role": "user", "content": "Hi"}], system=[{"type": "image"}]),
            "system[0].type",
        ),
        (
            _request([{"role": "user", "content": "Hi"}], tools=[{"name": "f"}]),
            "tools[0].input_schema",
        ),
        (
            _request(
                [{"role": "user", "content": "Hi"}], tools=[WEATHER], tool_choice={"type": "some"}
            ),
            "tool_choice.type",
        ),
    ],
)
def test_malformed_requests_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        messages_to_chat(body)
    assert (raised.value.status, raised.value.param) == (400, param)


REQUEST = _request(
    [{"role": "user", "content": "Weather?"}], tools=[WEATHER], stop_sequences=["END", "STOP"]
)


def _message(reply: Reply, request: dict[str, Any] = REQUEST) -> dict[str, Any]:
    message = chat_to_message(completion(reply), request, message_id="msg_m1")
    Message.model_validate(message)
    return message


def test_text_reply() -> None:
    message = _message(
        Reply(text=["Sunny."], usage=usage_object(prompt=120, completion=9, cached=100))
    )
    assert message == {
        "id": "msg_m1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "Sunny."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 9,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0,
        },
    }


def test_tool_calls_become_tool_use_blocks_with_parsed_input() -> None:
    reply = Reply(
        text=["Checking."],
        calls=[Call("call_a", "weather", ['{"city":"Paris"}']), Call("call_b", "weather", [""])],
        finish="tool_calls",
    )
    content = _message(reply)["content"]
    assert content[1:] == [
        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "weather", "input": {}},
    ]
    assert _message(reply)["stop_reason"] == "tool_use"


def test_tool_calls_with_finish_stop_still_stop_for_tool_use() -> None:
    reply = Reply(calls=[Call("call_a", "weather", ["{}"])], finish="stop")
    assert _message(reply)["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish", "matched", "reason", "sequence"),
    [
        ("stop", None, "end_turn", None),
        ("stop", "STOP", "stop_sequence", "STOP"),
        ("stop", 128001, "end_turn", None),
        ("stop", "OTHER", "end_turn", None),
        ("length", None, "max_tokens", None),
        ("content_filter", None, "refusal", None),
        (None, None, "end_turn", None),
    ],
)
def test_stop_reasons(finish: str | None, matched: Any, reason: str, sequence: str | None) -> None:
    message = _message(Reply(text=["Hi"], finish=finish, stop_reason=matched))
    assert (message["stop_reason"], message["stop_sequence"]) == (reason, sequence)


def test_reasoning_is_a_thinking_block_only_when_thinking_was_enabled() -> None:
    reply = Reply(reasoning=["Let me think."], text=["42"])
    assert [block["type"] for block in _message(reply)["content"]] == ["text"]
    thinking = REQUEST | {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    content = _message(reply, thinking)["content"]
    assert content[0] == {"type": "thinking", "thinking": "Let me think.", "signature": ""}


def test_arguments_that_are_not_an_object_are_an_upstream_failure() -> None:
    reply = Reply(calls=[Call("call_a", "weather", ['{"city": "Par'])], finish="tool_calls")
    with pytest.raises(UpstreamFailed, match="'weather'"):
        chat_to_message(completion(reply), REQUEST, message_id="msg_m1")


def test_missing_usage_uses_the_router_count() -> None:
    from router.core.model import Usage

    counted = Usage(prompt_tokens=30, completion_tokens=5, counted=True)
    message = chat_to_message(
        completion(Reply(text=["Hi"], usage=None)), REQUEST, message_id="msg_m1", usage=counted
    )
    assert message["usage"]["input_tokens"] == 30 and message["usage"]["output_tokens"] == 5
