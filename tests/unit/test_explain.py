"""Explain: the trace says which rules were tried and why, and what each candidate may cost."""

from __future__ import annotations

import json

from router.core.explain import render, trace
from router.core.model import BudgetLeft, Price, Principal, PromptSize, Snapshot
from router.core.plan import Planner
from tests.unit.core_support import BACKENDS, build_engine, features

ENGINE = build_engine("""
rules:
  - name: low-budget
    when: {budget: {scope: key, below_soft: true}, can_serve: mini}
    route: [mini]
  - name: mini-first
    when: {can_serve: mini}
    route: [mini, full]
    cap_max_tokens: 100
  - name: full
    route: [full]
""")
PLANNER = Planner(BACKENDS)
WHO = Principal("k", "t")
PRICES = {
    "mini": Price("mini", 1, 0.0, 100_000, 400_000),
    "full": Price("full", 3, 0.0, 2_000_000, 8_000_000),
}


def test_trace_lists_rules_candidates_and_what_admission_would_reserve() -> None:
    feats = features(PromptSize(40, 60, lambda: 50))
    plan = PLANNER.route(ENGINE, feats, WHO, Snapshot(prices=PRICES))
    data = trace(ENGINE, feats, WHO, Snapshot(prices=PRICES), plan)
    json.dumps(data)
    assert data["features"]["prompt_tokens"] == {"lower": 40, "upper": 60, "exact": 50}
    assert [r["rule"] for r in data["rules"]] == ["low-budget", "mini-first", "full"]
    assert data["rules"][0]["matched"] is False
    assert data["rules"][0]["conditions"][0] == {
        "condition": 'budget {"scope": "key", "below_soft": true}',
        "holds": False,
    }
    assert data["rules"][1]["matched"] is True
    assert data["rules"][2] == {"rule": "full", "evaluated": False}
    assert data["decision"]["candidates"] == ["mini", "full"]
    mini, full = data["candidates"]
    assert (mini["output_tokens"], full["output_tokens"]) == (100, 100)
    # A short prompt reserves its upper bound (60), not the exact count the trace shows.
    assert data["reserve"] == {"prompt_tokens": 60, "max_output_tokens": 100}
    assert mini["worst_case_micros"] == 46
    assert full["worst_case_micros"] == 920
    assert full["price_version"] == 3


def test_trace_of_a_rejection_and_dropped_backends() -> None:
    feats = features(inputs=("image",), max_output_tokens=1000)
    plan = PLANNER.route(ENGINE, feats, WHO, Snapshot())
    data = trace(ENGINE, feats, WHO, Snapshot(), plan, exact=False)
    assert data["decision"]["rejection"]["code"] == "no_capable_backend"
    assert data["dropped"] == {"full": "max output is 500 tokens, 1000 asked"}
    assert data["candidates"] == []
    text = render(data)
    assert "no_capable_backend" in text
    assert "dropped full: max output is 500 tokens, 1000 asked" in text


def test_trace_of_a_pinned_request_shows_skipped_rules() -> None:
    snapshot = Snapshot(key_budget=BudgetLeft(1, 100, 50))
    plan = PLANNER.route(ENGINE, features(), WHO, snapshot, "full")
    data = trace(ENGINE, features(), WHO, snapshot, plan, pinned="full")
    assert data["rules"][0]["skipped"] == "does not route to the pinned model 'full'"
    assert data["decision"]["rule"] == "mini-first"
    assert data["candidates"][0]["backend"] == "full"


def test_render_is_a_readable_table() -> None:
    feats = features(prefer="cost")
    plan = PLANNER.route(ENGINE, feats, WHO, Snapshot(prices=PRICES))
    text = render(trace(ENGINE, feats, WHO, Snapshot(prices=PRICES), plan))
    assert "Decision: rule mini-first" in text
    assert "prefer            cost" in text
    assert "no     low-budget" in text
    assert "match  mini-first" in text
    assert "1  mini" in text
    assert "max_tokens capped at 100" in text
    assert "reserves 100 prompt + 100 output tokens" in text


def test_trace_of_a_backend_without_an_api_key_names_the_setting() -> None:
    planner = Planner(BACKENDS, ["full"], config_source="router.yaml")
    feats = features(inputs=("image",))
    plan = planner.route(ENGINE, feats, WHO, Snapshot())
    data = trace(ENGINE, feats, WHO, Snapshot(), plan)
    rejection = data["decision"]["rejection"]
    assert (rejection["status"], rejection["code"]) == (503, "backend_not_configured")
    assert "backends.full.api_key in router.yaml" in rejection["message"]
    assert data["candidates"] == [] and data["dropped"] == {"full": "no API key"}
