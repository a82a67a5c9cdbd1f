"""Routing features of Responses and Messages requests: translate to chat, then the chat
inspection the policy engine already reads. What the engine needs survives the translation."""

from __future__ import annotations

from router.core.inspect import inspect
from router.core.model import Modality
from router.core.tokens import TokenCounter
from router.core.translate import messages_to_chat, responses_to_chat

TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def test_responses_request_features(counter: TokenCounter) -> None:
    body = {
        "model": "auto",
        "instructions": "Be brief.",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Read these."},
                    {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
                    {
                        "type": "input_file",
                        "file_data": "data:application/pdf;base64,JVBE",
                        "filename": "a.pdf",
                    },
                ],
            }
        ],
        "tools": [TOOL, {**TOOL, "name": "g"}],
        "tool_choice": "required",
        "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}},
        "max_output_tokens": 700,
        "stream": True,
    }
    features = inspect(responses_to_chat(body).body, {"x-router-prefer": "cost"}, counter)
    assert features.input_modalities == {Modality.TEXT, Modality.IMAGE, Modality.FILE}
    assert features.output_modalities == {Modality.TEXT}
    assert (features.tools, features.tool_choice, features.json_schema) == (2, "required", True)
    assert (features.max_output_tokens, features.stream, features.prefer) == (700, True, "cost")
    assert features.message_count == 2


def test_instructions_and_input_count_as_the_same_chat_prompt(counter: TokenCounter) -> None:
    translated = responses_to_chat({"model": "auto", "instructions": "Be brief.", "input": "Hi"})
    chat = {
        "model": "auto",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    }
    assert (
        inspect(translated.body, {}, counter).prompt.exact()
        == inspect(chat, {}, counter).prompt.exact()
    )


def test_hosted_image_generation_asks_for_image_output(counter: TokenCounter) -> None:
    translated = responses_to_chat(
        {"model": "auto", "input": "Draw a cat.", "tools": [{"type": "image_generation"}]}
    )
    features = inspect(translated.body, {}, counter)
    assert features.image_generation and Modality.IMAGE in features.output_modalities
    assert translated.needs_native_api


def test_hosted_search_counts_as_a_tool(counter: TokenCounter) -> None:
    translated = responses_to_chat(
        {"model": "auto", "input": "News?", "tools": [{"type": "web_search"}]}
    )
    assert inspect(translated.body, {}, counter).tools == 1


def test_messages_request_features(counter: TokenCounter) -> None:
    body = {
        "model": "auto",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare."},
                    {"type": "image", "source": PNG},
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBE",
                        },
                    },
                ],
            }
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "stream": True,
    }
    features = inspect(messages_to_chat(body).body, {}, counter)
    assert features.input_modalities == {Modality.TEXT, Modality.IMAGE, Modality.FILE}
    assert (features.tools, features.tool_choice, features.json_schema) == (1, "required", True)
    assert (features.max_output_tokens, features.stream) == (1024, True)
