"""Translation between the APIs clients speak and chat completions, which every backend speaks.

Pure functions of data: a request in, a chat request out; a chat completion in, a Response or
a Message out; chat chunks in, stream events out (a state machine per stream). The front
doors call these; nothing here does I/O.
"""

from router.core.translate.chat import ChatRequest, ChatStream
from router.core.translate.errors import (
    UnsupportedFeature,
    anthropic_error,
    anthropic_error_type,
    response_error,
    responses_error_event,
)
from router.core.translate.messages_in import messages_to_chat
from router.core.translate.messages_out import chat_to_message
from router.core.translate.messages_stream import MessagesStream
from router.core.translate.responses_in import input_items, responses_to_chat
from router.core.translate.responses_out import chat_to_response, items_to_store
from router.core.translate.responses_stream import ResponsesStream
from router.core.translate.sse import encode_event, encode_events
from router.core.translate.usage import (
    MessagesStreamUsage,
    messages_usage,
    responses_usage,
    usage_from_chat,
    usage_from_messages,
    usage_from_responses,
    usage_from_responses_event,
)

__all__ = [
    "ChatRequest",
    "ChatStream",
    "MessagesStream",
    "MessagesStreamUsage",
    "ResponsesStream",
    "UnsupportedFeature",
    "anthropic_error",
    "anthropic_error_type",
    "chat_to_message",
    "chat_to_response",
    "encode_event",
    "encode_events",
    "input_items",
    "items_to_store",
    "messages_to_chat",
    "messages_usage",
    "response_error",
    "responses_error_event",
    "responses_to_chat",
    "responses_usage",
    "usage_from_chat",
    "usage_from_messages",
    "usage_from_responses",
    "usage_from_responses_event",
]
