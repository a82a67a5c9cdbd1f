"""The policy engine, table by table: every condition, every action, the capability filter,
supply ordering, pinned models and every kind of rejection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.core.capability import Gap
from router.core.compile import _CHEAP_FIRST
from router.core.engine import Engine
from router.core.model import (
    BreakerState,
    BudgetLeft,
    Features,
    Principal,
    PromptSize,
    Snapshot,
    SupplyState,
)
from router.core.policy import When
from tests.unit.core_support import build_engine, features, never_counted, one_rule

POLICIES = Path(__file__).resolve().parents[2] / "policies"
WHO = Principal(key_id="k1", team="t1", tags=frozenset({"batch", "eu"}))
LOW = BudgetLeft(remaining=1_000_000, limit=10_000_000, soft_limit=8_000_000)
HEALTHY = BudgetLeft(remaining=9_000_000, limit=10_000_000, soft_limit=8_000_000)
OPEN = SupplyState(breaker=BreakerState.OPEN)


def _matches(
    when: str, feats: Features | None = None, who: Principal = WHO, snapshot: Snapshot | None = None
) -> bool:
    decision = one_rule(when).decide(feats or features(), who, snapshot or Snapshot())
    return decision.rule == "r"


CONDITIONS: list[tuple[str, dict[str, Any], bool]] = [
    ("{}", {}, True),
    ("{input: {any: [image]}}", {"inputs": ("text", "image")}, True),
    ("{input: {any: [image, audio]}}", {}, False),
    ("{input: [image]}", {"inputs": ("image",)}, True),
    ("{input: {all: [text, image]}}", {"inputs": ("image",)}, False),
    ("{input: {all: [text, image]}}", {"inputs": ("text", "image")}, True),
    ("{input: {none: [image, file]}}", {}, True),
    ("{input: {none: [image, file]}}", {"inputs": ("text", "file")}, False),
    ("{output: {any: [audio]}}", {"outputs": ("text", "audio")}, True),
    ("{output: {none: [audio]}}", {"outputs": ("text", "audio")}, False),
    ("{image_generation: true}", {"image_generation": True, "outputs": ("text", "image")}, True),
    ("{image_generation: true}", {}, False),
    ("{realtime_audio: false}", {}, True),
    ("{realtime_audio: true}", {"realtime_audio": True, "outputs": ("audio",)}, True),
    ("{prompt_tokens: {gt: 100}}", {"prompt": 101}, True),
    ("{prompt_tokens: {gt: 100}}", {"prompt": 100}, False),
    ("{prompt_tokens: {gte: 100}}", {"prompt": 100}, True),
    ("{prompt_tokens: {lt: 100}}", {"prompt": 100}, False),
    ("{prompt_tokens: {lte: 100}}", {"prompt": 100}, True),
    ("{prompt_tokens: {between: [10, 20]}}", {"prompt": 20}, True),
    ("{prompt_tokens: {between: [10, 20]}}", {"prompt": 21}, False),
    ("{prompt_tokens: {gt: 5, lt: 9}}", {"prompt": 7}, True),
    ("{max_output_tokens: {gt: 100}}", {"max_output_tokens": 101}, True),
    ("{max_output_tokens: {gt: 100}}", {}, False),
    ("{max_output_tokens: {lte: 100}}", {"max_output_tokens": 100}, True),
    ("{tools: true}", {"tools": 2}, True),
    ("{tools: true}", {}, False),
    ("{tools: false}", {}, True),
    ("{json_schema: true}", {"json_schema": True}, True),
    ("{json_object: true}", {"json_object": True}, True),
    ("{json_object: true}", {"json_schema": True}, False),
    ("{stream: true}", {"stream": True}, True),
    ("{stream: true}", {}, False),
    ("{prefer: cost}", {"prefer": "cost"}, True),
    ("{prefer: [quality, latency]}", {"prefer": "cost"}, False),
    ("{prefer: none}", {}, True),
    ("{prefer: none}", {"prefer": "cost"}, False),
    ("{can_serve: mini}", {}, True),
    ("{can_serve: mini}", {"inputs": ("text", "image")}, False),
    ("{can_serve: mini}", {"prompt": 999}, True),
    ("{can_serve: mini}", {"prompt": 1000}, False),
    ("{can_serve: [mini, plain]}", {"tools": 1}, False),
    ("{any_of: [{stream: true}, {tools: true}]}", {"tools": 1}, True),
    ("{any_of: [{stream: true}, {tools: true}]}", {}, False),
    ("{not: {stream: true}}", {}, True),
    ("{not: {stream: true}}", {"stream": True}, False),
    ("{stream: true, tools: true}", {"stream": True}, False),
]


@pytest.mark.parametrize(("when", "overrides", "expected"), CONDITIONS)
def test_request_conditions(when: str, overrides: dict[str, Any], expected: bool) -> None:
    assert _matches(when, features(**overrides)) is expected


@pytest.mark.parametrize(
    ("when", "who", "expected"),
    [
        ("{key_id: k1}", WHO, True),
        ("{key_id: [k2, k3]}", WHO, False),
        ("{team: [t1]}", WHO, True),
        ("{team: t2}", WHO, False),
        ("{tags: [batch]}", WHO, True),
        ("{tags: {any: [gpu, eu]}}", WHO, True),
        ("{tags: {all: [batch, eu]}}", WHO, True),
        ("{tags: {all: [batch, us]}}", WHO, False),
        ("{tags: {none: [eu]}}", WHO, False),
        ("{tags: {none: [eu]}}", Principal("k", "t"), True),
    ],
)
def test_principal_conditions(when: str, who: Principal, expected: bool) -> None:
    assert _matches(when, who=who) is expected


BUDGETS: list[tuple[str, Snapshot, bool]] = [
    ("{budget: {below_soft: true}}", Snapshot(key_budget=LOW), True),
    ("{budget: {below_soft: true}}", Snapshot(team_budget=LOW), True),
    ("{budget: {scope: key, below_soft: true}}", Snapshot(team_budget=LOW), False),
    ("{budget: {scope: team, below_soft: true}}", Snapshot(team_budget=LOW), True),
    (
        "{budget: {scope: all, below_soft: true}}",
        Snapshot(key_budget=LOW, team_budget=HEALTHY),
        False,
    ),
    ("{budget: {scope: all, below_soft: true}}", Snapshot(key_budget=LOW, team_budget=LOW), True),
    ("{budget: {below_soft: false}}", Snapshot(), True),
    ("{budget: {scope: key, remaining_usd: {lt: 5}}}", Snapshot(key_budget=LOW), True),
    ("{budget: {scope: key, remaining_usd: {lt: 1}}}", Snapshot(key_budget=LOW), False),
    ("{budget: {scope: key, remaining_usd: {lte: 1}}}", Snapshot(key_budget=LOW), True),
    ("{budget: {scope: key, remaining_micros: {gte: 1000000}}}", Snapshot(key_budget=LOW), True),
    ("{budget: {scope: key, fraction: {lt: 0.2}}}", Snapshot(key_budget=LOW), True),
    ("{budget: {scope: key, fraction: {between: [0.5, 1]}}}", Snapshot(key_budget=LOW), False),
    ("{budget: {fraction: {lt: 0.5}}}", Snapshot(), False),
    ("{budget: {remaining_usd: {gt: 1000000}}}", Snapshot(), True),
]


@pytest.mark.parametrize(("when", "snapshot", "expected"), BUDGETS)
def test_budget_conditions(when: str, snapshot: Snapshot, expected: bool) -> None:
    assert _matches(when, snapshot=snapshot) is expected


SUPPLY: list[tuple[str, dict[str, SupplyState], bool]] = [
    ("{backend_available: mini}", {}, True),
    ("{backend_available: mini}", {"mini": OPEN}, False),
    ("{backend_available: [mini, full]}", {"full": SupplyState(draining=True)}, False),
    ("{supply: [{backend: mini, breaker: open}]}", {"mini": OPEN}, True),
    ("{supply: [{backend: mini, breaker: [half_open, open]}]}", {}, False),
    (
        "{supply: [{backend: mini, available: false}]}",
        {"mini": SupplyState(in_flight=4, capacity=4)},
        True,
    ),
    ("{supply: [{backend: mini, draining: true}]}", {"mini": SupplyState(draining=True)}, True),
    (
        "{supply: [{backend: mini, load: {gt: 0.5}}]}",
        {"mini": SupplyState(in_flight=6, capacity=10)},
        True,
    ),
    ("{supply: [{backend: mini, load: {gt: 0.5}}]}", {"mini": SupplyState(in_flight=6)}, False),
    (
        "{supply: [{backend: full, quota_left: {lt: 0.1}}]}",
        {"full": SupplyState(quota_left_fraction=0.05)},
        True,
    ),
    ("{supply: [{backend: full, quota_left: {lt: 0.1}}]}", {}, False),
]


@pytest.mark.parametrize(("when", "supply", "expected"), SUPPLY)
def test_supply_conditions(when: str, supply: dict[str, SupplyState], expected: bool) -> None:
    assert _matches(when, snapshot=Snapshot(supply=supply)) is expected


def test_prompt_conditions_skip_the_tokenizer_when_the_bound_decides() -> None:
    prompt = PromptSize(10, 50, never_counted())
    assert _matches("{prompt_tokens: {lt: 100}}", features(prompt))
    assert _matches("{prompt_tokens: {gt: 5}}", features(prompt))
    assert _matches("{can_serve: mini}", features(prompt))


def test_prompt_conditions_tokenize_once_when_the_bound_cannot_decide() -> None:
    calls = []
    prompt = PromptSize(10, 500, lambda: calls.append(1) or 120)
    assert _matches("{prompt_tokens: {between: [100, 200]}}", features(prompt))
    assert not _matches("{prompt_tokens: {lt: 110}}", features(prompt))
    assert calls == [1]


def test_refined_lower_bound_is_tried_before_the_tokenizer() -> None:
    prompt = PromptSize(10, 5000, never_counted(), lambda limit: 1500)
    unfit = CHAIN.checks["mini"](features(prompt), None)
    assert unfit is not None
    assert unfit.gap is Gap.CONTEXT
    assert prompt.lower == 1500


CHAIN = build_engine("rules:\n  - name: chain\n    route: [mini, full, plain]\n")
ENGINE = build_engine("""
rules:
  - name: rejected
    when: {stream: true}
    reject: {status: 429, message: "Streaming is paused; retry without stream.", code: paused}
  - name: capped
    when: {tools: true}
    route: [mini, full]
    cap_max_tokens: 150
  - name: chain
    route: [mini, full, plain]
""")


def test_route_returns_the_chain_in_order_without_allocating() -> None:
    first = ENGINE.decide(features(), WHO, Snapshot())
    assert first.candidates == ("mini", "full", "plain")
    assert first.rejection is None
    assert first.rule == "chain"
    assert ENGINE.decide(features(), WHO, Snapshot()) is first


def test_reject_action() -> None:
    decision = ENGINE.decide(features(stream=True), WHO, Snapshot())
    assert decision.candidates == ()
    assert decision.rejection is not None
    assert (decision.rejection.status, decision.rejection.code) == (429, "paused")
    assert decision.rejection.message == "Streaming is paused; retry without stream."


def test_cap_max_tokens_applies_before_the_capability_filter() -> None:
    decision = ENGINE.decide(features(tools=1, max_output_tokens=400), WHO, Snapshot())
    assert decision.candidates == ("mini", "full")
    assert decision.max_tokens_cap == 150
    uncapped = build_engine("rules:\n  - name: a\n    route: [mini, full]\n")
    decision = uncapped.decide(features(tools=1, max_output_tokens=400), WHO, Snapshot())
    assert decision.candidates == ("full",)
    assert decision.dropped == {"mini": "max output is 200 tokens, 400 asked"}


FILTER: list[tuple[dict[str, Any], tuple[str, ...], set[str]]] = [
    ({}, ("mini", "full", "plain"), set()),
    ({"inputs": ("text", "image")}, ("full",), {"mini", "plain"}),
    ({"inputs": ("audio",)}, ("full",), {"mini", "plain"}),
    ({"inputs": ("file",)}, ("full",), {"mini", "plain"}),
    ({"outputs": ("text", "audio")}, ("full",), {"mini", "plain"}),
    ({"image_generation": True}, ("full",), {"mini", "plain"}),
    ({"realtime_audio": True}, ("full",), {"mini", "plain"}),
    ({"tools": 2}, ("mini", "full"), {"plain"}),
    ({"json_schema": True}, ("mini", "full"), {"plain"}),
    ({"json_object": True}, ("mini", "full", "plain"), set()),
    ({"max_output_tokens": 300}, ("full", "plain"), {"mini"}),
    ({"max_output_tokens": 600}, ("plain",), {"mini", "full"}),
    ({"prompt": 999}, ("mini", "full", "plain"), set()),
    ({"prompt": 1000}, ("full", "plain"), {"mini"}),
    ({"prompt": 950, "max_output_tokens": 50}, ("mini", "full", "plain"), set()),
    ({"prompt": 951, "max_output_tokens": 50}, ("full", "plain"), {"mini"}),
    ({"prompt": 3999}, ("plain",), {"mini", "full"}),
]


@pytest.mark.parametrize(("overrides", "kept", "dropped"), FILTER)
def test_capability_filter(
    overrides: dict[str, Any], kept: tuple[str, ...], dropped: set[str]
) -> None:
    decision = CHAIN.decide(features(**overrides), WHO, Snapshot())
    assert decision.candidates == kept
    assert set(decision.dropped) == dropped
    assert all(f"{name} dropped" in " ".join(decision.reasons) for name in dropped)


def test_prompt_too_long_for_every_backend_says_limit_and_count() -> None:
    decision = ENGINE.decide(features(5000, max_output_tokens=100), WHO, Snapshot())
    assert decision.rejection is not None
    assert (decision.rejection.status, decision.rejection.code) == (400, "context_length_exceeded")
    assert (
        "context window is 4000 tokens, prompt is 5000 tokens plus 100 output"
        in decision.rejection.message
    )


def test_a_plainly_long_prompt_is_rejected_without_tokenizing() -> None:
    decision = ENGINE.decide(features(PromptSize(9000, 90_000, never_counted())), WHO, Snapshot())
    assert decision.rejection is not None
    assert "prompt is at least 9000 tokens" in decision.rejection.message


def test_no_capable_backend_names_every_gap() -> None:
    decision = ENGINE.decide(features(3000, inputs=("image",)), WHO, Snapshot())
    assert decision.rejection is not None
    assert (decision.rejection.status, decision.rejection.code) == (400, "no_capable_backend")
    message = decision.rejection.message
    assert "mini: no image input" in message
    assert "full: context window is 2000 tokens" in message
    assert set(decision.dropped) == {"mini", "full", "plain"}


@pytest.mark.parametrize(
    ("supply", "order"),
    [
        ({"mini": OPEN}, ("full", "plain", "mini")),
        (
            {"mini": SupplyState(draining=True), "full": SupplyState(in_flight=2, capacity=2)},
            ("plain", "mini", "full"),
        ),
        ({"mini": OPEN, "full": OPEN, "plain": OPEN}, ("mini", "full", "plain")),
        ({"mini": SupplyState(breaker=BreakerState.HALF_OPEN)}, ("mini", "full", "plain")),
    ],
)
def test_short_supply_moves_a_backend_last(
    supply: dict[str, SupplyState], order: tuple[str, ...]
) -> None:
    decision = ENGINE.decide(features(), WHO, Snapshot(supply=supply))
    assert decision.candidates == order
    assert not decision.dropped
    moved = [name for name in supply if not supply[name].available]
    assert all(f"{name} moved last" in " ".join(decision.reasons) for name in moved)


def test_no_matching_rule_is_a_503() -> None:
    engine = build_engine(
        "rules:\n  - name: only-streams\n    when: {stream: true}\n    route: [full]\n"
    )
    decision = engine.decide(features(), WHO, Snapshot())
    assert decision.rejection is not None
    assert (decision.rejection.status, decision.rejection.code) == (503, "no_matching_rule")


def _default() -> Engine:
    return build_engine((POLICIES / "default.yaml").read_text())


DEFAULT: list[tuple[dict[str, Any], Snapshot, tuple[str, ...], str]] = [
    ({}, Snapshot(), ("mini", "full"), "mini-first"),
    ({"inputs": ("text", "image")}, Snapshot(), ("full",), "full"),
    ({"prompt": 1500}, Snapshot(), ("full",), "full"),
    ({"realtime_audio": True, "outputs": ("audio",)}, Snapshot(), ("full",), "full"),
    ({}, Snapshot(key_budget=LOW), ("mini",), "key-budget-low"),
    ({}, Snapshot(team_budget=LOW), ("mini",), "team-budget-low"),
    ({}, Snapshot(key_budget=HEALTHY, team_budget=HEALTHY), ("mini", "full"), "mini-first"),
    ({}, Snapshot(supply={"mini": OPEN}), ("full", "mini"), "mini-first"),
]


@pytest.mark.parametrize(("overrides", "snapshot", "candidates", "rule"), DEFAULT)
def test_default_policy(
    overrides: dict[str, Any], snapshot: Snapshot, candidates: tuple[str, ...], rule: str
) -> None:
    decision = _default().decide(features(**overrides), WHO, snapshot)
    assert (decision.candidates, decision.rule) == (candidates, rule)


@pytest.mark.parametrize(
    ("snapshot", "scope"),
    [
        (Snapshot(key_budget=LOW), "key's budget"),
        (Snapshot(team_budget=LOW), "team's budget"),
    ],
)
def test_default_policy_rejects_what_mini_cannot_do_on_a_low_budget(
    snapshot: Snapshot, scope: str
) -> None:
    decision = _default().decide(features(inputs=("image",)), WHO, snapshot)
    assert decision.rejection is not None
    assert decision.rejection.status == 429
    assert scope in decision.rejection.message


PINNED: list[tuple[dict[str, Any], Snapshot, str, tuple[str, ...] | tuple[int, str]]] = [
    ({}, Snapshot(), "full", ("full",)),
    ({}, Snapshot(), "mini", ("mini",)),
    ({"inputs": ("image",)}, Snapshot(), "full", ("full",)),
    ({"inputs": ("image",)}, Snapshot(), "mini", (400, "model_cannot_serve")),
    ({"prompt": 1500}, Snapshot(), "mini", (400, "context_length_exceeded")),
    ({}, Snapshot(), "gpt-9", (404, "model_not_found")),
    ({}, Snapshot(key_budget=LOW), "mini", ("mini",)),
    ({}, Snapshot(key_budget=LOW), "full", (429, "budget_soft_limit")),
    ({}, Snapshot(supply={"full": OPEN}), "full", ("full",)),
]


@pytest.mark.parametrize(("overrides", "snapshot", "pinned", "outcome"), PINNED)
def test_pinned_models(
    overrides: dict[str, Any], snapshot: Snapshot, pinned: str, outcome: tuple[Any, ...]
) -> None:
    decision = _default().decide(features(**overrides), WHO, snapshot, pinned)
    if decision.rejection is None:
        assert decision.candidates == outcome
    else:
        assert (decision.rejection.status, decision.rejection.code) == outcome
        assert decision.candidates == ()
        if decision.rejection.status == 400:
            assert '"auto"' in decision.rejection.message


def test_pinned_model_the_policy_never_routes_to_is_refused() -> None:
    engine = build_engine("rules:\n  - name: mini-only\n    route: [mini]\n")
    decision = engine.decide(features(), WHO, Snapshot(), "full")
    assert decision.rejection is not None
    assert (decision.rejection.status, decision.rejection.code) == (400, "model_not_allowed")
    assert engine.decide(features(), WHO, Snapshot(), "mini").candidates == ("mini",)


def test_pinned_model_short_of_supply_is_still_tried() -> None:
    decision = _default().decide(features(), WHO, Snapshot(supply={"mini": OPEN}), "mini")
    assert decision.candidates == ("mini",)
    assert any("short of supply" in reason for reason in decision.reasons)


def test_a_short_prompt_is_decided_without_tokenizing() -> None:
    prompt = PromptSize(10, 60, never_counted())
    assert _default().decide(features(prompt), WHO, Snapshot()).candidates == ("mini", "full")


def test_every_condition_field_is_compiled() -> None:
    assert sorted(_CHEAP_FIRST) == sorted(When.model_fields)
