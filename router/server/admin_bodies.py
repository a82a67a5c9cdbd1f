"""What the admin API accepts: request bodies (unknown fields refused, USD amounts as exact
strings or numbers) and time parameters (epoch seconds or ISO 8601, UTC when no offset)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from router.errors import InvalidRequest
from router.pricing import parse_usd
from router.services.budgets import BudgetTerms
from router.store.base import Limits, Period
from router.types import Micros

USD = Annotated[Micros, BeforeValidator(lambda v: parse_usd(v, what="USD amount"))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetIn(_Body):
    period: Period
    limit_usd: USD
    soft_limit_usd: USD | None = None
    window_s: int | None = Field(None, gt=0)

    def terms(self) -> BudgetTerms:
        return BudgetTerms(self.period, self.limit_usd, self.soft_limit_usd, self.window_s)


class LimitsIn(_Body):
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, gt=0)

    def build(self) -> Limits:
        return Limits(self.rpm, self.tpm, self.max_concurrency)


class CreateKey(_Body):
    team: str = Field(min_length=1, max_length=128)
    name: str = Field("", max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=64)
    budgets: list[BudgetIn] = Field(default_factory=list, max_length=16)
    limits: LimitsIn = LimitsIn()


class TeamBudgets(_Body):
    budgets: list[BudgetIn] = Field(max_length=16)


class PriceIn(_Body):
    model: str = Field(min_length=1, max_length=256)
    input_per_mtok: USD
    output_per_mtok: USD
    cached_input_per_mtok: USD | None = None
    per_request: USD = 0
    effective_from: datetime | float | None = None
    """When the price takes effect (ISO 8601 or epoch seconds); now when left out."""

    def effective_ts(self) -> float | None:
        when = self.effective_from
        if when is None or isinstance(when, float):
            return when
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds or ISO 8601 (UTC when no offset is given); None when not given."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(
            f"`{name}` must be epoch seconds or ISO 8601, got {value!r}.", param=name
        ) from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
