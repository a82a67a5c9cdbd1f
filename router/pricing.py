"""Prices held in memory for the hot path, versioned, kept current from the store.

Every model's versions stay in memory; `price_at(model, ts)` picks the version in force at
`ts`: the one with the latest `effective_from` not after `ts` (ties go to the higher version),
so a scheduled change still takes effect when its time comes even if a correction was added
after it was scheduled. A model with no price in force is an error, never free, unless the
seed configures a conservative default for unknown models.

The seed file (config/prices.yaml) only fills in models the store has never priced; after
that the store (admin API, CLI) is the source of truth. USD amounts are parsed with Decimal
into integer micro-dollars exactly.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from router.core.model import Price
from router.store.base import Clock, Store
from router.types import MICROS_PER_USD, Micros

UNKNOWN_VERSION = 0
"""Version reported for a price taken from the default-for-unknown-models policy."""

USDInput = str | int | Decimal | float


class PriceUnknown(LookupError):
    """No price is in force for a model and no default is configured."""

    def __init__(self, model: str) -> None:
        super().__init__(f"no price is configured for model {model!r}")
        self.model = model


def parse_usd(value: USDInput, *, what: str = "amount") -> Micros:
    """USD -> integer micro-dollars, exactly. Floats are read by their shortest repr (what was
    typed), so 0.1 is 100_000; anything finer than a micro-dollar is refused."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a USD amount, got {value!r}")
    try:
        amount = (
            Decimal(repr(value))
            if isinstance(value, float)
            else Decimal(str(value).strip().removeprefix("$"))
        )
    except InvalidOperation as exc:
        raise ValueError(f"{what}: {value!r} is not a USD amount") from exc
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what}: {value!r} must be a finite, non-negative USD amount")
    micros = amount * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"{what}: {value!r} USD is finer than a micro-dollar")
    return int(micros)


def format_usd(micros: Micros) -> str:
    """'$5.00', '$0.12', or every significant digit when below a cent: '$0.000123'."""
    amount = Decimal(micros) / MICROS_PER_USD
    if micros % 10_000 == 0:
        return f"${amount:,.2f}"
    return f"${amount.normalize():,f}"


def _usd_per_token_to_micros_per_mtok(value: float) -> Micros:
    """litellm keeps USD per token as floats; read the float as typed, round up (never
    under-charge) to a whole micro-dollar per million tokens."""
    exact = Decimal(repr(value)) * MICROS_PER_USD * 1_000_000
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def litellm_cost_map() -> Mapping[str, Mapping[str, Any]]:
    """litellm's bundled cost map, read without a network fetch and without changing it."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    cost_map: Mapping[str, Mapping[str, Any]] = litellm.model_cost
    return cost_map


@dataclass(frozen=True, slots=True)
class PriceSpec:
    """A price without identity: what the seed file says, in micro-dollars per Mtok."""

    input_per_mtok: Micros
    output_per_mtok: Micros
    cached_input_per_mtok: Micros | None = None
    per_request: Micros = 0

    def price(self, model: str, version: int = 0, effective_from: float = 0.0) -> Price:
        return Price(
            model,
            version,
            effective_from,
            self.input_per_mtok,
            self.output_per_mtok,
            self.cached_input_per_mtok,
            self.per_request,
        )


class _ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    litellm_model: str | None = None
    input_per_mtok: USDInput | None = None
    output_per_mtok: USDInput | None = None
    cached_input_per_mtok: USDInput | None = None
    per_request: USDInput = "0"


class _UnknownPolicy(_ModelEntry):
    policy: Literal["reject", "charge"] = "reject"


class _SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, _ModelEntry] = {}
    default_unknown: _UnknownPolicy = _UnknownPolicy()


@dataclass(frozen=True, slots=True)
class PriceSeed:
    models: Mapping[str, PriceSpec]
    default_unknown: PriceSpec | None
    """Charged for a model with no price in force; None rejects such requests."""


def _spec(
    name: str, entry: _ModelEntry, cost_map: Mapping[str, Mapping[str, Any]] | None
) -> PriceSpec:
    """Explicit USD fields win; litellm's cost map fills the ones left out."""
    fallback: dict[str, Micros] = {}
    explicit = (entry.input_per_mtok, entry.output_per_mtok, entry.cached_input_per_mtok)
    if entry.litellm_model is not None and None in explicit:
        costs = (cost_map if cost_map is not None else litellm_cost_map()).get(entry.litellm_model)
        if costs is None:
            raise ValueError(f"prices: {name}: litellm has no model {entry.litellm_model!r}")
        for label, key in (
            ("input_per_mtok", "input_cost_per_token"),
            ("output_per_mtok", "output_cost_per_token"),
            ("cached_input_per_mtok", "cache_read_input_token_cost"),
        ):
            if costs.get(key) is not None:
                fallback[label] = _usd_per_token_to_micros_per_mtok(float(costs[key]))

    def field(label: str, value: USDInput | None) -> Micros | None:
        if value is not None:
            return parse_usd(value, what=f"prices: {name}.{label}")
        return fallback.get(label)

    input_price = field("input_per_mtok", entry.input_per_mtok)
    output_price = field("output_per_mtok", entry.output_per_mtok)
    if input_price is None or output_price is None:
        raise ValueError(
            f"prices: {name} needs input_per_mtok and output_per_mtok "
            f"(or a litellm_model that has them)"
        )
    return PriceSpec(
        input_price,
        output_price,
        field("cached_input_per_mtok", entry.cached_input_per_mtok),
        parse_usd(entry.per_request, what=f"prices: {name}.per_request"),
    )


def load_seed(
    path: str | Path, *, cost_map: Mapping[str, Mapping[str, Any]] | None = None
) -> PriceSeed:
    """Read config/prices.yaml. `cost_map` stands in for litellm's (tests, offline tools);
    litellm is imported only when a model names `litellm_model` and no map is given."""
    raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    try:
        parsed = _SeedFile.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    models = {name: _spec(name, entry, cost_map) for name, entry in parsed.models.items()}
    unknown = parsed.default_unknown
    default = _spec("default_unknown", unknown, cost_map) if unknown.policy == "charge" else None
    return PriceSeed(models, default)


class PriceBook:
    """Every price version, in memory; the hot path reads only this."""

    def __init__(
        self,
        prices: Iterable[Price] = (),
        *,
        default_unknown: PriceSpec | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._default = default_unknown
        self._clock = clock
        self._versions: dict[str, list[Price]] = {}
        self._order: dict[str, list[tuple[float, int]]] = {}
        for price in prices:
            self.apply(price)

    @classmethod
    async def load(
        cls, store: Store, seed: PriceSeed | str | Path | None = None, *, clock: Clock = time.time
    ) -> PriceBook:
        """Read every version from the store, seeding models it has never priced (from a
        PriceSeed or the path of a seed file), then follow the store's changes."""
        if isinstance(seed, str | Path):
            seed = load_seed(seed)
        existing = await store.prices()
        if seed is not None:
            for model, spec in seed.models.items():
                if not existing.get(model):
                    existing[model] = [await store.add_price(spec.price(model))]
        book = cls(
            (p for versions in existing.values() for p in versions),
            default_unknown=seed.default_unknown if seed else None,
            clock=clock,
        )
        store.watch_prices(book.apply)
        return book

    def apply(self, price: Price) -> None:
        """Add one version (idempotent: the watch may deliver a version twice)."""
        order = self._order.setdefault(price.model, [])
        key = (price.effective_from, price.version)
        index = bisect.bisect_left(order, key)
        if index < len(order) and order[index] == key:
            return
        order.insert(index, key)
        self._versions.setdefault(price.model, []).insert(index, price)

    def _in_force(self, model: str, when: float) -> Price | None:
        index = bisect.bisect_right(self._order.get(model, ()), (when, math.inf))
        return self._versions[model][index - 1] if index else None

    def price_at(self, model: str, ts: float | None = None) -> Price:
        """The version of `model` in force at `ts` (default: now)."""
        price = self._in_force(model, self._clock() if ts is None else ts)
        if price is not None:
            return price
        if self._default is None:
            raise PriceUnknown(model)
        return self._default.price(model, UNKNOWN_VERSION)

    def current(self) -> dict[str, Price]:
        """Each model's price in force now (a model whose every version is still scheduled
        is left out)."""
        now = self._clock()
        in_force = {model: self._in_force(model, now) for model in self._versions}
        return {model: price for model, price in in_force.items() if price is not None}

    def scheduled(self) -> list[Price]:
        """Versions whose effective_from is still ahead."""
        now = self._clock()
        return [
            p for versions in self._versions.values() for p in versions if p.effective_from > now
        ]

    def history(self, model: str) -> list[Price]:
        """Every version of `model`, oldest version first."""
        return sorted(self._versions.get(model, ()), key=lambda p: p.version)
