"""The routing policy as data: pydantic models of the YAML operators write.

A policy is an ordered list of rules; the first rule whose `when` holds decides. A rule
either routes to an ordered chain of backends (optionally capping max_tokens) or rejects.
Unknown fields are errors so a typo never silently widens a rule. These models are only
parsed at load time; `compile.py` turns them into plain callables for the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.core.model import BreakerState, Modality
from router.core.problems import Loc

Preference = Literal["cost", "quality", "latency", "none"]
"""`none` matches requests without a valid x-router-prefer header."""
RULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""Rule names travel in response headers, so they stay header-safe."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


class _SetCondition(_Model):
    """At least one of `any`, every one of `all`, none of `none`; a bare list means `any`."""

    @model_validator(mode="before")
    @classmethod
    def _list_means_any(cls, value: object) -> object:
        return {"any": value} if isinstance(value, list | str) else value

    @field_validator("any", "all", "none", mode="before", check_fields=False)
    @classmethod
    def _scalar(cls, value: object) -> object:
        return _one_or_many(value)


class ModalityCondition(_SetCondition):
    any: list[Modality] | None = None
    all: list[Modality] | None = None
    none: list[Modality] | None = None


class _Range(_Model):
    @model_validator(mode="after")
    def _some_bound(self) -> _Range:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("give at least one of gt, gte, lt, lte, between")
        return self


class TokenRange(_Range):
    """Integer bounds; several given means all of them."""

    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None
    between: tuple[int, int] | None = None
    """Inclusive at both ends."""

    def span(self) -> tuple[int | None, int | None]:
        """The same bounds as inclusive (min, max); min > max means nothing matches."""
        lows = [
            v
            for v in (
                self.gte,
                None if self.gt is None else self.gt + 1,
                None if self.between is None else self.between[0],
            )
            if v is not None
        ]
        highs = [
            v
            for v in (
                self.lte,
                None if self.lt is None else self.lt - 1,
                None if self.between is None else self.between[1],
            )
            if v is not None
        ]
        return max(lows, default=None), min(highs, default=None)


class AmountRange(_Range):
    """Real-valued bounds (USD, fractions); several given means all of them."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    between: tuple[float, float] | None = None

    def empty(self) -> bool:
        """True when no value can satisfy every bound at once."""
        low = max(
            [v for v in (self.gt, self.gte) if v is not None]
            + ([self.between[0]] if self.between else []),
            default=float("-inf"),
        )
        high = min(
            [v for v in (self.lt, self.lte) if v is not None]
            + ([self.between[1]] if self.between else []),
            default=float("inf"),
        )
        strict = (self.gt is not None and self.gt == low) or (
            self.lt is not None and self.lt == high
        )
        return low > high or (strict and low == high)


class BudgetCondition(_Model):
    """Budget left. A scope with no budget is unlimited: fraction 1, never below soft."""

    scope: Literal["key", "team", "any", "all"] = "any"
    below_soft: bool | None = None
    remaining_usd: AmountRange | None = None
    remaining_micros: AmountRange | None = None
    fraction: AmountRange | None = None
    """remaining / limit, from 0 to 1."""


class TagCondition(_SetCondition):
    any: list[str] | None = None
    all: list[str] | None = None
    none: list[str] | None = None


class SupplyCondition(_Model):
    """What the router believes about one backend's supply right now."""

    backend: str
    available: bool | None = None
    draining: bool | None = None
    breaker: list[BreakerState] | None = None
    load: AmountRange | None = None
    """in_flight / capacity; 0 when the capacity is unknown."""
    quota_left: AmountRange | None = None
    """Fraction of a shared provider quota left; 1 when unknown."""

    _scalar = field_validator("breaker", mode="before")(_one_or_many)


class When(_Model):
    """Conditions of a rule; every one given must hold. Empty matches every request."""

    input: ModalityCondition | None = None
    output: ModalityCondition | None = None
    image_generation: bool | None = None
    realtime_audio: bool | None = None
    prompt_tokens: TokenRange | None = None
    max_output_tokens: TokenRange | None = None
    """Never matches a request that sets no max_tokens."""
    tools: bool | None = None
    json_schema: bool | None = None
    json_object: bool | None = None
    stream: bool | None = None
    prefer: list[Preference] | None = None
    budget: BudgetCondition | None = None
    key_id: list[str] | None = None
    team: list[str] | None = None
    tags: TagCondition | None = None
    backend_available: list[str] | None = None
    supply: list[SupplyCondition] | None = None
    can_serve: list[str] | None = None
    """Each named backend's hard capabilities allow this request (window, modalities...)."""
    any_of: list[When] | None = None
    not_: When | None = Field(default=None, alias="not")

    _scalars = field_validator(
        "prefer", "key_id", "team", "backend_available", "can_serve", mode="before"
    )(_one_or_many)

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.model_fields_set)

    def backend_references(self, loc: Loc) -> Iterator[tuple[Loc, str]]:
        """Every backend name these conditions mention, with where it is."""
        for key in ("backend_available", "can_serve"):
            for index, name in enumerate(getattr(self, key) or ()):
                yield (*loc, key, index), name
        for index, supply in enumerate(self.supply or ()):
            yield (*loc, "supply", index, "backend"), supply.backend
        for index, nested in enumerate(self.any_of or ()):
            yield from nested.backend_references((*loc, "any_of", index))
        if self.not_ is not None:
            yield from self.not_.backend_references((*loc, "not"))


class RejectAction(_Model):
    status: Literal[400, 403, 413, 429, 503]
    message: str = Field(min_length=1)
    code: str = "policy_rejected"


class Rule(_Model):
    name: str = Field(pattern=RULE_NAME, max_length=64)
    description: str | None = None
    when: When = When()
    route: list[str] | None = Field(default=None, min_length=1)
    reject: RejectAction | None = None
    cap_max_tokens: int | None = Field(default=None, gt=0)

    _scalar = field_validator("route", mode="before")(_one_or_many)

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        if (self.route is None) == (self.reject is None):
            raise ValueError("give exactly one of 'route' or 'reject'")
        if self.reject is not None and self.cap_max_tokens is not None:
            raise ValueError("'cap_max_tokens' only applies to a rule with 'route'")
        if self.route is not None and len(set(self.route)) != len(self.route):
            raise ValueError("'route' names a backend twice")
        return self


class Policy(_Model):
    version: Literal[1] = 1
    description: str | None = None
    rules: list[Rule] = Field(min_length=1)

    def backend_references(self) -> Iterator[tuple[Loc, str]]:
        """Every backend name the policy mentions, with where it is."""
        for index, rule in enumerate(self.rules):
            yield from rule.when.backend_references(("rules", index, "when"))
            for position, name in enumerate(rule.route or ()):
                yield ("rules", index, "route", position), name

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return rules
