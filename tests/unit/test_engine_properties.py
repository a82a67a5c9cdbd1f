"""Property: whatever the policy, the request and the state, no decision ever hands a request
to a backend that cannot serve it, and no backend that can serve it is dropped."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from router.core.compile import compile_policy
from router.core.model import (
    BreakerState,
    BudgetLeft,
    Capabilities,
    Features,
    Modality,
    Principal,
    PromptSize,
    Snapshot,
    SupplyState,
)
from router.core.policy import Policy

NAMES = ["a", "b", "c"]
modalities = st.frozensets(st.sampled_from(list(Modality)))
capabilities = st.builds(
    Capabilities,
    context_window=st.integers(1, 3000),
    max_output_tokens=st.integers(1, 1000),
    input_modalities=modalities,
    output_modalities=modalities,
    tools=st.booleans(),
    json_schema=st.booleans(),
    image_generation=st.booleans(),
    realtime_audio=st.booleans(),
)
token_range = st.fixed_dictionaries(
    {},
    optional={"gt": st.integers(0, 3000), "lt": st.integers(0, 3000), "gte": st.integers(0, 3000)},
)
token_range = token_range.filter(bool)
modality_names = st.lists(st.sampled_from([m.value for m in Modality]), max_size=2)
conditions: dict[str, st.SearchStrategy[Any]] = {
    "input": st.fixed_dictionaries({}, optional={"any": modality_names, "none": modality_names}),
    "output": st.fixed_dictionaries({}, optional={"all": modality_names}),
    "stream": st.booleans(),
    "tools": st.booleans(),
    "json_schema": st.booleans(),
    "image_generation": st.booleans(),
    "prompt_tokens": token_range,
    "max_output_tokens": token_range,
    "prefer": st.lists(st.sampled_from(["cost", "quality", "none"]), min_size=1),
    "budget": st.fixed_dictionaries(
        {"below_soft": st.booleans()}, optional={"scope": st.sampled_from(["key", "team", "any"])}
    ),
    "can_serve": st.lists(st.sampled_from(NAMES), min_size=1, max_size=2),
    "backend_available": st.lists(st.sampled_from(NAMES), min_size=1, max_size=2),
}
when = st.fixed_dictionaries({}, optional=conditions)
route_rule = st.fixed_dictionaries(
    {"when": when, "route": st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True)},
    optional={"cap_max_tokens": st.integers(1, 1200)},
)
reject_rule = st.fixed_dictionaries(
    {"when": when, "reject": st.just({"status": 429, "message": "no"})}
)
policies = st.lists(st.one_of(route_rule, route_rule, reject_rule), min_size=1, max_size=5)


@st.composite
def requests(draw: st.DrawFn) -> Features:
    exact = draw(st.integers(0, 4000))
    lower = draw(st.integers(0, exact))
    upper = draw(st.integers(exact, 8000))
    return Features(
        input_modalities=draw(modalities),
        output_modalities=draw(modalities),
        prompt=PromptSize(lower, upper, lambda: exact),
        max_output_tokens=draw(st.none() | st.integers(1, 1500)),
        tools=draw(st.integers(0, 2)),
        tool_choice=None,
        json_schema=draw(st.booleans()),
        stream=draw(st.booleans()),
        image_generation=draw(st.booleans()),
        realtime_audio=draw(st.booleans()),
        prefer=draw(st.sampled_from([None, "cost", "quality"])),
    )


supply = st.builds(
    SupplyState,
    breaker=st.sampled_from(list(BreakerState)),
    draining=st.booleans(),
    in_flight=st.integers(0, 3),
    capacity=st.none() | st.integers(1, 3),
)
budget = st.none() | st.builds(
    BudgetLeft,
    remaining=st.integers(0, 100),
    limit=st.just(100),
    soft_limit=st.none() | st.integers(1, 100),
)
snapshots = st.builds(
    Snapshot,
    supply=st.dictionaries(st.sampled_from(NAMES), supply),
    key_budget=budget,
    team_budget=budget,
)


def serves(caps: Capabilities, f: Features, cap: int | None) -> bool:
    """The hard constraints, written out again independently of the engine."""
    out = f.max_output_tokens
    if out is not None and cap is not None:
        out = min(out, cap)
    elif cap is not None:
        out = min(cap, caps.max_output_tokens)
    return (
        f.input_modalities <= caps.input_modalities
        and f.output_modalities <= caps.output_modalities
        and (caps.image_generation or not f.image_generation)
        and (caps.realtime_audio or not f.realtime_audio)
        and (caps.tools or not f.tools)
        and (caps.json_schema or not f.json_schema)
        and (out is None or out <= caps.max_output_tokens)
        and f.prompt.exact() + (1 if out is None else out) <= caps.context_window
    )


@settings(max_examples=400, deadline=None)
@given(
    backends=st.fixed_dictionaries({name: capabilities for name in NAMES}),
    rules=policies,
    request=requests(),
    snapshot=snapshots,
    pinned=st.sampled_from([None, None, *NAMES, "zzz"]),
)
def test_no_decision_breaks_a_hard_capability(
    backends: dict[str, Capabilities],
    rules: list[dict[str, Any]],
    request: Features,
    snapshot: Snapshot,
    pinned: str | None,
) -> None:
    policy = Policy.model_validate(
        {"rules": [{"name": f"r{i}", **rule} for i, rule in enumerate(rules)]}
    )
    engine = compile_policy(policy, backends)
    decision = engine.decide(request, Principal("k", "t"), snapshot, pinned)
    rule = next((r for r in engine.rules if r.name == decision.rule), None)
    cap = None if rule is None else rule.cap
    for name in decision.dropped:
        assert not serves(backends[name], request, cap)
    if decision.rejection is not None:
        assert decision.candidates == ()
        return
    assert rule is not None
    assert decision.max_tokens_cap == cap
    assert decision.candidates
    assert len(set(decision.candidates)) == len(decision.candidates)
    for name in decision.candidates:
        assert serves(backends[name], request, cap)
        assert name not in decision.dropped
    if pinned is not None:
        assert decision.candidates == (pinned,)
        return
    assert set(decision.candidates) | set(decision.dropped) == set(rule.route)
    available = [snapshot.supply.get(n, SupplyState()).available for n in decision.candidates]
    assert available == sorted(available, reverse=True)
