"""Chat-completion chunks as the Responses API's stream events.

The sequence: `response.created`, `response.in_progress`; per output item
`response.output_item.added`, its content part added (text, refusal or reasoning text), the
deltas, the part's and the item's done events; function calls stream their arguments; then
exactly one of `response.completed`, `response.incomplete` (the backend hit the token limit or
a content filter) or `response.failed` (the stream was cut or failed), carrying the whole
Response with its usage. Every event has a `sequence_number`, counting from 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from router.core.model import Usage
from router.core.translate.chat import REASONING, REFUSAL, TEXT, TOOL, Block, ChatStream
from router.core.translate.errors import response_error
from router.core.translate.responses_out import (
    function_call_item,
    item_id,
    message_item,
    outcome,
    reasoning_item,
    refusal_part,
    response_envelope,
    text_part,
)
from router.core.translate.usage import responses_usage
from router.errors import RouterError
from router.types import JSONObject

_DELTAS = {
    REFUSAL: "response.refusal.delta",
    REASONING: "response.reasoning_text.delta",
}


def _part(kind: str, text: str) -> JSONObject:
    if kind == TEXT:
        return text_part(text)
    if kind == REFUSAL:
        return refusal_part(text)
    return {"type": "reasoning_text", "text": text}


class ResponsesStream(ChatStream):
    """The Responses stream of one request; see ChatStream for feed() and finish()."""

    def __init__(
        self,
        request: JSONObject,
        *,
        response_id: str,
        created_at: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(str(request.get("model") or ""))
        self._request = request
        self._response_id = response_id
        self._created_at = created_at
        self._clock = clock
        self._sequence = 0
        self._output: list[JSONObject] = []

    def _call_id(self, position: int) -> str:
        return f"call_{self._response_id.removeprefix('resp_')}_{position}"

    def _emit(self, events: list[JSONObject], event: JSONObject) -> None:
        event["sequence_number"] = self._sequence
        self._sequence += 1
        events.append(event)

    def _response(self) -> JSONObject:
        return response_envelope(
            self._request,
            response_id=self._response_id,
            created_at=self._created_at,
            model=self.model,
        )

    def _start(self, events: list[JSONObject]) -> None:
        self._emit(events, {"type": "response.created", "response": self._response()})
        self._emit(events, {"type": "response.in_progress", "response": self._response()})

    def _opened(self, block: Block, events: list[JSONObject]) -> None:
        identifier = block.ident = item_id(self._response_id, block.kind, block.position)
        kind = block.kind
        if kind == REASONING:
            item = reasoning_item(identifier, None, "in_progress")
        elif kind in (TEXT, REFUSAL):
            item = message_item(identifier, [], "in_progress")
        else:
            item = function_call_item(identifier, block.call_id, block.name, "", "in_progress")
        added = {"type": "response.output_item.added", "output_index": block.position}
        self._emit(events, {**added, "item": item})
        if kind != TOOL:
            part = _part(kind, "")
            where = self._where(block)
            self._emit(events, {"type": "response.content_part.added", **where, "part": part})

    def _where(self, block: Block) -> JSONObject:
        return {"item_id": block.ident, "output_index": block.position, "content_index": 0}

    def _extended(self, block: Block, piece: str, events: list[JSONObject]) -> None:
        kind, sequence = block.kind, self._sequence
        self._sequence += 1
        if kind == TEXT:
            events.append(
                {
                    "type": "response.output_text.delta",
                    "item_id": block.ident,
                    "output_index": block.position,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                    "sequence_number": sequence,
                }
            )
        elif kind == TOOL:
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": block.ident,
                    "output_index": block.position,
                    "delta": piece,
                    "sequence_number": sequence,
                }
            )
        else:
            where = self._where(block)
            event = {"type": _DELTAS[kind], **where, "delta": piece, "sequence_number": sequence}
            events.append(event)

    def _closed(self, block: Block, complete: bool, events: list[JSONObject]) -> None:
        status = "completed"
        if not complete or (self._finished and outcome(self.finish_reason)[1] is not None):
            status = "incomplete"
        identifier = block.ident
        text = block.text()
        if block.kind == TOOL:
            done: JSONObject = {
                "type": "response.function_call_arguments.done",
                "item_id": identifier,
                "output_index": block.position,
                "name": block.name,
                "arguments": text,
            }
            self._emit(events, done)
            item = function_call_item(identifier, block.call_id, block.name, text, status)
        else:
            self._text_done(block, text, events)
            part = _part(block.kind, text)
            where = self._where(block)
            self._emit(events, {"type": "response.content_part.done", **where, "part": part})
            if block.kind == REASONING:
                item = reasoning_item(identifier, text, status)
            else:
                item = message_item(identifier, [_part(block.kind, text)], status)
        self._output.append(item)
        self._emit(
            events,
            {"type": "response.output_item.done", "output_index": block.position, "item": item},
        )

    def _text_done(self, block: Block, text: str, events: list[JSONObject]) -> None:
        where = self._where(block)
        if block.kind == TEXT:
            event = {"type": "response.output_text.done", **where, "text": text, "logprobs": []}
        elif block.kind == REFUSAL:
            event = {"type": "response.refusal.done", **where, "refusal": text}
        else:
            event = {"type": "response.reasoning_text.done", **where, "text": text}
        self._emit(events, event)

    def _stop(
        self, events: list[JSONObject], error: RouterError | None, usage: Usage | None
    ) -> None:
        response = self._response()
        response["output"] = self._output
        if usage is not None:
            response["usage"] = responses_usage(usage)
        if error is not None:
            response["status"] = "failed"
            response["error"] = response_error(error)
            self._emit(events, {"type": "response.failed", "response": response})
            return
        status, incomplete = outcome(self.finish_reason)
        response["status"] = status
        response["incomplete_details"] = incomplete
        if status == "completed":
            response["completed_at"] = self._clock()
        self._emit(events, {"type": f"response.{status}", "response": response})
