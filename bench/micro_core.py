"""Micro-benchmarks of the pure core: inspection, the policy decision, cost arithmetic.

Run `python -m bench.micro_core`. Each line is the median of many timed calls
(time.perf_counter_ns), so a stray GC pause or context switch does not move it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from router.core.check import load_policy_text
from router.core.compile import compile_policy
from router.core.cost import actual_cost, worst_case_cost
from router.core.engine import Engine
from router.core.inspect import inspect
from router.core.model import (
    BudgetLeft,
    Capabilities,
    Modality,
    Price,
    Principal,
    Snapshot,
    Usage,
)
from router.core.tokens import TokenCounter

POLICY = Path(__file__).resolve().parents[1] / "policies" / "default.yaml"
TEXT = frozenset({Modality.TEXT})


def _caps(window: int, output: int, full: bool) -> Capabilities:
    every = frozenset(Modality)
    return Capabilities(
        context_window=window,
        max_output_tokens=output,
        input_modalities=every if full else TEXT,
        output_modalities=every if full else TEXT,
        image_generation=full,
        realtime_audio=full,
    )


SHIPPED = {"mini": _caps(131_072, 8_192, False), "full": _caps(262_144, 32_768, True)}
"""The windows of config/router.yaml: a 128K-token prompt needs the tokenizer there."""
WIDE = {"mini": _caps(32_768, 8_192, False), "full": _caps(1_048_576, 32_768, True)}
"""A 1M-token full model and a 32K Mini: the bounds alone place a 128K-token prompt."""

PRINCIPAL = Principal(key_id="k1", team="t1")
SNAPSHOT = Snapshot(
    key_budget=BudgetLeft(9_000_000, 10_000_000, 8_000_000),
    team_budget=BudgetLeft(90_000_000, 100_000_000, 80_000_000),
)
PRICE = Price("full", 1, 0.0, 2_000_000, 8_000_000, 500_000)
PROSE = (
    "The committee reviewed the quarterly figures, noted a modest rise in costs, and asked "
    "the team to report back with options before the next meeting. "
)


def _engine(backends: dict[str, Capabilities]) -> Engine:
    policy, _ = load_policy_text(POLICY.read_text(), backends)
    return compile_policy(policy, backends)


def _body(text: str) -> dict[str, Any]:
    return {
        "model": "auto",
        "max_tokens": 512,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text},
        ],
    }


def median_ns(call: Callable[[], object], runs: int) -> float:
    for _ in range(min(runs, 100)):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples)


def _report(label: str, nanos: float) -> None:
    text = f"{nanos / 1000:10.1f} µs" if nanos < 1_000_000 else f"{nanos / 1e6:10.2f} ms"
    print(f"{label:<66}{text}")


def main() -> None:
    counter = TokenCounter()
    shipped, wide = _engine(SHIPPED), _engine(WIDE)
    headers = {"x-router-prefer": "cost"}

    short = _body("Summarise the attached meeting notes in three bullet points.")
    features = inspect(short, headers, counter)
    _report("short prompt: inspect", median_ns(lambda: inspect(short, headers, counter), 20_000))
    _report(
        "short prompt: decide (pure)",
        median_ns(lambda: shipped.decide(features, PRINCIPAL, SNAPSHOT), 50_000),
    )
    _report(
        "short prompt: inspect + decide",
        median_ns(
            lambda: shipped.decide(inspect(short, headers, counter), PRINCIPAL, SNAPSHOT), 20_000
        ),
    )

    per_prose = counter.count_text(PROSE * 100) / 100
    long_text = PROSE * int(128_500 / per_prose)
    long = _body(long_text)
    tokens = inspect(long, headers, counter).prompt.exact()
    print(f"\nlong prompt: {len(long_text.encode()):,} bytes, {tokens:,} tokens (o200k)")
    _report(
        "128K prompt: inspect (byte bounds only)",
        median_ns(lambda: inspect(long, headers, counter), 200),
    )
    _report(
        "128K prompt: inspect + decide, bounds decide (32K Mini, 1M full)",
        median_ns(lambda: wide.decide(inspect(long, headers, counter), PRINCIPAL, SNAPSHOT), 200),
    )
    _report(
        "128K prompt: inspect + decide, tokenizer needed (shipped windows)",
        median_ns(lambda: shipped.decide(inspect(long, headers, counter), PRINCIPAL, SNAPSHOT), 20),
    )
    huge = _body(PROSE * int(1_000_000 / per_prose))
    _report(
        "1M-token prompt: inspect + decide, rejected by the bound",
        median_ns(lambda: shipped.decide(inspect(huge, headers, counter), PRINCIPAL, SNAPSHOT), 50),
    )
    _report(
        "1M-token prompt: exact token count (for comparison)",
        median_ns(lambda: counter.count_texts([m["content"] for m in huge["messages"]]), 5),
    )

    usage = Usage(prompt_tokens=1234, completion_tokens=567, cached_tokens=200)
    print()
    _report(
        "cost: worst_case_cost", median_ns(lambda: worst_case_cost(PRICE, 128_000, 32_768), 100_000)
    )
    _report("cost: actual_cost", median_ns(lambda: actual_cost(PRICE, usage), 100_000))


if __name__ == "__main__":
    main()
