"""Model prices: add a version, read what is in force, scheduled, or ever was. A version added
here is in this replica's price book at once and reaches the others through the store's
notification, within a second."""

from __future__ import annotations

import time
from collections.abc import Callable

from router.core.model import Price
from router.errors import InvalidRequest, NotFound
from router.pricing import PriceBook
from router.services.guard import stored
from router.store.base import Store
from router.types import Micros

YEAR_10000 = 253_402_300_800.0
"""Epoch seconds of 10000-01-01: later instants cannot be written as ISO dates."""


class PriceAdmin:
    def __init__(
        self, store: Store, book: PriceBook, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._book = book
        self._clock = clock

    async def add(
        self,
        model: str,
        *,
        input_per_mtok: Micros,
        output_per_mtok: Micros,
        cached_input_per_mtok: Micros | None = None,
        per_request: Micros = 0,
        effective_from: float | None = None,
    ) -> Price:
        """A new version (the store numbers it), in force from `effective_from` (epoch
        seconds; now when None)."""
        effective = self._clock() if effective_from is None else effective_from
        if not 0 <= effective < YEAR_10000:
            raise InvalidRequest(
                "`effective_from` must fall between 1970 and 9999.", param="effective_from"
            )
        price = Price(
            model,
            0,
            effective,
            input_per_mtok,
            output_per_mtok,
            cached_input_per_mtok,
            per_request,
        )
        added = await stored(self._store.add_price(price))
        self._book.apply(added)
        return added

    def in_force(self) -> list[Price]:
        """Each model's price in force now, by model name."""
        return [price for _, price in sorted(self._book.current().items())]

    def scheduled(self) -> list[Price]:
        return self._book.scheduled()

    def history(self, model: str) -> list[Price]:
        """Every version of `model`, oldest first, or 404."""
        history = self._book.history(model)
        if not history:
            raise NotFound(
                f"There is no price for model {model!r} (GET /admin/prices lists them).",
                code="price_not_found",
            )
        return history
