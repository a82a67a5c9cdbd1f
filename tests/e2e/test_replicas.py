"""Horizontal scale: three router processes behind one Redis behave as one router. A budget,
a rate limit, a circuit breaker and a price change all hold across them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from router.core.cost import actual_cost
from router.core.model import Usage
from tests.e2e.support import (
    ADMIN_HEADERS,
    PROMPT,
    Admin,
    Peek,
    fake_cost,
    fire,
    is_openai_error,
    replicas,
    usd,
    wait_until,
)
from tests.fake_upstream import FakeUpstream, count_prompt_tokens
from tests.router_process import CLIENT_KEY, RouterProcess

MAX_TOKENS = 8
BREAKER = {
    "consecutive_failures": 3,
    "failure_rate": 0.5,
    "min_requests": 4,
    "window_s": 10,
    "cooldown_s": 30,
    "half_open_probes": 1,
}


def _quick_breaker(cfg: dict[str, Any]) -> None:
    cfg["backends"]["mini"]["supply"] = {"breaker": BREAKER, "retry": {"attempts": 0}}


@pytest.fixture(scope="module")
def trio(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[RouterProcess], Peek]]:
    """Three routers on one key prefix. The breaker test leaves Mini's breaker open, so
    the other tests pin the full model."""
    mini, full = upstreams
    with replicas(
        tmp_path_factory.mktemp("trio"), mini, full, 3, configure=_quick_breaker
    ) as running:
        yield running


def _full(i: int) -> dict[str, Any]:
    return {"model": "full", "messages": PROMPT, "max_tokens": MAX_TOKENS, "stream": i % 5 == 4}


def test_a_budget_holds_across_three_replicas(trio, fakes):
    routers, peek = trio
    _, full = fakes
    admin = Admin(routers[1])
    price = admin.prices()["full"]
    each = actual_cost(price, Usage(count_prompt_tokens({"messages": PROMPT}), MAX_TOKENS))
    limit = 30 * each
    created = admin.create_key(
        "trio-budget", "trio", budgets=[{"period": "day", "limit_usd": usd(limit)}]
    )

    replies = asyncio.run(fire(routers, 300, created["key"], _full, concurrency=48, tag="budget"))

    served = [r for r in replies if r.status == 200]
    assert Counter(r.status for r in replies).keys() <= {200, 429}
    assert 15 <= len(served) <= 30 and {r.router for r in served} == {0, 1, 2}
    assert all(r.body["error"]["code"] == "budget_exceeded" for r in replies if r.status == 429)
    wait_until(lambda: not peek.open_holds(), 10, "every stream to be settled")
    ledger = [e for e in admin.ledger() if e["key_id"] == created["id"]]
    assert sorted(e["request_id"] for e in ledger) == sorted(r.request_id for r in served)
    total = sum(e["cost_micros"] for e in ledger)
    status = admin.key(created["id"])["budget_status"][0]
    assert status["spent_micros"] == total == fake_cost(full, price)[1] <= limit
    assert status["reserved_micros"] == 0


def test_a_rate_limit_admits_exactly_rpm_requests_across_three_replicas(trio, fakes):
    routers, peek = trio
    admin = Admin(routers[2])
    rpm = 12
    created = admin.create_key("trio-rate", "limited", limits={"rpm": rpm})

    replies = asyncio.run(
        fire(routers, 3 * rpm + 3, created["key"], _full, concurrency=39, tag="rate")
    )

    served = [r for r in replies if r.status == 200]
    limited = [r for r in replies if r.status == 429]
    assert len(served) == rpm and len(limited) == len(replies) - rpm
    for r in limited:
        assert is_openai_error(r.body) and r.body["error"]["code"] == "rate_limit_exceeded"
        assert f"{rpm} requests per minute" in r.body["error"]["message"]
        assert float(r.headers["retry-after"]) > 0
    wait_until(lambda: not peek.open_holds(), 10, "every stream to be settled")
    charged = {e["request_id"] for e in admin.ledger() if e["key_id"] == created["id"]}
    assert charged == {r.request_id for r in served}


def test_a_price_change_reaches_all_three_replicas_within_a_second(trio, fakes):
    routers, _ = trio
    admins = [Admin(r) for r in routers]
    old = admins[0].prices()["full"]
    posted = time.monotonic()
    new = admins[0].add_price("full", "2.50", "9.00")
    assert new.version == old.version + 1
    seen = [
        wait_until(
            lambda a=a: a.prices()["full"].version == new.version,
            1.0,
            "a replica to see the new price",
            interval=0.005,
        )
        for a in admins
    ]
    took = time.monotonic() - posted
    for router in routers:
        raw = httpx.post(
            f"{router.base_url}/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "full", "messages": PROMPT, "max_tokens": 4},
        )
        assert raw.status_code == 200
        assert raw.headers["x-router-price-version"] == str(new.version)
        usage = raw.json()["usage"]
        assert round(float(raw.headers["x-router-cost-usd"]) * 1e6) == actual_cost(
            new, Usage(usage["prompt_tokens"], usage["completion_tokens"])
        )
    print(
        f"\nprice change seen by three replicas within {1000 * took:.0f} ms of the POST "
        f"({', '.join(f'{1000 * s:.0f}' for s in seen)} ms polls)"
    )


def test_one_replicas_evidence_opens_the_breaker_for_all(trio, fakes):
    routers, _ = trio
    mini, _ = fakes
    mini.fail(503, retry_after=None)
    first = routers[0]
    for _ in range(BREAKER["consecutive_failures"]):
        raw = httpx.post(
            f"{first.base_url}/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "auto", "messages": PROMPT},
        )
        assert raw.status_code == 200 and raw.headers["x-router-backend"] == "full"
    assert Admin(first).backends()["mini"]["breaker"] == "open"
    calls = mini.call_count
    assert calls == BREAKER["consecutive_failures"]
    for other in routers[1:]:
        took = wait_until(
            lambda o=other: (
                httpx.get(f"{o.url}/admin/backends", headers=ADMIN_HEADERS).json()["backends"][
                    "mini"
                ]["breaker"]
                == "open"
            ),
            2.0,
            "another replica to see the breaker open",
        )
        raw = httpx.post(
            f"{other.base_url}/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "auto", "messages": PROMPT},
        )
        assert raw.status_code == 200 and raw.headers["x-router-backend"] == "full"
        print(
            f"\nbreaker open on replica {other.port} {1000 * took:.0f} ms after replica "
            f"{first.port} opened it"
        )
    assert mini.call_count == calls, "no replica calls a backend whose breaker is open"
