"""Stream events as server-sent events: both APIs name each event after its `type`."""

from __future__ import annotations

import orjson

from router.types import JSONObject


def encode_event(event: JSONObject) -> bytes:
    """`event: <type>` and `data: <json>`, as the openai and anthropic SDKs read them."""
    return b"event: %s\ndata: %s\n\n" % (str(event["type"]).encode(), orjson.dumps(event))


def encode_events(events: list[JSONObject]) -> bytes:
    """Events that become ready together, as one write."""
    return b"".join(encode_event(event) for event in events)
