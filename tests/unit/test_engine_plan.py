"""The plan: what each candidate is sent as its output bound, what admission reserves, and the
refusal when only backends without an API key could serve."""

from __future__ import annotations

import pytest

from router.core.model import Decision, Principal, PromptSize, Rejection, Snapshot
from router.core.plan import TOKENIZE_ABOVE, Planner
from tests.unit.core_support import BACKENDS, build_engine, features

ENGINE = build_engine("""
rules:
  - name: capped
    when: {prefer: cost}
    route: [mini, full]
    cap_max_tokens: 300
  - name: mini-first
    when: {can_serve: mini}
    route: [mini, full]
  - name: full
    route: [full]
""")
WHO = Principal("k", "t")
PLANNER = Planner(BACKENDS)


def test_each_candidate_is_bounded_by_its_own_ceiling_and_the_reserve_by_the_largest() -> None:
    plan = PLANNER.route(ENGINE, features(), WHO, Snapshot())
    assert plan.decision.candidates == ("mini", "full")
    assert plan.output_tokens == (200, 500)
    assert (plan.prompt_tokens, plan.max_output_tokens) == (100, 500)


@pytest.mark.parametrize(
    ("asked", "prefer", "outputs"),
    [
        (150, None, (150, 150)),
        (400, "cost", (300,)),  # capped to 300, still past mini's 200: mini is dropped
        (100, "cost", (100, 100)),
        (None, "cost", (200, 300)),
    ],
)
def test_the_client_ask_and_the_rule_cap_lower_every_bound(
    asked: int | None, prefer: str | None, outputs: tuple[int, ...]
) -> None:
    feats = features(max_output_tokens=asked, prefer=prefer)
    plan = PLANNER.route(ENGINE, feats, WHO, Snapshot())
    assert plan.output_tokens == outputs
    assert plan.max_output_tokens == max(outputs)


def test_a_short_prompt_reserves_its_bound_and_a_long_one_its_exact_count() -> None:
    counted: list[int] = []

    def count() -> int:
        counted.append(1)
        return 90

    short = PLANNER.plan(features(PromptSize(80, 120, count)), ENGINE.rules[1].decision)
    assert (short.prompt_tokens, counted) == (120, [])
    long = PromptSize(80, TOKENIZE_ABOVE + 1, count)
    planned = PLANNER.plan(features(long), ENGINE.rules[2].decision)
    assert (planned.prompt_tokens, counted) == (90, [1])


def test_a_rejected_decision_is_planned_as_its_rejection() -> None:
    rejected = Decision((), "r", rejection=Rejection(429, "budget_soft_limit", "no"))
    plan = PLANNER.plan(features(), rejected)
    assert plan.rejection is rejected.rejection
    assert (plan.output_tokens, plan.max_output_tokens) == ((), 0)


def test_a_backend_without_an_api_key_is_dropped_while_another_can_serve() -> None:
    planner = Planner(BACKENDS, ["full"])
    plan = planner.route(ENGINE, features(), WHO, Snapshot())
    assert plan.rejection is None
    assert plan.decision.candidates == ("mini",)
    assert plan.decision.dropped == {"full": "no API key"}
    assert (plan.output_tokens, plan.max_output_tokens) == ((200,), 200)


def test_only_backends_without_an_api_key_left_is_a_503_naming_the_setting() -> None:
    planner = Planner(BACKENDS, ["full"], config_source="/etc/router.yaml")
    plan = planner.route(ENGINE, features(inputs=("image",)), WHO, Snapshot())
    rejection = plan.rejection
    assert rejection is not None
    assert (rejection.status, rejection.code) == (503, "backend_not_configured")
    assert "Only the full backend can serve this request" in rejection.message
    assert "mini: no image input" in rejection.message
    assert "Set backends.full.api_key in /etc/router.yaml" in rejection.message
    assert plan.decision.candidates == () and plan.output_tokens == ()
    assert plan.decision.dropped == {"full": "no API key"}


def test_a_pin_to_a_backend_without_an_api_key_is_refused_the_same_way() -> None:
    planner = Planner(BACKENDS, ["full"])
    plan = planner.route(ENGINE, features(), WHO, Snapshot(), "full")
    assert plan.rejection is not None and plan.rejection.code == "backend_not_configured"


def test_configured_backends_plan_the_engines_own_decision() -> None:
    decision = ENGINE.decide(features(), WHO, Snapshot())
    assert Planner(BACKENDS, ["plain"]).route(ENGINE, features(), WHO, Snapshot()).decision is (
        decision
    )
