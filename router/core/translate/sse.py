"""Stream events as server-sent events: both APIs name each event after its `type`."""

from __future__ import annotations

import functools

import orjson

from router.types import JSONObject


@functools.cache
def _head(kind: str) -> bytes:
    """`event: <type>` and the start of the data line; the types are a small fixed set."""
    return b"event: %s\ndata: " % kind.encode()


def encode_event(event: JSONObject) -> bytes:
    """`event: <type>` and `data: <json>`, as the openai and anthropic SDKs read them."""
    return _head(event["type"]) + orjson.dumps(event) + b"\n\n"


def encode_events(events: list[JSONObject]) -> bytes:
    """Events that became ready together, as one write."""
    if len(events) == 1:
        return encode_event(events[0])
    parts: list[bytes] = []
    for event in events:
        parts += (_head(event["type"]), orjson.dumps(event), b"\n\n")
    return b"".join(parts)
