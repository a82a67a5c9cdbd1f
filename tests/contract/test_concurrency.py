"""Hammering one budget from many coroutines (and, on Redis, two replicas) never overspends."""

from __future__ import annotations

import asyncio
import random

from router.store.base import Period
from tests.contract.builders import TEAM, admit_request, key_budget, settlement, team_budget
from tests.contract.conftest import StoreEnv

RESERVE = 100_000
FITS = 50


async def test_concurrent_admissions_never_overspend(env: StoreEnv) -> None:
    budgets = (
        key_budget(10 * FITS * RESERVE),
        team_budget(FITS * RESERVE, Period.ROLLING, window_s=3600),
    )
    stores = [env.store, env.peer()]
    results = await asyncio.gather(
        *(stores[i % 2].admit(admit_request(f"r{i}", budgets, RESERVE)) for i in range(600))
    )
    admitted = [f"r{i}" for i, r in enumerate(results) if r.admitted]
    assert len(admitted) == FITS
    status = await env.store.budget_status(TEAM, budgets)
    assert status[1].spent + status[1].reserved == FITS * RESERVE

    rng = random.Random(7)
    await asyncio.gather(
        *(
            stores[i % 2].settle(settlement(rid, budgets, rng.randint(0, RESERVE)))
            for i, rid in enumerate(admitted)
        )
    )
    status = await env.store.budget_status(TEAM, budgets)
    assert status[1].reserved == 0
    assert 0 < status[1].spent <= FITS * RESERVE
    assert len([e async for e in env.store.ledger()]) == FITS


async def test_concurrent_settles_of_one_request_charge_once(env: StoreEnv) -> None:
    budgets = (key_budget(1_000_000),)
    await env.store.admit(admit_request("r1", budgets, 500))
    await asyncio.gather(*(env.store.settle(settlement("r1", budgets, 300)) for _ in range(50)))
    status = await env.store.budget_status(TEAM, budgets)
    assert (status[0].spent, status[0].reserved) == (300, 0)
    assert len([e async for e in env.store.ledger()]) == 1
