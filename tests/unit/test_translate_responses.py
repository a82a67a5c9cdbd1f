"""Responses API <-> chat completions, as data: a request in, a chat request out; a chat
completion in, a Response out, checked against OpenAI's spec and the openai SDK's types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from router.core.translate import (
    UnsupportedFeature,
    chat_to_response,
    items_to_store,
    responses_to_chat,
)
from router.errors import InvalidRequest, UpstreamFailed
from tests.unit import openai_spec
from tests.unit.chat_fixtures import MODEL, Call, Reply, completion, usage_object

WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
CHAT_WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": WEATHER["parameters"],
        "strict": False,
    },
}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "string input, instructions",
        {"model": "auto", "input": "Hi", "instructions": "Be brief."},
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
        },
    ),
    (
        "message items with text, image and file parts; developer as system",
        {
            "model": "auto",
            "input": [
                {"type": "message", "role": "developer", "content": "Answer in French."},
                _user(
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "original",
                    },
                    {
                        "type": "input_file",
                        "file_data": "data:application/pdf;base64,JVBE",
                        "filename": "a.pdf",
                    },
                    {"type": "input_file", "file_id": "file-1"},
                ),
            ],
        },
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "Answer in French."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x.test/a.png", "detail": "low"},
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AA", "detail": "high"},
                        },
                        {
                            "type": "file",
                            "file": {
                                "file_data": "data:application/pdf;base64,JVBE",
                                "filename": "a.pdf",
                            },
                        },
                        {"type": "file", "file": {"file_id": "file-1"}},
                    ],
                },
            ],
        },
    ),
    (
        "a tool round: earlier output items, function calls and their outputs",
        {
            "model": "auto",
            "input": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "text": "Checking.",
                            "annotations": [],
                            "logprobs": [],
                        }
                    ],
                },
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "weather",
                    "arguments": '{"city":"Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "weather",
                    "arguments": '{"city":"Rome"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "rain"}],
                },
            ],
            "tools": [WEATHER],
        },
        {
            "model": "auto",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "rain"},
            ],
            "tools": [CHAT_WEATHER],
        },
    ),
    (
        "settings: tool_choice, json_schema, limits, sampling, stream, reasoning, user",
        {
            "model": "auto",
            "input": "Hi",
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "weather"},
            "text": {
                "format": {"type": "json_schema", "name": "reply", "schema": SCHEMA, "strict": True}
            },
            "max_output_tokens": 300,
            "temperature": 0.2,
            "top_p": 0.9,
            "parallel_tool_calls": False,
            "stream": True,
            "reasoning": {"effort": "low"},
            "user": "u-1",
            "metadata": {"team": "a"},
            "store": False,
            "truncation": "disabled",
        },
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [CHAT_WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True},
            },
            "max_tokens": 300,
            "temperature": 0.2,
            "top_p": 0.9,
            "parallel_tool_calls": False,
            "stream": True,
            "stream_options": {"include_usage": True},
            "reasoning_effort": "low",
            "user": "u-1",
        },
    ),
    (
        "json_object and allowed_tools",
        {
            "model": "auto",
            "input": "Hi",
            "tools": [WEATHER],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "weather"}],
            },
            "text": {"format": {"type": "json_object"}},
        },
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [CHAT_WEATHER],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "weather"}}],
                },
            },
            "response_format": {"type": "json_object"},
        },
    ),
]


@pytest.mark.parametrize(
    ("request_body", "chat"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_request_translation(request_body: dict[str, Any], chat: dict[str, Any]) -> None:
    translated = responses_to_chat(request_body)
    assert translated.for_chat_backend() == chat
    assert not translated.needs_native_api


@pytest.mark.parametrize(
    ("request_body", "chat"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_requests_in_and_out_follow_the_spec(
    request_body: dict[str, Any], chat: dict[str, Any]
) -> None:
    openai_spec.assert_valid("CreateResponse", request_body)
    openai_spec.assert_valid("CreateChatCompletionRequest", chat)


def test_history_goes_after_instructions_and_before_input() -> None:
    first = {"model": "auto", "input": "My name is Ada."}
    answer = chat_to_response(
        completion(Reply(text=["Hello Ada."])), first, response_id="resp_1", created_at=1
    )
    history = items_to_store(first, answer)
    second = {
        "model": "auto",
        "input": "What is my name?",
        "instructions": "Be brief.",
        "previous_response_id": "resp_1",
    }
    assert responses_to_chat(second, history).body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    ]


HOSTED_TOOLS = [
    {"type": "web_search"},
    {"type": "web_search_preview"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {
        "type": "computer_use_preview",
        "display_width": 1024,
        "display_height": 768,
        "environment": "linux",
    },
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "image_generation"},
    {"type": "mcp", "server_label": "x", "server_url": "https://x.test"},
    {"type": "local_shell"},
    {"type": "shell"},
    {"type": "apply_patch"},
    {"type": "custom", "name": "grammar"},
]


@pytest.mark.parametrize("tool", HOSTED_TOOLS, ids=lambda tool: tool["type"])
def test_hosted_tools_are_refused_for_a_chat_backend_never_dropped(tool: dict[str, Any]) -> None:
    translated = responses_to_chat({"model": "auto", "input": "Hi", "tools": [WEATHER, tool]})
    assert translated.needs_native_api
    assert tool in translated.body["tools"], "inspection must still see the tool"
    with pytest.raises(UnsupportedFeature) as raised:
        translated.for_chat_backend()
    error = raised.value
    assert (error.status, error.code, error.param) == (400, "unsupported_feature", "tools[1]")
    assert repr(tool["type"]) in error.message and "natively" in error.message


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        (
            {"input": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]},
            "input[0].type",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": "Hi", "background": True}, "background"),
        ({"input": "Hi", "conversation": "conv_1"}, "conversation"),
        ({"input": "Hi", "prompt": {"id": "pmpt_1"}}, "prompt"),
        (
            {"input": [_user({"type": "input_image", "file_id": "file-1", "detail": "auto"})]},
            "input[0].content[0]",
        ),
        (
            {"input": [_user({"type": "input_file", "file_url": "https://x.test/a.pdf"})]},
            "input[0].content[0].file_url",
        ),
        (
            {"input": "Hi", "tools": [WEATHER], "tool_choice": {"type": "web_search_preview"}},
            "tool_choice",
        ),
    ],
)
def test_state_and_hosted_items_are_refused(request_body: dict[str, Any], param: str) -> None:
    translated = responses_to_chat({"model": "auto", **request_body})
    with pytest.raises(UnsupportedFeature) as raised:
        translated.for_chat_backend()
    assert raised.value.param == param


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"input": 7}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": [_user({"type": "input_video", "url": "x"})]}, "input[0].content[0].type"),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            "input[0].output",
        ),
        ({"input": "Hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": "Hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "Hi", "instructions": ["x"]}, "instructions"),
    ],
)
def test_malformed_requests_name_the_parameter(request_body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        responses_to_chat({"model": "auto", **request_body})
    assert not isinstance(raised.value, UnsupportedFeature)
    assert (raised.value.status, raised.value.param) == (400, param)


REQUEST = {"model": "auto", "input": "Weather?", "tools": [WEATHER], "metadata": {"app": "t"}}


def _response(reply: Reply, request: dict[str, Any] = REQUEST) -> dict[str, Any]:
    response = chat_to_response(
        completion(reply), request, response_id="resp_r1", created_at=1_700_000_000
    )
    openai_spec.assert_valid("Response", response)
    Response.model_validate(response)
    return response


def test_text_reply_is_a_completed_response_echoing_the_request() -> None:
    response = _response(Reply(text=["Sunny ", "today."]))
    assert response["status"] == "completed" and response["completed_at"] == 1_700_000_000
    assert response["output"] == [
        {
            "type": "message",
            "id": "msg_r1_0",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Sunny today.", "annotations": [], "logprobs": []}
            ],
        }
    ]
    assert response["model"] == MODEL and response["metadata"] == {"app": "t"}
    assert response["tools"] == [WEATHER] and response["tool_choice"] == "auto"
    assert Response.model_validate(response).output_text == "Sunny today."


def test_tool_calls_reasoning_and_usage() -> None:
    reply = Reply(
        text=["Let me check."],
        reasoning=["The user wants weather."],
        calls=[
            Call("call_a", "weather", ['{"city":"Paris"}']),
            Call("call_b", "weather", ['{"city":"Rome"}']),
        ],
        finish="tool_calls",
        usage=usage_object(prompt=120, completion=40, cached=100, reasoning=12),
    )
    response = _response(reply)
    assert [item["type"] for item in response["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert response["output"][0]["content"] == [
        {"type": "reasoning_text", "text": "The user wants weather."}
    ]
    assert response["output"][2] == {
        "type": "function_call",
        "id": "fc_r1_2",
        "call_id": "call_a",
        "name": "weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    assert response["usage"] == {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 160,
    }


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_cut_replies_are_incomplete(finish: str, reason: str) -> None:
    response = _response(Reply(text=["Once upon"], finish=finish))
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": reason}
    assert response["completed_at"] is None
    assert response["output"][0]["status"] == "incomplete"


def test_router_counted_usage_fills_in_when_the_backend_reports_none() -> None:
    from router.core.model import Usage

    reply = completion(Reply(text=["Hi"], usage=None))
    response = chat_to_response(
        reply,
        REQUEST,
        response_id="resp_x",
        created_at=1,
        usage=Usage(prompt_tokens=9, completion_tokens=2, counted=True),
    )
    assert response["usage"]["input_tokens"] == 9 and response["usage"]["total_tokens"] == 11
    assert "usage" not in chat_to_response(reply, REQUEST, response_id="resp_x", created_at=1)


def test_a_reply_without_choices_is_an_upstream_failure() -> None:
    with pytest.raises(UpstreamFailed):
        chat_to_response({"object": "error"}, REQUEST, response_id="resp_x", created_at=1)


def test_structured_output_settings_are_echoed_for_responses_parse() -> None:
    request = {
        "model": "auto",
        "input": "Answer.",
        "text": {
            "format": {"type": "json_schema", "name": "reply", "schema": SCHEMA, "strict": True}
        },
    }
    response = _response(Reply(text=['{"answer": "42"}']), request)
    assert response["text"]["format"]["name"] == "reply"
