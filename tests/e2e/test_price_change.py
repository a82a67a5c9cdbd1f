"""A live price change while requests flow through two routers sharing one Redis.

Every request is priced with the version in force when it was admitted: requests that ended
before the change was posted carry the old version, requests sent to a replica after it was
seen serving the new version carry the new one, and each ledger entry's cost is its usage
times its own version's price. Both replicas must see the change within a second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from router.core.cost import actual_cost
from router.core.model import Usage
from tests.e2e.support import (
    ADMIN_HEADERS,
    PROMPT,
    Admin,
    Reply,
    send,
    wait_until,
)
from tests.router_process import CLIENT_KEY, RouterProcess

BEFORE = 60
AFTER = 60
WORKERS = 8


async def _version_on(client: httpx.AsyncClient, router: RouterProcess, model: str) -> int:
    resp = await client.get(f"{router.url}/admin/prices", headers=ADMIN_HEADERS)
    return next(int(p["version"]) for p in resp.json()["data"] if p["model"] == model)


async def _run(routers: list[RouterProcess]) -> tuple[list[Reply], float, list[float], int]:
    """Load on both replicas; after BEFORE answers, post a new Mini price on the first;
    stop AFTER answers later than the last replica saw it. Returns the replies, when the
    post was sent, when each replica was first seen with the new version, and the version."""
    replies: list[Reply] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=2 * WORKERS)
    async with httpx.AsyncClient(limits=limits, timeout=20) as client:

        async def worker(w: int) -> None:
            n = 0
            while not stop.is_set():
                index = (w + n) % len(routers)
                body: dict[str, Any] = {
                    "model": "auto",
                    "messages": PROMPT,
                    "max_tokens": 6,
                    "stream": n % 3 == 2,
                }
                replies.append(
                    await send(client, routers[index], index, f"w{w}-{n}", CLIENT_KEY, body)
                )
                n += 1

        workers = [asyncio.create_task(worker(w)) for w in range(WORKERS)]
        while len(replies) < BEFORE:
            await asyncio.sleep(0.005)
        posted = time.monotonic()
        resp = await client.post(
            f"{routers[0].url}/admin/prices",
            headers=ADMIN_HEADERS,
            json={"model": "mini", "input_per_mtok": "3.00", "output_per_mtok": "12.00"},
        )
        assert resp.status_code == 201, resp.text
        version = int(resp.json()["version"])
        seen = [0.0] * len(routers)

        async def watch(i: int) -> None:
            while await _version_on(client, routers[i], "mini") != version:
                if time.monotonic() - posted > 5:
                    raise AssertionError(f"replica {i} did not see the new price in 5 s")
                await asyncio.sleep(0.002)
            seen[i] = time.monotonic()

        await asyncio.gather(*(watch(i) for i in range(len(routers))))
        target = sum(r.started > max(seen) for r in replies) + AFTER
        while sum(r.started > max(seen) for r in replies) < target:
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.gather(*workers)
    return replies, posted, seen, version


def test_a_price_change_mid_run_prices_each_request_at_its_admission(pair):
    routers, peek = pair
    admin = Admin(routers[0])
    old = admin.prices()["mini"]

    replies, posted, seen, version = asyncio.run(_run(routers))

    assert version == old.version + 1
    assert all(r.status == 200 for r in replies), [r.body for r in replies if r.status != 200]
    propagation = [t - posted for t in seen]
    assert max(propagation) < 1.0, propagation
    wait_until(lambda: not peek.open_holds(), 10, "every stream to be settled")
    history = admin.history("mini")
    assert set(history) == {old.version, version}
    ledger = {e["request_id"]: e for e in admin.ledger()}
    assert set(ledger) == {r.request_id for r in replies}
    versions = {old.version: 0, version: 0}
    for r in replies:
        entry = ledger[r.request_id]
        assert entry["backend"] == r.headers["x-router-backend"] == "mini"
        assert entry["price_version"] == int(r.headers["x-router-price-version"])
        if r.ended < posted:
            assert entry["price_version"] == old.version, r.request_id
        if r.started > seen[r.router]:
            assert entry["price_version"] == version, r.request_id
        versions[entry["price_version"]] += 1
        price = history[entry["price_version"]]
        assert entry["cost_micros"] == actual_cost(
            price, Usage(entry["prompt_tokens"], entry["completion_tokens"])
        )
        if not isinstance(r.body, list):
            assert float(r.headers["x-router-cost-usd"]) * 1e6 == pytest.approx(
                entry["cost_micros"]
            )
    assert versions[old.version] >= BEFORE and versions[version] >= AFTER
    assert actual_cost(history[version], Usage(12, 6)) > actual_cost(old, Usage(12, 6))
    print(
        f"\nprice change: replicas saw v{version} "
        f"{', '.join(f'{1000 * p:.0f} ms' for p in propagation)} after the POST was sent; "
        f"{versions[old.version]} requests at v{old.version}, {versions[version]} at "
        f"v{version}"
    )
