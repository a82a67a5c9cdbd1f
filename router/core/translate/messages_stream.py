"""Chat-completion chunks as the Messages API's stream events.

The sequence: `message_start` (the Message with no content; its input tokens are the
router's estimate, as a chat stream reports usage only at its end) and a `ping`; per content
block `content_block_start`, `content_block_delta` (`text_delta`, `input_json_delta`,
`thinking_delta`) and `content_block_stop`; then `message_delta` with the stop reason and the
usage, and `message_stop`. A stream cut or failed upstream closes its open block and ends
with one `error` event instead, as Anthropic's API does (its SDK raises on it).
"""

from __future__ import annotations

from router.core.model import Usage
from router.core.translate.chat import REASONING, TOOL, Block, ChatStream
from router.core.translate.errors import anthropic_error
from router.core.translate.messages_in import thinking_enabled
from router.core.translate.messages_out import message_envelope, stop_reason
from router.core.translate.usage import messages_usage
from router.errors import RouterError
from router.types import JSONObject


class MessagesStream(ChatStream):
    """The Messages stream of one request; see ChatStream for feed() and finish().

    `input_tokens` is the prompt size the router counted, sent in `message_start`; the final
    `message_delta` carries the backend's own counts when it reports them.
    """

    def __init__(self, request: JSONObject, *, message_id: str, input_tokens: int = 0) -> None:
        super().__init__(str(request.get("model") or ""), reasoning=thinking_enabled(request))
        self._request = request
        self._message_id = message_id
        self._input_tokens = input_tokens

    def _call_id(self, position: int) -> str:
        return f"toolu_{self._message_id.removeprefix('msg_')}_{position}"

    def _start(self, events: list[JSONObject]) -> None:
        message = message_envelope(self._message_id, self.model)
        message["usage"] = {"input_tokens": self._input_tokens, "output_tokens": 0}
        events.append({"type": "message_start", "message": message})
        events.append({"type": "ping"})

    def _opened(self, block: Block, events: list[JSONObject]) -> None:
        if block.kind == TOOL:
            content: JSONObject = {
                "type": "tool_use",
                "id": block.call_id,
                "name": block.name,
                "input": {},
            }
        elif block.kind == REASONING:
            content = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            content = {"type": "text", "text": ""}
        events.append(
            {"type": "content_block_start", "index": block.position, "content_block": content}
        )

    def _extended(self, block: Block, piece: str, events: list[JSONObject]) -> None:
        if block.kind == TOOL:
            delta = {"type": "input_json_delta", "partial_json": piece}
        elif block.kind == REASONING:
            delta = {"type": "thinking_delta", "thinking": piece}
        else:
            delta = {"type": "text_delta", "text": piece}
        events.append({"type": "content_block_delta", "index": block.position, "delta": delta})

    def _closed(self, block: Block, complete: bool, events: list[JSONObject]) -> None:
        events.append({"type": "content_block_stop", "index": block.position})

    def _stop(
        self, events: list[JSONObject], error: RouterError | None, usage: Usage | None
    ) -> None:
        if error is not None:
            events.append(anthropic_error(error))
            return
        calls = any(block.kind == TOOL for block in self.blocks)
        reason, sequence = stop_reason(self._request, self.finish_reason, self.stop_reason, calls)
        if usage is None:
            usage = Usage(prompt_tokens=self._input_tokens, completion_tokens=0)
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": messages_usage(usage),
            }
        )
        events.append({"type": "message_stop"})
