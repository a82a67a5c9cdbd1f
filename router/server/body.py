"""Read a request body within bounds: size, JSON validity and nesting depth."""

from __future__ import annotations

import orjson
from starlette.requests import ClientDisconnect, Request

from router.errors import InvalidRequest, PayloadTooLarge
from router.types import JSONObject


async def read_json_body(request: Request, max_bytes: int, max_depth: int) -> JSONObject:
    """The parsed JSON object, or a 413/400 that says which bound was hit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(
            f"The request body is {declared} bytes; the limit is {max_bytes}. Send fewer or "
            "smaller messages."
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"The request body exceeds the {max_bytes}-byte limit. Send fewer or "
                    "smaller messages."
                )
            chunks.append(chunk)
    except ClientDisconnect:
        gone = InvalidRequest(
            "The client closed the connection before the whole body arrived.",
            code="client_disconnected",
        )
        gone.status = 499  # nginx's "client closed request": nobody reads this answer
        raise gone from None
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "The request body is not valid JSON. Send a JSON object as in OpenAI's chat API.",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    if _depth_exceeds(body, max_depth):
        raise PayloadTooLarge(
            f"The request body nests deeper than {max_depth} levels. Flatten it.",
            code="json_too_deep",
        )
    return body


def _depth_exceeds(value: object, limit: int) -> bool:
    """Iterative, so a hostile body cannot exhaust the Python stack."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend(
                (child, depth + 1) for child in node.values() if isinstance(child, dict | list)
            )
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False
