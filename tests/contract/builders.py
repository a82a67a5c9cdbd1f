"""Small constructors so contract tests read as the rule they check."""

from __future__ import annotations

from typing import Any

from router.store.base import (
    AdmitRequest,
    Budget,
    LedgerEntry,
    Limits,
    Period,
    Scope,
    Settlement,
)

KEY = "key-1"
TEAM = "team-a"
NO_LIMITS = Limits()


def key_budget(
    limit: int,
    period: Period = Period.DAY,
    *,
    key_id: str = KEY,
    window_s: int | None = None,
    soft: int | None = None,
) -> Budget:
    return Budget(Scope.KEY, key_id, period, limit, soft, window_s)


def team_budget(
    limit: int, period: Period = Period.DAY, *, team: str = TEAM, window_s: int | None = None
) -> Budget:
    return Budget(Scope.TEAM, team, period, limit, None, window_s)


def admit_request(
    rid: str,
    budgets: tuple[Budget, ...] = (),
    reserve: int = 100,
    *,
    key_id: str = KEY,
    team: str = TEAM,
    limits: Limits = NO_LIMITS,
    tokens: int = 10,
    lease_ttl_ms: int = 600_000,
) -> AdmitRequest:
    return AdmitRequest(rid, key_id, team, budgets, limits, reserve, tokens, lease_ttl_ms)


def ledger_entry(
    rid: str, cost: int, *, key_id: str = KEY, team: str = TEAM, **overrides: Any
) -> LedgerEntry:
    fields: dict[str, Any] = {
        "request_id": rid,
        "key_id": key_id,
        "team": team,
        "backend": "mini",
        "model": "mini",
        "prompt_tokens": 5,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "price_version": 1,
        "cost": cost,
        "rule": "default",
    }
    fields.update(overrides)
    return LedgerEntry(**fields)


def settlement(
    rid: str,
    budgets: tuple[Budget, ...],
    cost: int,
    *,
    key_id: str = KEY,
    team: str = TEAM,
    **entry: Any,
) -> Settlement:
    return Settlement(
        rid, key_id, team, budgets, cost, ledger_entry(rid, cost, key_id=key_id, team=team, **entry)
    )
