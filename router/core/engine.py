"""The compiled policy: features, principal and a state snapshot in, a Decision out.

Rules are tried in order and the first that matches decides. A routing rule's chain then goes
through the hard capability filter (a backend that cannot serve the request is dropped, with
the reason kept in Decision.dropped). A backend that is short of supply right now (open
breaker, draining, at capacity) is not dropped but moved to the end of the chain: the snapshot
may be a second old and the dispatcher skips open circuits anyway, so keeping it as a last
resort costs nothing and can save a request.

The common outcome (every backend of the chain fits and has supply) returns a Decision built
at compile time, so a decision allocates nothing; only the rarer outcomes build new ones.

A pinned request (the client named a backend as its model) is decided by the first rule that
matches and either rejects or lists that backend: pins skip routing preferences, never
rejections, so a budget guard written as a `reject` rule holds for pinned requests too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from router.core.capability import FitCheck, Gap, Unfit
from router.core.model import (
    BreakerState,
    Capabilities,
    Decision,
    Features,
    Principal,
    Rejection,
    Snapshot,
    SupplyState,
)
from router.core.policy import Policy

Predicate = Callable[[Features, Principal, Snapshot], bool]
AUTO_MODEL = "auto"
NO_RULE = "(no rule)"
PINNED_REASON = "pinned by the request's model"


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a rule, kept apart so `explain` can say which one failed."""

    label: str
    test: Predicate


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    conditions: tuple[Condition, ...]
    test: Predicate
    route: tuple[str, ...]
    cap: int | None
    decision: Decision
    """The whole chain (or the rejection), returned as is when nothing needs filtering."""
    pinned: Mapping[str, Decision] = field(default_factory=dict)


def _shortage(state: SupplyState) -> str:
    if state.breaker is BreakerState.OPEN:
        return "circuit open"
    if state.draining:
        return "draining"
    return f"at capacity ({state.in_flight}/{state.capacity} in flight)"


def _rejected(
    rule: str, status: int, code: str, message: str, dropped: Mapping[str, str] | None = None
) -> Decision:
    return Decision(
        candidates=(),
        rule=rule,
        reasons=(message,),
        rejection=Rejection(status, code, message),
        dropped=MappingProxyType(dict(dropped or {})),
    )


def _cannot_serve(rule: str, pinned: str, unfit: Unfit) -> Decision:
    code = "context_length_exceeded" if unfit.gap is Gap.CONTEXT else "model_cannot_serve"
    return _rejected(
        rule,
        400,
        code,
        f"Model '{pinned}' cannot serve this request: {unfit.detail}. Use model "
        f'"{AUTO_MODEL}" to let the router pick a backend that can.',
        {pinned: unfit.detail},
    )


class Engine:
    """Decides where one request goes; immutable once built, so a reload swaps whole engines."""

    def __init__(
        self,
        policy: Policy,
        rules: Sequence[CompiledRule],
        capabilities: Mapping[str, Capabilities],
        checks: Mapping[str, FitCheck],
    ) -> None:
        self.policy = policy
        self.rules = tuple(rules)
        self.capabilities = MappingProxyType(dict(capabilities))
        self.checks = MappingProxyType(dict(checks))
        self._unmatched = _rejected(
            NO_RULE,
            503,
            "no_matching_rule",
            "No routing rule matched this request. An operator must end the policy with a "
            "rule that has no conditions.",
        )

    def match(
        self,
        features: Features,
        principal: Principal,
        snapshot: Snapshot,
        pinned: str | None = None,
    ) -> CompiledRule | None:
        """The deciding rule: the first that matches and either rejects or, for a pinned
        request, lets the pinned backend serve it (a pin skips routing preferences, never
        a rejection)."""
        for rule in self.rules:
            if rule.test(features, principal, snapshot) and (
                pinned is None or pinned in rule.pinned or rule.decision.rejection
            ):
                return rule
        return None

    def decide(
        self,
        features: Features,
        principal: Principal,
        snapshot: Snapshot,
        pinned: str | None = None,
    ) -> Decision:
        """The deciding rule's decision, capability-filtered. `pinned` is the one backend the
        client named as its model; it is checked against the same hard capabilities."""
        if pinned is not None:
            return self._pinned(features, principal, snapshot, pinned)
        rule = self.match(features, principal, snapshot)
        if rule is None:
            return self._unmatched
        if rule.decision.rejection is not None:
            return rule.decision
        supply = snapshot.supply
        checks = self.checks
        for name in rule.route:
            if checks[name](features, rule.cap) is not None:
                return self._filtered(rule, features, snapshot)
            state = supply.get(name)
            if state is not None and not state.available:
                return self._filtered(rule, features, snapshot)
        return rule.decision

    def _filtered(self, rule: CompiledRule, features: Features, snapshot: Snapshot) -> Decision:
        ready: list[str] = []
        short: list[str] = []
        dropped: dict[str, str] = {}
        gaps: list[Gap] = []
        reasons = list(rule.decision.reasons)
        for name in rule.route:
            unfit = self.checks[name](features, rule.cap)
            state = snapshot.supply.get(name)
            if unfit is not None:
                dropped[name] = unfit.detail
                gaps.append(unfit.gap)
                reasons.append(f"{name} dropped: {unfit.detail}")
            elif state is not None and not state.available:
                short.append(name)
                reasons.append(f"{name} moved last: {_shortage(state)}")
            else:
                ready.append(name)
        if ready or short:
            return Decision(
                candidates=(*ready, *short),
                rule=rule.name,
                reasons=tuple(reasons),
                max_tokens_cap=rule.cap,
                dropped=MappingProxyType(dropped),
            )
        listing = "; ".join(f"{name}: {why}" for name, why in dropped.items())
        if all(gap is Gap.CONTEXT for gap in gaps):
            return _rejected(
                rule.name,
                400,
                "context_length_exceeded",
                f"The prompt is too long for every backend this request may use ({listing}). "
                "Shorten the messages or lower max_tokens.",
                dropped,
            )
        return _rejected(
            rule.name,
            400,
            "no_capable_backend",
            f"No backend that policy rule '{rule.name}' allows can serve this request "
            f"({listing}). Drop the unsupported part of the request, or ask an operator to "
            "route such requests to a capable backend.",
            dropped,
        )

    def _pinned(
        self, features: Features, principal: Principal, snapshot: Snapshot, pinned: str
    ) -> Decision:
        check = self.checks.get(pinned)
        if check is None:
            return _rejected(
                NO_RULE,
                404,
                "model_not_found",
                f"There is no backend named '{pinned}'. Use model "
                f'"{AUTO_MODEL}" or one of: {", ".join(self.checks)}.',
            )
        rule = self.match(features, principal, snapshot, pinned)
        if rule is not None and rule.decision.rejection is not None:
            return rule.decision
        unfit = check(features, None if rule is None else rule.cap)
        if unfit is not None:
            return _cannot_serve(NO_RULE if rule is None else rule.name, pinned, unfit)
        if rule is None:
            if self.match(features, principal, snapshot) is None:
                return self._unmatched
            return _rejected(
                NO_RULE,
                400,
                "model_not_allowed",
                f"The routing policy does not let model '{pinned}' serve this "
                f'request. Use model "{AUTO_MODEL}" instead.',
            )
        decision = rule.pinned[pinned]
        state = snapshot.supply.get(pinned)
        if state is not None and not state.available:
            short = f"{pinned} is short of supply: {_shortage(state)}"
            return Decision(
                candidates=decision.candidates,
                rule=rule.name,
                reasons=(*decision.reasons, short),
                max_tokens_cap=rule.cap,
            )
        return decision
