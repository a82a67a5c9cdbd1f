"""Policy model -> Engine: every condition becomes a small closure over constants.

Evaluating a compiled rule parses nothing and looks nothing up by name: thresholds, sets and
fit checks are bound when the policy is loaded. Conditions that may need the tokenizer
(`prompt_tokens`, `can_serve`) run last in a rule, after the cheap ones had their chance to
fail first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from types import MappingProxyType

from router.core.capability import FitCheck, fit_check
from router.core.engine import (
    PINNED_REASON,
    CompiledRule,
    Condition,
    Engine,
    Predicate,
)
from router.core.model import (
    BudgetLeft,
    Capabilities,
    Decision,
    Features,
    Modality,
    Principal,
    Rejection,
    Snapshot,
    SupplyState,
)
from router.core.policy import (
    AmountRange,
    BudgetCondition,
    ModalityCondition,
    Policy,
    Rule,
    SupplyCondition,
    TagCondition,
    TokenRange,
    When,
)
from router.core.problems import PolicyError, Problem
from router.types import MICROS_PER_USD

_NO_SUPPLY_NEWS = SupplyState()
_CHEAP_FIRST = (
    "key_id",
    "team",
    "tags",
    "prefer",
    "stream",
    "tools",
    "json_schema",
    "json_object",
    "image_generation",
    "realtime_audio",
    "input",
    "output",
    "max_output_tokens",
    "budget",
    "backend_available",
    "supply",
    "any_of",
    "not_",
    "prompt_tokens",
    "can_serve",
)
Number = Callable[[float], bool]


def _all(tests: Sequence[Predicate]) -> Predicate:
    if not tests:
        return lambda f, p, s: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda f, p, s: first(f, p, s) and second(f, p, s)
    frozen = tuple(tests)

    def every(f: Features, p: Principal, s: Snapshot) -> bool:
        for test in frozen:  # noqa: SIM110 - all() would build a generator per call
            if not test(f, p, s):
                return False
        return True

    return every


def _any(tests: Sequence[Predicate]) -> Predicate:
    frozen = tuple(tests)

    def some(f: Features, p: Principal, s: Snapshot) -> bool:
        for test in frozen:  # noqa: SIM110 - any() would build a generator per call
            if test(f, p, s):
                return True
        return False

    return some


def _sets(
    get: Callable[[Features], frozenset[Modality]], cond: ModalityCondition
) -> list[Predicate]:
    tests: list[Predicate] = []
    if cond.any is not None:
        some = frozenset(cond.any)
        tests.append(lambda f, p, s: not get(f).isdisjoint(some))
    if cond.all is not None:
        every = frozenset(cond.all)
        tests.append(lambda f, p, s: every <= get(f))
    if cond.none is not None:
        banned = frozenset(cond.none)
        tests.append(lambda f, p, s: get(f).isdisjoint(banned))
    return tests


def _tags(cond: TagCondition) -> list[Predicate]:
    tests: list[Predicate] = []
    if cond.any is not None:
        some = frozenset(cond.any)
        tests.append(lambda f, p, s: not p.tags.isdisjoint(some))
    if cond.all is not None:
        every = frozenset(cond.all)
        tests.append(lambda f, p, s: every <= p.tags)
    if cond.none is not None:
        banned = frozenset(cond.none)
        tests.append(lambda f, p, s: p.tags.isdisjoint(banned))
    return tests


def _prompt(span: TokenRange) -> Predicate:
    low, high = span.span()
    if low is None:
        assert high is not None
        return lambda f, p, s: f.prompt.at_most(high)
    floor = low - 1
    if high is None:
        return lambda f, p, s: not f.prompt.at_most(floor)
    return lambda f, p, s: not f.prompt.at_most(floor) and f.prompt.at_most(high)


def _max_output(span: TokenRange) -> Predicate:
    low, high = span.span()
    least = -1 if low is None else low
    most = float("inf") if high is None else high

    def test(f: Features, p: Principal, s: Snapshot) -> bool:
        out = f.max_output_tokens
        return out is not None and least <= out <= most

    return test


def _number(bounds: AmountRange, scale: float = 1.0) -> Number:
    """A range test; `scale` converts the policy's unit (e.g. USD) to the value's (micros)."""
    lows = [(v * scale, True) for v in (bounds.gte,) if v is not None]
    lows += [(v * scale, False) for v in (bounds.gt,) if v is not None]
    highs = [(v * scale, True) for v in (bounds.lte,) if v is not None]
    highs += [(v * scale, False) for v in (bounds.lt,) if v is not None]
    if bounds.between is not None:
        lows.append((bounds.between[0] * scale, True))
        highs.append((bounds.between[1] * scale, True))
    low, low_closed = max(lows, key=lambda b: (b[0], not b[1]), default=(float("-inf"), True))
    high, high_closed = min(highs, key=lambda b: (b[0], b[1]), default=(float("inf"), True))

    def test(x: float) -> bool:
        return (x >= low if low_closed else x > low) and (x <= high if high_closed else x < high)

    return test


def _budget_test(cond: BudgetCondition) -> Callable[[BudgetLeft | None], bool]:
    below_soft = cond.below_soft
    remaining = [
        _number(r, s)
        for r, s in ((cond.remaining_usd, MICROS_PER_USD), (cond.remaining_micros, 1))
        if r is not None
    ]
    fraction = None if cond.fraction is None else _number(cond.fraction)

    def test(budget: BudgetLeft | None) -> bool:
        if budget is None:
            left, share, soft = float("inf"), 1.0, False
        else:
            left, share, soft = budget.remaining, budget.fraction, budget.below_soft
        if below_soft is not None and soft is not below_soft:
            return False
        for check in remaining:
            if not check(left):
                return False
        return fraction is None or fraction(share)

    return test


def _budget(cond: BudgetCondition) -> Predicate:
    test = _budget_test(cond)
    if cond.scope == "key":
        return lambda f, p, s: test(s.key_budget)
    if cond.scope == "team":
        return lambda f, p, s: test(s.team_budget)
    if cond.scope == "all":
        return lambda f, p, s: test(s.key_budget) and test(s.team_budget)
    return lambda f, p, s: test(s.key_budget) or test(s.team_budget)


def _available(name: str) -> Predicate:
    def test(f: Features, p: Principal, s: Snapshot) -> bool:
        state = s.supply.get(name)
        return state is None or state.available

    return test


def _supply(cond: SupplyCondition) -> Predicate:
    name = cond.backend
    checks: list[Callable[[SupplyState], bool]] = []
    if cond.available is not None:
        available = cond.available
        checks.append(lambda st: st.available is available)
    if cond.draining is not None:
        draining = cond.draining
        checks.append(lambda st: st.draining is draining)
    if cond.breaker is not None:
        breakers = frozenset(cond.breaker)
        checks.append(lambda st: st.breaker in breakers)
    if cond.load is not None:
        load = _number(cond.load)
        checks.append(lambda st: load(st.in_flight / st.capacity if st.capacity else 0.0))
    if cond.quota_left is not None:
        quota = _number(cond.quota_left)
        checks.append(
            lambda st: quota(1.0 if st.quota_left_fraction is None else st.quota_left_fraction)
        )
    frozen = tuple(checks)

    def test(f: Features, p: Principal, s: Snapshot) -> bool:
        state = s.supply.get(name, _NO_SUPPLY_NEWS)
        for check in frozen:  # noqa: SIM110 - all() would build a generator per call
            if not check(state):
                return False
        return True

    return test


def _can_serve(checks: Sequence[FitCheck], cap: int | None) -> Predicate:
    def test(f: Features, p: Principal, s: Snapshot) -> bool:
        for check in checks:  # noqa: SIM110 - all() would build a generator per call
            if check(f, cap) is not None:
                return False
        return True

    return test


def _flag(getter: Callable[[Features], object], wanted: bool) -> Predicate:
    return lambda f, p, s: bool(getter(f)) is wanted


class _Compiler:
    def __init__(self, checks: Mapping[str, FitCheck]) -> None:
        self.checks = checks

    def field(self, when: When, key: str, cap: int | None) -> list[Predicate]:
        value = getattr(when, key)
        if key in ("input", "output"):
            return _sets(attrgetter(f"{key}_modalities"), value)
        if key in (
            "stream",
            "tools",
            "json_schema",
            "json_object",
            "image_generation",
            "realtime_audio",
        ):
            return [_flag(attrgetter(key), value)]
        if key == "prefer":
            allowed = frozenset(None if item == "none" else item for item in value)
            return [lambda f, p, s: f.prefer in allowed]
        if key in ("key_id", "team"):
            ids = frozenset(value)
            get = attrgetter(key)
            return [lambda f, p, s: get(p) in ids]
        if key == "tags":
            return _tags(value)
        if key == "prompt_tokens":
            return [_prompt(value)]
        if key == "max_output_tokens":
            return [_max_output(value)]
        if key == "budget":
            return [_budget(value)]
        if key == "backend_available":
            return [_available(name) for name in value]
        if key == "supply":
            return [_supply(cond) for cond in value]
        if key == "can_serve":
            return [_can_serve([self.checks[name] for name in value], cap)]
        if key == "any_of":
            return [_any([self.when(nested, cap) for nested in value])]
        assert key == "not_"
        inner = self.when(value, cap)
        return [lambda f, p, s: not inner(f, p, s)]

    def conditions(self, when: When, cap: int | None) -> tuple[Condition, ...]:
        found = []
        for key in _CHEAP_FIRST:
            if getattr(when, key) is not None:
                found.append(Condition(_label(when, key), _all(self.field(when, key, cap))))
        return tuple(found)

    def when(self, when: When, cap: int | None) -> Predicate:
        return _all([condition.test for condition in self.conditions(when, cap)])

    def rule(self, rule: Rule) -> CompiledRule:
        conditions = self.conditions(rule.when, rule.cap_max_tokens)
        matched = "; ".join(c.label for c in conditions) or "no conditions"
        reason = f"rule '{rule.name}' matched ({matched})"
        route = tuple(rule.route or ())
        if rule.reject is not None:
            reject = rule.reject
            decision = Decision(
                candidates=(),
                rule=rule.name,
                reasons=(reason,),
                rejection=Rejection(reject.status, reject.code, reject.message),
            )
        else:
            decision = Decision(
                candidates=route,
                rule=rule.name,
                reasons=(reason,),
                max_tokens_cap=rule.cap_max_tokens,
            )
        pinned = {
            name: Decision(
                candidates=(name,),
                rule=rule.name,
                reasons=(reason, f"{name} {PINNED_REASON}"),
                max_tokens_cap=rule.cap_max_tokens,
            )
            for name in route
        }
        return CompiledRule(
            rule.name,
            conditions,
            _all([c.test for c in conditions]),
            route,
            rule.cap_max_tokens,
            decision,
            MappingProxyType(pinned),
        )


def _label(when: When, key: str) -> str:
    """`prompt_tokens {"gt": 1000}`: the condition as the operator wrote it."""
    ((name, value),) = when.model_dump(
        mode="json", include={key}, exclude_none=True, by_alias=True
    ).items()
    return f"{name} {json.dumps(value, separators=(', ', ': '))}"


def compile_policy(policy: Policy, backends: Mapping[str, Capabilities]) -> Engine:
    """Build the engine; a backend name the config does not define is a PolicyError."""
    unknown = [
        Problem(
            "error",
            loc,
            f"unknown backend {name!r}; the config defines: {', '.join(backends) or 'none'}",
        )
        for loc, name in policy.backend_references()
        if name not in backends
    ]
    if unknown:
        raise PolicyError(unknown)
    checks = {name: fit_check(caps) for name, caps in backends.items()}
    compiler = _Compiler(checks)
    return Engine(policy, [compiler.rule(rule) for rule in policy.rules], backends, checks)
