"""Decision -> plan: what each candidate is sent as its output bound, and what is reserved.

The engine says where a request may go; the plan says on what terms. Each candidate may write
at most the client's ask, under the rule's cap and the backend's own ceiling (some servers,
like llama.cpp's, would otherwise generate until their context is full). Admission reserves
the prompt plus the largest of those bounds, so whichever candidate serves, its charge fits.

Backends whose provider needs an API key that the config does not give are dropped here; when
none is left the plan is a 503 `backend_not_configured` that names the setting, so the real
request and `explain` refuse alike, before anything is reserved or sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from router.core.capability import fit_check
from router.core.engine import Engine
from router.core.model import Capabilities, Decision, Features, Principal, Rejection, Snapshot

TOKENIZE_ABOVE = 4096
"""Prompts whose byte bound exceeds this are tokenized before admission, so a long prompt
reserves what it will cost, not the 4-5x looser byte bound."""
NO_API_KEY = "no API key"


@dataclass(frozen=True, slots=True)
class Plan:
    """A decision with its terms. `output_tokens[i]` is the bound candidate `i` is sent;
    a rejected plan has no candidates and carries the refusal in `decision.rejection`."""

    decision: Decision
    output_tokens: tuple[int, ...]
    prompt_tokens: int
    """Prompt tokens admission reserves for."""
    max_output_tokens: int
    """Output tokens admission reserves for: the largest candidate bound."""

    @property
    def rejection(self) -> Rejection | None:
        return self.decision.rejection


def reserve_tokens(features: Features) -> int:
    """Prompt tokens to reserve: exact for long prompts, the cheap upper bound otherwise."""
    prompt = features.prompt
    return prompt.exact() if prompt.upper > TOKENIZE_ABOVE else prompt.worst_case()


class Planner:
    """Built once from the deployment config; pure and immutable afterwards."""

    def __init__(
        self,
        capabilities: Mapping[str, Capabilities],
        unconfigured: Iterable[str] = (),
        *,
        config_source: str = "the router config",
    ) -> None:
        self._ceilings = {name: caps.max_output_tokens for name, caps in capabilities.items()}
        self._checks = {name: fit_check(caps) for name, caps in capabilities.items()}
        self.unconfigured = frozenset(unconfigured)
        self._source = config_source

    def route(
        self,
        engine: Engine,
        features: Features,
        principal: Principal,
        snapshot: Snapshot,
        pinned: str | None = None,
    ) -> Plan:
        """Decide, then plan: the one path every front door and `explain` take."""
        return self.plan(features, engine.decide(features, principal, snapshot, pinned))

    def plan(self, features: Features, decision: Decision) -> Plan:
        if decision.rejection is not None:
            return Plan(decision, (), 0, 0)
        unconfigured = self.unconfigured
        if unconfigured and not unconfigured.isdisjoint(decision.candidates):
            decision = self._configured(features, decision)
            if decision.rejection is not None:
                return Plan(decision, (), 0, 0)
        requested = features.max_output_tokens
        cap = decision.max_tokens_cap
        ceilings = self._ceilings
        outputs = []
        for name in decision.candidates:
            limit = ceilings[name]
            if requested is not None and requested < limit:
                limit = requested
            if cap is not None and cap < limit:
                limit = cap
            outputs.append(limit)
        return Plan(decision, tuple(outputs), reserve_tokens(features), max(outputs, default=0))

    def _configured(self, features: Features, decision: Decision) -> Decision:
        """The decision without backends that have no API key, or a 503 that tells the
        operator what to set when none is left."""
        missing = [name for name in decision.candidates if name in self.unconfigured]
        ready = tuple(name for name in decision.candidates if name not in self.unconfigured)
        dropped = {**decision.dropped, **dict.fromkeys(missing, NO_API_KEY)}
        if ready:
            return dataclasses.replace(decision, candidates=ready, dropped=dropped)
        unfit = [
            f"{name}: {gap.detail}"
            for name, check in self._checks.items()
            if name not in missing and (gap := check(features, decision.max_tokens_cap)) is not None
        ]
        names = " or ".join(missing)
        fields = ", ".join(f"backends.{name}.api_key" for name in missing)
        message = (
            f"Only the {names} backend can serve this request"
            + (f" ({'; '.join(unfit)})" if unfit else "")
            + f", and it has no API key configured. Set {fields} in {self._source} "
            "(the shipped configs read FULL_API_KEY) and restart the router."
        )
        return dataclasses.replace(
            decision,
            candidates=(),
            reasons=(*decision.reasons, message),
            rejection=Rejection(503, "backend_not_configured", message),
            dropped=dropped,
        )
