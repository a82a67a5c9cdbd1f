"""Plain data the pure core works on: request features, backend capabilities, a state
snapshot, and the decision. Frozen, slotted dataclasses so evaluation allocates little and
nothing can be mutated behind the engine's back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from router.types import Micros


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    FILE = "file"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class PromptSize:
    """Prompt length as a cheap [lower, upper] token bound, with the exact count on demand.

    The bound comes from character counts; the tokenizer runs only when a caller asks a
    question the bound cannot answer, and at most once per request. `refine(limit)`, if given,
    is a tighter lower bound that costs one pass over the text (and may stop once it passes
    `limit`, so it is exact only when it returns <= limit): it is tried before the tokenizer,
    so a prompt that is plainly too long is turned away without tokenizing it.
    """

    __slots__ = ("_count", "_exact", "_refine", "lower", "upper")

    def __init__(
        self,
        lower: int,
        upper: int,
        count: Callable[[], int] | None = None,
        refine: Callable[[int], int] | None = None,
    ) -> None:
        self.lower = lower
        self.upper = upper
        self._count = count
        self._refine = refine
        self._exact: int | None = lower if count is None and lower == upper else None

    @property
    def tokenized(self) -> bool:
        return self._exact is not None and self._count is not None

    def exact(self) -> int:
        if self._exact is None:
            if self._count is None:
                return self.upper
            self._exact = self._count()
        return self._exact

    def at_most(self, limit: int) -> bool:
        """True when the prompt fits in `limit` tokens; tokenizes only if the bound is unsure."""
        if self.upper <= limit:
            return True
        if self.lower > limit:
            return False
        if self._refine is not None and self._exact is None:
            refined = self._refine(limit)
            self.lower = max(self.lower, refined)
            if refined > limit:
                return False
            self._refine = None
        return self.exact() <= limit

    def worst_case(self) -> int:
        """Tokens to reserve for: the exact count if known, else the upper bound."""
        return self._exact if self._exact is not None else self.upper


@dataclass(frozen=True, slots=True)
class Features:
    """What the router knows about one chat request, without any network or image decoding."""

    input_modalities: frozenset[Modality]
    output_modalities: frozenset[Modality]
    prompt: PromptSize
    max_output_tokens: int | None
    tools: int
    tool_choice: str | None
    json_schema: bool
    stream: bool
    image_generation: bool = False
    realtime_audio: bool = False
    prefer: str | None = None
    message_count: int = 0
    json_object: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Hard limits of one backend. Rules are preferences; these are never overridden."""

    context_window: int
    max_output_tokens: int
    input_modalities: frozenset[Modality]
    output_modalities: frozenset[Modality]
    tools: bool = True
    json_schema: bool = True
    image_generation: bool = False
    realtime_audio: bool = False


@dataclass(frozen=True, slots=True)
class Price:
    """One price version of one model, in micro-dollars per million tokens."""

    model: str
    version: int
    effective_from: float
    input_per_mtok: Micros
    output_per_mtok: Micros
    cached_input_per_mtok: Micros | None = None
    per_request: Micros = 0


@dataclass(frozen=True, slots=True)
class SupplyState:
    """What the router currently believes about one backend's supply."""

    breaker: BreakerState = BreakerState.CLOSED
    draining: bool = False
    in_flight: int = 0
    capacity: int | None = None
    quota_left_fraction: float | None = None

    @property
    def available(self) -> bool:
        if self.draining or self.breaker is BreakerState.OPEN:
            return False
        return self.capacity is None or self.in_flight < self.capacity


@dataclass(frozen=True, slots=True)
class BudgetLeft:
    """Remaining room under the tightest budget of one scope (key or team)."""

    remaining: Micros
    limit: Micros
    soft_limit: Micros | None = None

    @property
    def fraction(self) -> float:
        return 1.0 if self.limit <= 0 else max(0.0, self.remaining / self.limit)

    @property
    def below_soft(self) -> bool:
        if self.soft_limit is None:
            return False
        return self.limit - self.remaining >= self.soft_limit


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from the API key."""

    key_id: str
    team: str
    tags: frozenset[str] = frozenset()
    name: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State the engine may consult, read from memory (never from the network) per request."""

    supply: Mapping[str, SupplyState] = field(default_factory=dict)
    prices: Mapping[str, Price] = field(default_factory=dict)
    key_budget: BudgetLeft | None = None
    team_budget: BudgetLeft | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer: candidates in order, which rule fired, and why."""

    candidates: tuple[str, ...]
    rule: str
    reasons: tuple[str, ...] = ()
    max_tokens_cap: int | None = None
    rejection: Rejection | None = None
    dropped: Mapping[str, str] = field(default_factory=dict)
    """Backends the rule wanted but capabilities or supply excluded, with why."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the upstream reported (or the router counted) for one served request."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    counted: bool = False
    """True when the upstream reported no usage and the router counted tokens itself."""
    reasoning_tokens: int = 0
    """Part of completion_tokens (priced as output), kept apart for the ledger."""
