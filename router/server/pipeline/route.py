"""Steps 3 and 4: where the request may go (the policy engine, on state read from memory)
and on what terms (the plan). Explain takes this very path, so it cannot disagree with the
request it explains."""

from __future__ import annotations

from router.core.model import Features, Price, Principal, Snapshot
from router.core.plan import Plan
from router.runtime import Runtime
from router.store.base import KeyRecord


def route(
    runtime: Runtime,
    key: KeyRecord,
    features: Features,
    pinned: str | None,
    state: Snapshot | None = None,
) -> Plan:
    """Decide and plan; a refusal is in `plan.rejection`, for admission to raise."""
    return runtime.planner.route(
        runtime.policy.engine,
        features,
        principal_of(key),
        state_of(runtime, key) if state is None else state,
        pinned,
    )


def principal_of(key: KeyRecord) -> Principal:
    return Principal(key_id=key.key_id, team=key.team, tags=key.tags, name=key.name)


def state_of(runtime: Runtime, key: KeyRecord, *, with_prices: bool = False) -> Snapshot:
    """State the engine decides on, from memory. Rules never read prices, so the hot path
    skips them; explain asks for them to show each candidate's worst-case cost."""
    key_budget, team_budget = runtime.accountant.budget_left(key)
    prices: dict[str, Price] = {}
    if with_prices:
        in_force = runtime.prices.current()
        prices = {
            name: in_force[backend.price_key]
            for name, backend in runtime.config.backends.items()
            if backend.price_key in in_force
        }
    return Snapshot(
        supply=runtime.supply.snapshot(),
        prices=prices,
        key_budget=key_budget,
        team_budget=team_budget,
    )
