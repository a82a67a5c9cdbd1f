"""Client API keys: mint, list, read, disable, rotate. The plaintext of a key exists only in
the answer that mints it; the store keeps its hash under this server's pepper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from router.errors import NotFound
from router.keys import KeyResolver, generate_key
from router.services.budgets import BudgetTerms
from router.services.guard import stored
from router.store.base import BudgetStatus, KeyRecord, Limits, Scope, Store

_UNLIMITED = Limits()


class KeyAdmin:
    """Key changes take effect at once on this replica (its key cache is told) and within
    the key cache TTL on the others."""

    def __init__(
        self, store: Store, resolver: KeyResolver, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._clock = clock

    async def create(
        self,
        team: str,
        *,
        name: str = "",
        tags: Iterable[str] = (),
        budgets: Sequence[BudgetTerms] = (),
        limits: Limits = _UNLIMITED,
    ) -> tuple[str, KeyRecord]:
        """(plaintext, record) of a new key."""
        plaintext, key_id = generate_key()
        record = KeyRecord(
            key_id,
            self._resolver.hash(plaintext),
            team,
            name,
            frozenset(tags),
            tuple(b.bind(Scope.KEY, key_id) for b in budgets),
            limits,
            created_at=self._clock(),
        )
        await stored(self._store.put_key(record))
        return plaintext, record

    async def all(self) -> list[KeyRecord]:
        return await stored(self._store.list_keys())

    async def get(self, key_id: str) -> KeyRecord:
        """The key's record, or 404."""
        record = await stored(self._store.key_by_id(key_id))
        if record is None:
            raise NotFound(
                f"There is no key {key_id!r} (GET /admin/keys lists them).", code="key_not_found"
            )
        return record

    async def budget_status(self, record: KeyRecord) -> tuple[BudgetStatus, ...]:
        """Where each of the key's own budgets stands."""
        return await stored(self._store.budget_status(record.team, record.budgets))

    async def disable(self, key_id: str) -> KeyRecord:
        record = replace(await self.get(key_id), disabled=True)
        await stored(self._store.put_key(record))
        self._resolver.invalidate(record.key_hash)
        return record

    async def rotate(self, key_id: str) -> tuple[str, KeyRecord]:
        """A new secret for the same key id, budgets and history; the old one stops working."""
        old = await self.get(key_id)
        plaintext, _ = generate_key()
        record = replace(old, key_hash=self._resolver.hash(plaintext))
        await stored(self._store.put_key(record))
        self._resolver.invalidate(old.key_hash)
        return plaintext, record
