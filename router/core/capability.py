"""Hard capability checks: can this backend serve this request at all?

Context rule, with `out` the output tokens the backend may be asked for:
- the request sets max_tokens (or max_completion_tokens): `out` is that, lowered to the rule's
  cap; the backend must allow it (`out <= max_output_tokens`), since the client asked for it;
- only the rule caps: `out` is the cap, lowered to the backend's max output;
- neither: no `out`; servers then default max_tokens to what is left of the window.
The backend fits when `prompt_tokens + out <= context_window`, or, without `out`, when the
prompt leaves room for one output token (`prompt_tokens < context_window`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from router.core.model import Capabilities, Features


class Gap(StrEnum):
    """Why a backend cannot serve a request; `CONTEXT` alone is a matter of size."""

    INPUT = "input"
    OUTPUT = "output"
    IMAGE_GENERATION = "image_generation"
    REALTIME_AUDIO = "realtime_audio"
    TOOLS = "tools"
    JSON_SCHEMA = "json_schema"
    MAX_OUTPUT = "max_output"
    CONTEXT = "context"


@dataclass(frozen=True, slots=True)
class Unfit:
    gap: Gap
    detail: str


FitCheck = Callable[[Features, "int | None"], "Unfit | None"]
"""(features, rule's max_tokens cap) -> None when the backend can serve, else why not."""


def output_tokens(features: Features, cap: int | None) -> int | None:
    """Output tokens the request may be asked to produce, after the rule's cap."""
    requested = features.max_output_tokens
    if cap is None or (requested is not None and requested <= cap):
        return requested
    return cap


def _names(modalities: frozenset[str]) -> str:
    return ", ".join(sorted(modalities))


def fit_check(caps: Capabilities) -> FitCheck:
    """A closure over one backend's limits; allocates nothing when the backend fits."""
    inputs, outputs = caps.input_modalities, caps.output_modalities
    window, max_output = caps.context_window, caps.max_output_tokens
    tools, json_schema = caps.tools, caps.json_schema
    image_generation, realtime_audio = caps.image_generation, caps.realtime_audio

    def check(features: Features, cap: int | None) -> Unfit | None:
        if not features.input_modalities <= inputs:
            missing = _names(features.input_modalities - inputs)
            return Unfit(Gap.INPUT, f"no {missing} input")
        if not features.output_modalities <= outputs:
            missing = _names(features.output_modalities - outputs)
            return Unfit(Gap.OUTPUT, f"no {missing} output")
        if features.image_generation and not image_generation:
            return Unfit(Gap.IMAGE_GENERATION, "no image generation")
        if features.realtime_audio and not realtime_audio:
            return Unfit(Gap.REALTIME_AUDIO, "no real-time (streamed) audio")
        if features.tools and not tools:
            return Unfit(Gap.TOOLS, "no tool calling")
        if features.json_schema and not json_schema:
            return Unfit(Gap.JSON_SCHEMA, "no json_schema response format")
        out = output_tokens(features, cap)
        if out is not None and out > max_output:
            if features.max_output_tokens is not None:
                return Unfit(Gap.MAX_OUTPUT, f"max output is {max_output} tokens, {out} asked")
            out = max_output
        room = window - (1 if out is None else out)
        if not features.prompt.at_most(room):
            return Unfit(
                Gap.CONTEXT,
                f"context window is {window} tokens, prompt is "
                f"{_prompt_size(features, room)}" + ("" if out is None else f" plus {out} output"),
            )
        return None

    return check


def _prompt_size(features: Features, room: int) -> str:
    prompt = features.prompt
    if prompt.lower > room and prompt.lower < prompt.upper and not prompt.tokenized:
        return f"at least {prompt.lower} tokens"
    return f"{prompt.exact()} tokens"
