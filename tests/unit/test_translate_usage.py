"""Usage read from each API's own shape into the router's Usage (so any API can be priced),
and router errors rendered as Anthropic's error body and the Responses stream's events."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import ErrorResponse, Message, MessageDeltaUsage
from openai.types.responses import ResponseErrorEvent, ResponseUsage

from router.core.cost import actual_cost
from router.core.model import Price, Usage
from router.core.translate import (
    MessagesStreamUsage,
    anthropic_error,
    messages_usage,
    response_error,
    responses_error_event,
    responses_usage,
    usage_from_chat,
    usage_from_messages,
    usage_from_responses,
    usage_from_responses_event,
)
from router.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    InvalidRequest,
    NoBackendAvailable,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RouterError,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
)
from tests.unit import openai_spec

FULL = Usage(prompt_tokens=1200, completion_tokens=300, cached_tokens=1000, reasoning_tokens=120)


def test_chat_usage() -> None:
    chat = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000},
        "completion_tokens_details": {"reasoning_tokens": 120},
    }
    assert usage_from_chat(chat) == FULL
    assert usage_from_chat({"prompt_tokens": 5, "completion_tokens": 2}) == Usage(5, 2)


def test_responses_usage_round_trip_and_shape() -> None:
    shaped = responses_usage(FULL)
    ResponseUsage.model_validate(shaped)
    openai_spec.assert_valid("ResponseUsage", shaped)
    assert (
        shaped["input_tokens"] == 1200
        and shaped["output_tokens_details"]["reasoning_tokens"] == 120
    )
    assert usage_from_responses(shaped) == FULL


def test_anthropic_input_tokens_exclude_cache_reads_and_writes() -> None:
    native = {
        "input_tokens": 50,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 150,
        "output_tokens": 300,
        "output_tokens_details": {"thinking_tokens": 120},
    }
    assert usage_from_messages(native) == Usage(
        prompt_tokens=1200, completion_tokens=300, cached_tokens=1000, reasoning_tokens=120
    )
    shaped = messages_usage(FULL)
    assert shaped == {
        "input_tokens": 200,
        "output_tokens": 300,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 0,
        "output_tokens_details": {"thinking_tokens": 120},
    }
    Message.model_validate(
        {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "x",
            "content": [],
            "usage": shaped,
        }
    )
    assert usage_from_messages(shaped) == FULL


def test_every_shape_prices_the_same() -> None:
    price = Price("full", 1, 0.0, 2_000_000, 8_000_000, 500_000)
    expected = actual_cost(price, FULL)
    for usage in (
        usage_from_responses(responses_usage(FULL)),
        usage_from_messages(messages_usage(FULL)),
    ):
        assert usage is not None and actual_cost(price, usage) == expected


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "x",
        {},
        {"prompt_tokens": "5", "completion_tokens": 1},
        {"input_tokens": True, "output_tokens": 1},
    ],
)
def test_malformed_usage_reads_as_none(bad: Any) -> None:
    assert usage_from_chat(bad) is None
    assert usage_from_responses(bad) is None
    assert usage_from_messages(bad) is None


def test_details_never_exceed_their_totals() -> None:
    odd = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 99},
    }
    assert usage_from_chat(odd) == Usage(10, 5, cached_tokens=10)


def test_native_anthropic_stream_usage_merges_start_and_delta() -> None:
    meter = MessagesStreamUsage()
    start = {
        "type": "message_start",
        "message": {
            "usage": {"input_tokens": 40, "cache_read_input_tokens": 960, "output_tokens": 1}
        },
    }
    for event in (
        start,
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
        {"type": "message_delta", "usage": {"output_tokens": 77, "input_tokens": None}},
    ):
        meter.observe(event)
    MessageDeltaUsage.model_validate({"output_tokens": 77})
    assert meter.usage == Usage(prompt_tokens=1000, completion_tokens=77, cached_tokens=960)
    assert MessagesStreamUsage().usage is None


def test_native_responses_stream_usage_is_on_the_final_event() -> None:
    final = {"type": "response.completed", "response": {"usage": responses_usage(FULL)}}
    assert usage_from_responses_event(final) == FULL
    assert usage_from_responses_event({"type": "response.output_text.delta", "delta": "x"}) is None


ERRORS: list[tuple[RouterError, str, str]] = [
    (
        InvalidRequest("Invalid 'messages'.", param="messages"),
        "invalid_request_error",
        "invalid_prompt",
    ),
    (AuthenticationFailed("Unknown API key."), "authentication_error", "invalid_prompt"),
    (PermissionDenied("Admin only."), "permission_error", "invalid_prompt"),
    (NotFound("No model 'x'."), "not_found_error", "invalid_prompt"),
    (PayloadTooLarge("Body over 10 MiB."), "invalid_request_error", "invalid_prompt"),
    (BudgetExceeded("Daily budget spent."), "rate_limit_error", "rate_limit_exceeded"),
    (UpstreamFailed("Backend failed."), "api_error", "server_error"),
    (UpstreamTimeout("Backend timed out."), "timeout_error", "server_error"),
    (NoBackendAvailable("All busy; retry."), "overloaded_error", "server_error"),
    (UpstreamRejected(422, "Unprocessable."), "invalid_request_error", "invalid_prompt"),
]


@pytest.mark.parametrize(("error", "anthropic_type", "response_code"), ERRORS)
def test_error_shapes(error: RouterError, anthropic_type: str, response_code: str) -> None:
    body = anthropic_error(error, request_id="req_1")
    assert body == {
        "type": "error",
        "error": {"type": anthropic_type, "message": error.message},
        "request_id": "req_1",
    }
    ErrorResponse.model_validate(body)
    assert response_error(error) == {"code": response_code, "message": error.message}
    event = responses_error_event(error, sequence_number=4)
    assert event == {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "param": error.param,
        "sequence_number": 4,
    }
    ResponseErrorEvent.model_validate(event)
    openai_spec.assert_valid_event(event)
