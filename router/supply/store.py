"""The contract every supply store implements: shared breakers, capacity leases and provider
quotas, one backend at a time. The in-process store serves a single replica; the Redis store
shares the same state between replicas. One contract suite runs against both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from router.supply.model import BreakerView, Force, Outcome, Slot, SyncView
from router.supply.settings import SupplySettings


class SupplyStore(Protocol):
    """Every method either does its whole job or raises `router.store.base.StoreError`."""

    async def record(self, backend: str, outcome: Outcome, settings: SupplySettings) -> BreakerView:
        """Add call outcomes to the breaker (successes first) and give back a trial permit."""

    async def try_probe(
        self, backend: str, probe_id: str, ttl_s: float, settings: SupplySettings
    ) -> tuple[bool, BreakerView]:
        """Take a half-open trial permit for at most `ttl_s`, moving an open breaker whose
        cooldown ended to half-open; False when no permit is free."""

    async def acquire(
        self, backend: str, lease_id: str, tokens: int, settings: SupplySettings
    ) -> Slot:
        """Take a capacity lease and spend the quota, both or neither."""

    async def release(self, backend: str, lease_id: str) -> None:
        """Give a capacity lease back (idempotent)."""

    async def sync(
        self, backend: str, successes: int, leases: Sequence[str], settings: SupplySettings
    ) -> SyncView:
        """Flush batched successes, renew this replica's live leases, and read the state."""

    async def force(self, backend: str, force: Force, settings: SupplySettings) -> BreakerView:
        """Override the breaker; any change restarts the evidence from a closed breaker."""

    async def drain(self, backend: str, draining: bool) -> None:
        """Stop (or resume) sending new requests to a backend, on every replica."""

    async def close(self) -> None:
        """Release connections."""
