"""Token usage in each API's own shape, to and from the router's `Usage`.

The router's Usage counts every prompt token in `prompt_tokens` (cached ones included, priced
at the cached rate) and every generated token in `completion_tokens` (reasoning included).
The APIs differ in what they count where:
- chat completions and Responses: input includes cached tokens, output includes reasoning;
- Anthropic Messages: `input_tokens` excludes cache reads and cache writes, which are separate
  counts; the router adds them back (a cache write is priced at the plain input rate).
A missing or malformed usage object reads as None, so the caller counts tokens itself.
"""

from __future__ import annotations

from typing import Any

from router.core.model import Usage
from router.types import JSONObject

_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    return None


def _detail(usage: JSONObject, details: str, name: str) -> int:
    nested = usage.get(details)
    found = _count(nested.get(name)) if isinstance(nested, dict) else None
    return found or 0


def _usage(prompt: int, completion: int, cached: int, reasoning: int) -> Usage:
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(cached, prompt),
        reasoning_tokens=min(reasoning, completion),
    )


def usage_from_chat(usage: Any) -> Usage | None:
    """A chat completion's (or final chunk's) `usage` object."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    cached = _detail(usage, "prompt_tokens_details", "cached_tokens")
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    return _usage(prompt, completion, cached, reasoning)


def usage_from_responses(usage: Any) -> Usage | None:
    """A Response's `usage` object."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if prompt is None or completion is None:
        return None
    cached = _detail(usage, "input_tokens_details", "cached_tokens")
    reasoning = _detail(usage, "output_tokens_details", "reasoning_tokens")
    return _usage(prompt, completion, cached, reasoning)


def usage_from_messages(usage: Any) -> Usage | None:
    """An Anthropic Message's `usage` object (or a stream's, merged by MessagesStreamUsage)."""
    if not isinstance(usage, dict):
        return None
    uncached, completion = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if uncached is None or completion is None:
        return None
    cache_read = _count(usage.get("cache_read_input_tokens")) or 0
    cache_write = _count(usage.get("cache_creation_input_tokens")) or 0
    thinking = _detail(usage, "output_tokens_details", "thinking_tokens")
    return _usage(uncached + cache_read + cache_write, completion, cache_read, thinking)


def responses_usage(usage: Usage) -> JSONObject:
    """The router's Usage as a Response's `usage`."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def messages_usage(usage: Usage) -> JSONObject:
    """The router's Usage as an Anthropic Message's `usage` (input excludes cache reads)."""
    shaped: JSONObject = {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }
    if usage.reasoning_tokens:
        shaped["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return shaped


class MessagesStreamUsage:
    """Usage of a native Anthropic stream: `message_start` carries the input counts and
    `message_delta` the cumulative output (and, lately, final input) counts."""

    __slots__ = ("_merged",)

    def __init__(self) -> None:
        self._merged: JSONObject = {}

    def observe(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            found = message.get("usage") if isinstance(message, dict) else None
        elif kind == "message_delta":
            found = event.get("usage")
        else:
            return
        if isinstance(found, dict):
            self._merged.update((key, value) for key, value in found.items() if value is not None)

    @property
    def usage(self) -> Usage | None:
        return usage_from_messages(self._merged)


def usage_from_responses_event(event: Any) -> Usage | None:
    """Usage of a native Responses stream, read off its final (completed, incomplete or
    failed) event; None for every other event."""
    if not isinstance(event, dict):
        return None
    response = event.get("response")
    if event.get("type") not in _FINAL_EVENTS or not isinstance(response, dict):
        return None
    return usage_from_responses(response.get("usage"))
