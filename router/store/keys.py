"""Every Redis key the store touches, built in one place.

Layout: `<prefix>:{t:<team>}:...` for everything one admission or settlement touches, so
each Lua script's keys share the team's hash tag and land in one Redis Cluster slot. Names
inside a tag are percent-encoded, so a `}` or `:` in a team or key id cannot move the tag.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from router.store.base import Budget, Period


@lru_cache(maxsize=65_536)
def _enc(name: str) -> str:
    """Cached: the same few team and key ids are encoded on every request."""
    return quote(name, safe="-_.@")


class KeySpace:
    """Key names under one prefix; the prefix must not contain a hash tag of its own."""

    def __init__(self, prefix: str) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"key prefix {prefix!r} must be non-empty and free of braces")
        self.prefix = prefix

    def team(self, team: str) -> str:
        return f"{self.prefix}:{{t:{_enc(team)}}}"

    def budget(self, team: str, budget: Budget) -> str:
        """Hash of one budget's counters: fields per period bucket (see lua/_lib.lua)."""
        base = f"{self.team(team)}:b:{budget.scope.value}:{_enc(budget.scope_id)}"
        if budget.period is Period.ROLLING:
            return f"{base}:rolling:{budget.window_s}"
        return f"{base}:{budget.period.value}"

    def rate(self, team: str, key_id: str) -> str:
        """Hash of per-minute request and token counts for one key."""
        return f"{self.team(team)}:k:{_enc(key_id)}:rate"

    def leases(self, team: str, key_id: str) -> str:
        """Zset request_id -> lease expiry (ms) for one key's concurrency limit."""
        return f"{self.team(team)}:k:{_enc(key_id)}:leases"

    def reservations(self, team: str) -> str:
        """Hash request_id -> reservation record (JSON)."""
        return f"{self.team(team)}:res"

    def reservation_times(self, team: str) -> str:
        """Zset request_id -> reservation time (ms), to find orphans without a scan."""
        return f"{self.team(team)}:res-at"

    def settled(self, team: str) -> str:
        """Zset request_id -> settle time (ms): makes settle idempotent for two days."""
        return f"{self.team(team)}:settled"

    def ledger(self, team: str) -> str:
        return f"{self.team(team)}:ledger"

    def team_budgets(self, team: str) -> str:
        return f"{self.team(team)}:budgets"

    def teams(self) -> str:
        """Set of every team ever seen, so the ledger and reconcile can visit each stream."""
        return f"{self.prefix}:teams"

    def price_models(self) -> str:
        return f"{self.prefix}:{{prices}}:models"

    def price_versions(self, model: str) -> str:
        """Hash version -> price (JSON)."""
        return f"{self.prefix}:{{prices}}:v:{_enc(model)}"

    def price_counter(self, model: str) -> str:
        return f"{self.prefix}:{{prices}}:n:{_enc(model)}"

    def price_channel(self) -> str:
        return f"{self.prefix}:prices"

    def keys_by_id(self) -> str:
        return f"{self.prefix}:{{keys}}:by-id"

    def keys_by_hash(self) -> str:
        return f"{self.prefix}:{{keys}}:by-hash"
