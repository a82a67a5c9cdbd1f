"""The translated bodies and SSE bytes, read by the real openai and anthropic clients (over an
in-memory HTTP transport): what their users' code will see once a front door serves them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest
from pydantic import BaseModel

from router.core.translate import (
    MessagesStream,
    ResponsesStream,
    anthropic_error,
    chat_to_message,
    chat_to_response,
    encode_events,
)
from router.errors import BudgetExceeded, UpstreamTimeout
from tests.unit.chat_fixtures import Call, Reply, chunks, completion

Handler = Callable[[httpx.Request], httpx.Response]


def _serve(reply: Reply, render: Callable[[dict[str, Any], Reply], httpx.Response]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return render(orjson.loads(request.content), reply)

    return handle


def _sse(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def _responses(request: dict[str, Any], reply: Reply, cut: bool = False) -> httpx.Response:
    if not request.get("stream"):
        body = chat_to_response(completion(reply), request, response_id="resp_k1", created_at=1.0)
        return httpx.Response(200, json=body)
    machine = ResponsesStream(request, response_id="resp_k1", created_at=1.0)
    stream = chunks(reply)
    events = [event for chunk in stream[: 3 if cut else None] for event in machine.feed(chunk)]
    error = UpstreamTimeout("The backend stopped sending; retry.") if cut else None
    return _sse(encode_events(events + machine.finish(error=error)))


def _messages(request: dict[str, Any], reply: Reply, cut: bool = False) -> httpx.Response:
    if not request.get("stream"):
        return httpx.Response(
            200, json=chat_to_message(completion(reply), request, message_id="msg_k1")
        )
    machine = MessagesStream(request, message_id="msg_k1", input_tokens=30)
    stream = chunks(reply)
    events = [event for chunk in stream[: 3 if cut else None] for event in machine.feed(chunk)]
    error = UpstreamTimeout("The backend stopped sending; retry.") if cut else None
    return _sse(encode_events(events + machine.finish(error=error)))


def _openai(handler: Handler) -> openai.OpenAI:
    transport = httpx.MockTransport(handler)
    return openai.OpenAI(
        api_key="k", base_url="http://router.test/v1", http_client=httpx.Client(transport=transport)
    )


def _anthropic(handler: Handler) -> anthropic.Anthropic:
    """The anthropic client runs on httpx2, a fork of httpx with the same transport API."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        answer = handler(httpx.Request(request.method, str(request.url), content=request.read()))
        return httpx2.Response(
            answer.status_code, content=answer.read(), headers=dict(answer.headers)
        )

    client = httpx2.Client(transport=httpx2.MockTransport(handle))
    return anthropic.Anthropic(
        api_key="k", base_url="http://router.test", http_client=client, max_retries=0
    )


WEATHER_TOOL = {
    "type": "function",
    "name": "weather",
    "parameters": {"type": "object"},
    "strict": False,
}
TOOL_REPLY = Reply(
    text=["Checking ", "now."],
    calls=[Call("call_a", "weather", ['{"city":', '"Paris"}'])],
    finish="tool_calls",
)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_reads_responses(stream: bool) -> None:
    client = _openai(_serve(TOOL_REPLY, _responses))
    if stream:
        with client.responses.stream(
            model="auto", input="Weather?", tools=[WEATHER_TOOL]
        ) as events:
            deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
            response = events.get_final_response()
        assert deltas == ["Checking ", "now."]
    else:
        response = client.responses.create(model="auto", input="Weather?", tools=[WEATHER_TOOL])
    assert response.output_text == "Checking now."
    call = response.output[1]
    assert call.type == "function_call" and (call.call_id, call.arguments) == (
        "call_a",
        '{"city":"Paris"}',
    )
    assert response.usage is not None and response.usage.total_tokens == 32


class Answer(BaseModel):
    answer: str


def test_openai_client_parses_structured_output() -> None:
    client = _openai(_serve(Reply(text=['{"answer": ', '"42"}']), _responses))
    parsed = client.responses.parse(model="auto", input="Answer.", text_format=Answer)
    assert parsed.output_parsed == Answer(answer="42")


def test_openai_client_sees_a_cut_stream_as_failed() -> None:
    client = _openai(
        _serve(Reply(text=["One ", "two ", "three"]), lambda r, p: _responses(r, p, cut=True))
    )
    events = list(client.responses.create(model="auto", input="Count.", stream=True))
    assert events[-1].type == "response.failed"
    assert (
        events[-1].response.error is not None and events[-1].response.error.code == "server_error"
    )


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_client_reads_messages(stream: bool) -> None:
    client = _anthropic(_serve(TOOL_REPLY, _messages))
    fields: dict[str, Any] = {
        "model": "auto",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
    }
    if stream:
        with client.messages.stream(**fields) as events:
            text = "".join(events.text_stream)
            message = events.get_final_message()
        assert text == "Checking now."
    else:
        message = client.messages.create(**fields)
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Paris"}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (25, 7)


def test_anthropic_client_raises_on_a_cut_stream() -> None:
    client = _anthropic(
        _serve(Reply(text=["One ", "two ", "three"]), lambda r, p: _messages(r, p, cut=True))
    )
    fields: dict[str, Any] = {
        "model": "auto",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Count."}],
    }
    with (
        pytest.raises(anthropic.APIStatusError, match="stopped sending"),
        client.messages.stream(**fields) as events,
    ):
        for _ in events:
            pass


def test_anthropic_client_reads_the_error_body() -> None:
    error = BudgetExceeded("The key's daily budget is spent; raise it at /admin/keys.")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(error.status, json=anthropic_error(error, "req_1"))

    with pytest.raises(anthropic.RateLimitError) as raised:
        _anthropic(handler).messages.create(
            model="auto", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": error.message},
        "request_id": "req_1",
    }
    assert error.message in str(raised.value)
