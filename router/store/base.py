"""The one storage contract every store implements: prices, keys, budgets and reservations,
limits and leases, and the ledger.

The Redis store is for production and for more than one process; the in-process store is the
embedded default for a single process. Both pass the same contract suite in tests/contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from router.core.model import Price
from router.types import Micros


class Scope(StrEnum):
    KEY = "key"
    TEAM = "team"


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"
    ROLLING = "rolling"


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending cap over one period for one key or one team."""

    scope: Scope
    scope_id: str
    period: Period
    hard_limit: Micros
    soft_limit: Micros | None = None
    window_s: int | None = None
    """Window length for a rolling budget; unused for calendar periods (UTC)."""

    def __post_init__(self) -> None:
        if self.hard_limit < 0:
            raise ValueError(f"budget hard_limit must be >= 0, got {self.hard_limit}")
        if self.period is Period.ROLLING and (self.window_s is None or self.window_s <= 0):
            raise ValueError("a rolling budget needs window_s > 0")


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-key rate and concurrency limits; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A client API key as stored: only the hash of the secret, never the secret."""

    key_id: str
    key_hash: str
    team: str
    name: str = ""
    tags: frozenset[str] = frozenset()
    budgets: tuple[Budget, ...] = ()
    limits: Limits = Limits()
    disabled: bool = False
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one budget stands right now."""

    budget: Budget
    spent: Micros
    reserved: Micros
    resets_at: float | None

    @property
    def remaining(self) -> Micros:
        return self.budget.hard_limit - self.spent - self.reserved


@dataclass(frozen=True, slots=True)
class AdmitRequest:
    """Everything one atomic admission checks and reserves."""

    request_id: str
    key_id: str
    team: str
    budgets: tuple[Budget, ...]
    limits: Limits
    reserve: Micros
    tokens: int
    """Estimated tokens, counted against TPM at admission."""
    lease_ttl_ms: int = 600_000
    nonce: str = ""
    """Identifies this admission attempt: the same request sent again (a client library
    retrying after a lost reply) finds its own reservation and is answered as admitted;
    another request that uses the same request_id is answered `taken`."""


class Denial(StrEnum):
    RPM = "rpm"
    TPM = "tpm"
    CONCURRENCY = "concurrency"
    BUDGET = "budget"


@dataclass(frozen=True, slots=True)
class AdmitResult:
    admitted: bool
    denied_by: Denial | None = None
    denied_budget: BudgetStatus | None = None
    retry_after_s: float | None = None
    budgets: tuple[BudgetStatus, ...] = ()
    taken: bool = False
    """The request_id belongs to another admission (it holds a reservation under another
    nonce, or was settled): nothing was checked or changed, and `admitted` is false."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One settled request, as FinOps will read it."""

    request_id: str
    key_id: str
    team: str
    backend: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    price_version: int
    cost: Micros
    rule: str
    fallbacks: tuple[str, ...] = ()
    latency_ms: int = 0
    status: str = "ok"
    ts: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Settlement:
    """Replaces a reservation with the actual cost and appends the ledger entry, atomically."""

    request_id: str
    key_id: str
    team: str
    budgets: tuple[Budget, ...]
    cost: Micros
    entry: LedgerEntry


PriceListener = Callable[[Price], Awaitable[None] | None]

Clock = Callable[[], float]
"""Wall-clock seconds since the epoch (time.time); injected so tests move time instead of
sleeping. The Redis store ignores it: its scripts read Redis TIME."""


class Store(Protocol):
    """Shared state. Every method either does its whole job or raises StoreError."""

    async def ping(self) -> None:
        """Raise StoreError when the store cannot be reached."""

    async def close(self) -> None:
        """Release connections and background tasks."""

    async def admit(self, request: AdmitRequest) -> AdmitResult:
        """Check every limit and reserve `reserve` micros on every budget, all or nothing.
        Nothing changes for a request_id that already holds a reservation (admitted when the
        nonce is the same: a retry; `taken` otherwise) or was settled in the last two days
        (`taken`)."""

    async def settle(self, settlement: Settlement) -> tuple[BudgetStatus, ...]:
        """Swap the reservation for the actual cost, release the lease, write the ledger."""

    async def release(
        self, request_id: str, key_id: str, team: str, budgets: tuple[Budget, ...]
    ) -> None:
        """Drop a reservation and lease without charging: the request was never served."""

    async def budget_status(
        self, team: str, budgets: tuple[Budget, ...]
    ) -> tuple[BudgetStatus, ...]:
        """Read where each budget stands, without changing anything. `team` is the team the
        budgets belong to (a key budget lives with its key's team)."""

    async def add_price(self, price: Price) -> Price:
        """Store a new version; the store assigns the version number and notifies watchers."""

    async def prices(self) -> dict[str, list[Price]]:
        """Every version of every model's price, oldest first."""

    def watch_prices(self, listener: PriceListener) -> None:
        """Call `listener` for every price added by any process, within a second."""

    async def put_key(self, record: KeyRecord) -> None:
        """Create or replace a key record (indexed by its hash)."""

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        """Resolve a hashed secret to its record."""

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        """Look a key up by its public id."""

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, for the admin API."""

    async def set_team_budgets(self, team: str, budgets: tuple[Budget, ...]) -> None:
        """Budgets that apply to every key of a team."""

    async def team_budgets(self, team: str) -> tuple[Budget, ...]:
        """The team's budgets, empty when none are set."""

    def ledger(
        self, since: float | None = None, until: float | None = None
    ) -> AsyncIterator[LedgerEntry]:
        """Settled requests in time order."""

    async def stale_reservations(self, older_than_s: float) -> list[tuple[str, str, Micros]]:
        """(request_id, team, reserved) of reservations whose process may have died."""

    async def reconcile(self, request_id: str, team: str) -> LedgerEntry | None:
        """Charge an orphaned reservation at its reserved amount and ledger it as such."""


class StoreError(Exception):
    """The store could not be reached or did not answer in time."""

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        """True when the store timed out mid-command, so a write may have happened anyway."""
