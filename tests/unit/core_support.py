"""Builders shared by the pure-core tests: small backends, features, one-off engines."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from router.core.check import load_policy_text
from router.core.compile import compile_policy
from router.core.engine import Engine
from router.core.model import Capabilities, Features, Modality, PromptSize

ALL = frozenset(Modality)
TEXT = frozenset({Modality.TEXT})

BACKENDS = {
    "mini": Capabilities(
        context_window=1000, max_output_tokens=200, input_modalities=TEXT, output_modalities=TEXT
    ),
    "full": Capabilities(
        context_window=2000,
        max_output_tokens=500,
        input_modalities=ALL,
        output_modalities=ALL,
        image_generation=True,
        realtime_audio=True,
    ),
    "plain": Capabilities(
        context_window=4000,
        max_output_tokens=1000,
        input_modalities=TEXT,
        output_modalities=TEXT,
        tools=False,
        json_schema=False,
    ),
}


def features(
    prompt: int | PromptSize = 100,
    inputs: Iterable[str] = ("text",),
    outputs: Iterable[str] = ("text",),
    **overrides: Any,
) -> Features:
    """A request's features with everything plain unless overridden."""
    size = prompt if isinstance(prompt, PromptSize) else PromptSize(prompt, prompt)
    values: dict[str, Any] = {
        "input_modalities": frozenset(Modality(m) for m in inputs),
        "output_modalities": frozenset(Modality(m) for m in outputs),
        "prompt": size,
        "max_output_tokens": None,
        "tools": 0,
        "tool_choice": None,
        "json_schema": False,
        "stream": False,
    }
    values.update(overrides)
    return Features(**values)


def build_engine(text: str, backends: dict[str, Capabilities] | None = None) -> Engine:
    chosen = BACKENDS if backends is None else backends
    policy, _ = load_policy_text(text, chosen)
    return compile_policy(policy, chosen)


def one_rule(when: str, action: str = "route: [full]") -> Engine:
    """A policy whose first rule has `when` and routes to full, then a catch-all to plain."""
    return build_engine(
        f"rules:\n  - name: r\n    when: {when}\n    {action}\n  - name: rest\n    route: [plain]\n"
    )


def never_counted() -> Callable[[], int]:
    def count() -> int:
        raise AssertionError("the tokenizer ran although the bound decides")

    return count
