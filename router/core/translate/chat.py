"""The chat-completions side every translation shares: the translated request, a chat reply
read leniently, and the state machine that turns a chunk stream into output blocks.

A block is one run of one kind of output: reasoning, text, refusal, or one tool call. The
Responses API renders a block as an output item, the Messages API as a content block; both
open a block, extend it, and close it, and both start and stop the whole answer exactly once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from router.core.model import Usage
from router.core.translate.errors import UnsupportedFeature
from router.core.translate.usage import usage_from_chat
from router.errors import RouterError, UpstreamFailed
from router.types import JSONObject

REASONING, TEXT, REFUSAL, TOOL = "reasoning", "text", "refusal", "tool"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A request translated to chat completions, and what in it only its own API can serve.

    `body` is what `router.core.inspect.inspect` reads for routing features: hosted tools stay
    in its `tools` (so they count as tools, and image generation asks for image output) until a
    backend is chosen. `unsupported` lists the refusals that apply if that backend speaks chat
    completions only; `for_chat_backend()` raises the first.
    """

    body: JSONObject
    unsupported: tuple[UnsupportedFeature, ...] = ()

    @property
    def needs_native_api(self) -> bool:
        return bool(self.unsupported)

    def for_chat_backend(self) -> JSONObject:
        """The body to send to a chat-completions backend; raises UnsupportedFeature (400)."""
        if self.unsupported:
            raise self.unsupported[0]
        return self.body


@dataclass(slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Reply:
    """The first choice of a chat completion: the APIs we translate to have no `n`."""

    model: str | None
    text: str
    refusal: str
    reasoning: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    stop_reason: Any
    """vLLM's `stop_reason`: the stop sequence that ended the text, when one did."""
    usage: Usage | None


def _reasoning(message: JSONObject) -> str:
    """vLLM and llama.cpp say `reasoning_content`; newer servers say `reasoning`."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def read_completion(completion: Any, call_id_prefix: str = "call_") -> Reply:
    """A chat completion body; UpstreamFailed (502) when it has no choice to read. A tool call
    without an id gets `call_id_prefix` and its position."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(completion, dict) or not isinstance(choice, dict):
        raise UpstreamFailed("The backend's reply has no choices; it is not a chat completion.")
    if not isinstance(message, dict):
        message = {}
    calls = []
    for position, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        call_id = call.get("id")
        arguments = function.get("arguments")
        calls.append(
            ToolCall(
                call_id=call_id
                if isinstance(call_id, str) and call_id
                else f"{call_id_prefix}{position}",
                name=str(function.get("name") or ""),
                arguments=arguments if isinstance(arguments, str) else "",
            )
        )
    model = completion.get("model")
    refusal = message.get("refusal")
    return Reply(
        model=model if isinstance(model, str) else None,
        text=_text(message.get("content")),
        refusal=refusal if isinstance(refusal, str) else "",
        reasoning=_reasoning(message),
        tool_calls=calls,
        finish_reason=choice.get("finish_reason"),
        stop_reason=choice.get("stop_reason"),
        usage=usage_from_chat(completion.get("usage")),
    )


@dataclass(slots=True)
class Block:
    kind: str
    position: int
    """Index among the answer's blocks: a Response's output_index, a Message's content index."""
    pieces: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    ident: str = ""
    """The block's id in its API, if it has one (a Response's item id)."""

    def text(self) -> str:
        return "".join(self.pieces)


class ChatStream(ABC):
    """Chat-completion chunks in, one API's stream events out.

    `feed(chunk)` takes each decoded chunk and returns the events it completes; the first call
    also returns the start events. `finish(error=..., usage=...)` ends the stream: the stop
    events, or the failure events when the upstream stream was cut or failed. Both return []
    once the stream has finished, so start and stop happen exactly once. `usage` passed to
    finish is the router's own count, used only if the upstream reported none. To settle,
    `usage` is what the upstream reported and `generated_text()` what to count without it: a
    translated relay needs no other meter.
    """

    def __init__(self, model: str, *, reasoning: bool = True) -> None:
        self.model = model
        self.reasoning = reasoning
        """Whether the backend's reasoning is rendered; if not, it is skipped."""
        self.blocks: list[Block] = []
        self.finish_reason: str | None = None
        self.stop_reason: Any = None
        self._usage: Usage | None = None
        self._open: Block | None = None
        self._calls: dict[int, Block] = {}
        self._unrendered: list[str] = []
        self._started = False
        self._finished = False
        self.error: RouterError | None = None
        """Why the stream failed, once it has: the error given to finish, or feed's own."""

    def feed(self, chunk: Any) -> list[JSONObject]:
        if self._finished or not isinstance(chunk, dict):
            return []
        events: list[JSONObject] = []
        if not self._started:
            self._started = True
            model = chunk.get("model")
            if isinstance(model, str) and model:
                self.model = model
            self._start(events)
        usage = chunk.get("usage")
        if usage:
            self._usage = usage_from_chat(usage) or self._usage
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return events
        choice = choices[0]
        delta = choice.get("delta")
        if delta and isinstance(delta, dict):
            self._delta(delta, events)
            if self._finished:
                return events
        reason = choice.get("finish_reason")
        if reason is not None and isinstance(reason, str):
            self.finish_reason = reason
            self.stop_reason = choice.get("stop_reason")
        return events

    def finish(
        self, *, error: RouterError | None = None, usage: Usage | None = None
    ) -> list[JSONObject]:
        if self._finished:
            return []
        events: list[JSONObject] = []
        if not self._started:
            self._started = True
            self._start(events)
        self._end(events, error, self._usage or usage)
        return events

    @property
    def finished(self) -> bool:
        """True once the stop (or failure) events are out; `feed` can end a stream itself
        when the upstream's chunks cannot be translated, with the reason in `error`."""
        return self._finished

    @property
    def usage(self) -> Usage | None:
        """What the upstream reported, once it has (a final chunk's `usage`)."""
        return self._usage

    def _delta(self, delta: JSONObject, events: list[JSONObject]) -> None:
        """One chunk's delta, key by key: a delta usually carries one kind of output."""
        for key, value in delta.items():
            if not value:
                continue
            if key == "content":
                if isinstance(value, str):
                    block = self._open
                    if block is None or block.kind != TEXT:
                        block = self._begin(Block(TEXT, len(self.blocks)), events)
                    block.pieces.append(value)
                    self._extended(block, value, events)
            elif key == "tool_calls":
                if isinstance(value, list):
                    for fragment in value:
                        if isinstance(fragment, dict) and not self._call_fragment(fragment, events):
                            return
            elif key == "reasoning_content" or (
                key == "reasoning" and "reasoning_content" not in delta
            ):
                if not isinstance(value, str):
                    continue
                if self.reasoning:
                    self._extend(REASONING, value, events)
                else:
                    self._unrendered.append(value)
            elif key == "refusal" and isinstance(value, str):
                self._extend(REFUSAL, value, events)

    def generated_text(self) -> str:
        """Everything the backend generated, rendered or not: what to count as output tokens
        when it reports no usage."""
        return "".join([*self._unrendered, *(piece for b in self.blocks for piece in b.pieces)])

    def _extend(self, kind: str, piece: str, events: list[JSONObject]) -> None:
        block = self._open
        if block is None or block.kind != kind:
            block = self._begin(Block(kind, len(self.blocks)), events)
        block.pieces.append(piece)
        self._extended(block, piece, events)

    def _call_fragment(self, fragment: JSONObject, events: list[JSONObject]) -> bool:
        """One tool-call fragment; False when it ended the stream (an interleaved call)."""
        index = fragment.get("index")
        if not isinstance(index, int):
            index = len(self._calls) - (1 if self._continues(fragment) else 0)
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        block = self._calls.get(index)
        if block is None:
            block = Block(TOOL, len(self.blocks))
            call_id = fragment.get("id")
            block.call_id = call_id if isinstance(call_id, str) and call_id else ""
            block.call_id = block.call_id or self._call_id(block.position)
            block.name = str(function.get("name") or "")
            self._calls[index] = self._begin(block, events)
        elif block is not self._open:
            failure = UpstreamFailed(
                "The backend streamed a fragment of an earlier tool call after a later one "
                "began; the answer cannot be translated. Retry the request."
            )
            self._end(events, failure, self._usage)
            return False
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            block.pieces.append(arguments)
            self._extended(block, arguments, events)
        return True

    def _continues(self, fragment: JSONObject) -> bool:
        """Without an `index`, a fragment continues the open call unless it names a new id."""
        open_block = self._open
        if open_block is None or open_block.kind != TOOL or not self._calls:
            return False
        call_id = fragment.get("id")
        return not call_id or call_id == open_block.call_id

    def _begin(self, block: Block, events: list[JSONObject]) -> Block:
        if self._open is not None:
            self._closed(self._open, True, events)
        self._open = block
        self.blocks.append(block)
        self._opened(block, events)
        return block

    def _end(
        self, events: list[JSONObject], error: RouterError | None, usage: Usage | None
    ) -> None:
        self._finished = True
        self.error = error
        if self._open is not None:
            self._closed(self._open, error is None, events)
            self._open = None
        self._stop(events, error, usage)

    def _call_id(self, position: int) -> str:
        return f"call_{position}"

    @abstractmethod
    def _start(self, events: list[JSONObject]) -> None:
        """The start events (a Response created, a Message started)."""

    @abstractmethod
    def _opened(self, block: Block, events: list[JSONObject]) -> None:
        """A block begins: its item or content block is added."""

    @abstractmethod
    def _extended(self, block: Block, piece: str, events: list[JSONObject]) -> None:
        """A piece of text or tool-call arguments arrives for the open block."""

    @abstractmethod
    def _closed(self, block: Block, complete: bool, events: list[JSONObject]) -> None:
        """The block is done (`complete` is False when the stream failed while it was open)."""

    @abstractmethod
    def _stop(
        self, events: list[JSONObject], error: RouterError | None, usage: Usage | None
    ) -> None:
        """The stop events: a finished answer with its usage, or the failure `error`."""
