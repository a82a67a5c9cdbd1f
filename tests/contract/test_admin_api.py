"""The admin API over every store, through HTTP (ASGI, no network)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from router.accounting import Accountant
from router.core.model import Price, Usage
from router.errors import AuthenticationFailed, InvalidRequest, RouterError
from router.keys import KeyResolver
from router.pricing import PriceBook
from router.server.admin import router as admin_router
from tests.contract.conftest import StoreEnv

ADMIN = "sk-admin-test-key"
BOOT = "sk-boot-test-key"


def _render(error: RouterError) -> Response:
    return Response(
        error.body(),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers(),
    )


async def _router_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RouterError)
    return _render(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _render(InvalidRequest(f"Invalid request: {exc.errors()[0]['msg']}."))


def runtime(env: StoreEnv, admin_key: str | None = ADMIN) -> SimpleNamespace:
    clock = env.clock or time.time
    prices = PriceBook([Price("mini", 1, 0.0, 50_000, 200_000)], clock=clock)
    env.store.watch_prices(prices.apply)
    return SimpleNamespace(
        store=env.store,
        prices=prices,
        accountant=Accountant(env.store, prices, clock=clock),
        keys=KeyResolver(env.store, bootstrap_key=BOOT),
        config=SimpleNamespace(
            auth=SimpleNamespace(admin_key=None if admin_key is None else SecretStr(admin_key))
        ),
    )


@pytest.fixture
async def api(env: StoreEnv) -> AsyncIterator[tuple[httpx.AsyncClient, SimpleNamespace]]:
    app = FastAPI()
    app.add_exception_handler(RouterError, _router_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(admin_router)
    app.state.runtime = runtime(env)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://router", headers={"authorization": f"Bearer {ADMIN}"}
    ) as client:
        yield client, app.state.runtime


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


async def test_only_the_admin_key_gets_in(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, rt = api
    assert (await client.get("/admin/keys")).status_code == 200
    missing = await client.get("/admin/keys", headers={"authorization": ""})
    assert missing.status_code == 401 and "Missing admin key" in error_of(missing)["message"]
    wrong = await client.get("/admin/keys", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and error_of(wrong)["type"] == "authentication_error"
    client_key = await client.get("/admin/keys", headers={"authorization": f"Bearer {BOOT}"})
    assert client_key.status_code == 403
    assert error_of(client_key)["code"] == "permission_denied"
    rt.config.auth.admin_key = None
    disabled = await client.get("/admin/keys")
    assert disabled.status_code == 403 and error_of(disabled)["code"] == "admin_disabled"


async def test_guessing_the_admin_key_is_throttled(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, _ = api
    for _ in range(20):
        wrong = await client.get("/admin/keys", headers={"authorization": "Bearer guess"})
        assert wrong.status_code == 401
    throttled = await client.get("/admin/keys", headers={"authorization": "Bearer guess"})
    assert throttled.status_code == 429 and "retry-after" in throttled.headers
    assert (await client.get("/admin/keys")).status_code == 429


async def test_key_lifecycle(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, rt = api
    created = await client.post(
        "/admin/keys",
        json={
            "team": "team-a",
            "name": "svc",
            "tags": ["eu"],
            "budgets": [
                {"period": "day", "limit_usd": "5.00", "soft_limit_usd": 4.5},
                {"period": "rolling", "limit_usd": 0.1, "window_s": 3600},
            ],
            "limits": {"rpm": 60, "max_concurrency": 4},
        },
    )
    assert created.status_code == 201
    body = created.json()
    plaintext, key_id = body["key"], body["id"]
    assert plaintext.startswith("sk-rt-")
    assert [(b["limit_micros"], b["period"]) for b in body["budgets"]] == [
        (5_000_000, "day"),
        (100_000, "rolling"),
    ]
    assert body["budgets"][0]["soft_limit_usd"] == "4.500000"
    listed = (await client.get("/admin/keys")).text
    assert key_id in listed and plaintext not in listed
    record = await rt.keys.resolve(f"Bearer {plaintext}")
    assert (record.key_id, record.team, record.limits.rpm) == (key_id, "team-a", 60)

    one = (await client.get(f"/admin/keys/{key_id}")).json()
    assert [s["remaining_micros"] for s in one["budget_status"]] == [5_000_000, 100_000]

    rotated = (await client.post(f"/admin/keys/{key_id}/rotate")).json()
    assert rotated["id"] == key_id and rotated["key"] != plaintext
    with pytest.raises(AuthenticationFailed):
        await rt.keys.resolve(f"Bearer {plaintext}")
    assert (await rt.keys.resolve(f"Bearer {rotated['key']}")).key_id == key_id

    disabled = await client.post(f"/admin/keys/{key_id}/disable")
    assert disabled.json()["disabled"] is True
    with pytest.raises(AuthenticationFailed, match="disabled"):
        await rt.keys.resolve(f"Bearer {rotated['key']}")
    missing = await client.post("/admin/keys/key_nope/disable")
    assert missing.status_code == 404 and error_of(missing)["code"] == "key_not_found"


@pytest.mark.parametrize(
    "budget",
    [
        {"period": "day", "limit_usd": "0.0000001"},
        {"period": "day", "limit_usd": "-1"},
        {"period": "rolling", "limit_usd": "1"},
        {"period": "weekly", "limit_usd": "1"},
    ],
)
async def test_bad_budgets_are_400(
    api: tuple[httpx.AsyncClient, Any], budget: dict[str, Any]
) -> None:
    client, _ = api
    response = await client.post("/admin/keys", json={"team": "t", "budgets": [budget]})
    assert response.status_code == 400, response.text
    assert error_of(response)["type"] == "invalid_request_error"


async def test_team_budgets(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, rt = api
    put = await client.put(
        "/admin/teams/team-a/budgets", json={"budgets": [{"period": "month", "limit_usd": "100"}]}
    )
    assert put.status_code == 200
    (status,) = put.json()["budgets"]
    assert (status["scope"], status["limit_usd"], status["spent_micros"]) == (
        "team",
        "100.000000",
        0,
    )
    assert status["resets_at"].endswith("Z")
    assert len(await rt.store.team_budgets("team-a")) == 1


async def test_prices_versions_and_schedule(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, rt = api
    now = await rt_now(rt)
    added = await client.post(
        "/admin/prices",
        json={
            "model": "full",
            "input_per_mtok": "2.00",
            "output_per_mtok": "8.00",
            "cached_input_per_mtok": "0.50",
            "effective_from": now - 1,
        },
    )
    assert added.status_code == 201 and added.json()["version"] == 1
    future = await client.post(
        "/admin/prices",
        json={
            "model": "full",
            "input_per_mtok": "3",
            "output_per_mtok": "9",
            "effective_from": "2999-01-01T00:00:00Z",
        },
    )
    assert future.json()["version"] == 2
    assert rt.prices.price_at("full").input_per_mtok == 2_000_000
    prices = (await client.get("/admin/prices")).json()
    assert {p["model"] for p in prices["data"]} == {"mini", "full"}
    assert [(p["model"], p["version"]) for p in prices["scheduled"]] == [("full", 2)]
    history = (await client.get("/admin/prices/full/history")).json()["data"]
    assert [(p["version"], p["input_per_mtok_usd"]) for p in history] == [
        (1, "2.000000"),
        (2, "3.000000"),
    ]
    assert (await client.get("/admin/prices/nope/history")).status_code == 404
    bad = await client.post(
        "/admin/prices", json={"model": "x", "input_per_mtok": "abc", "output_per_mtok": "1"}
    )
    assert bad.status_code == 400


async def rt_now(rt: Any) -> float:
    return float(rt.accountant._clock())


async def test_usage_ledger_and_reconcile(
    api: tuple[httpx.AsyncClient, Any], env: StoreEnv
) -> None:
    client, rt = api
    boot = await rt.keys.resolve(f"Bearer {BOOT}")
    for rid in ("r1", "r2"):
        admission = await rt.accountant.admit(rid, boot, [("mini", "mini")], 1000, 1000)
        await rt.accountant.settle(
            admission, "mini", Usage(1000, 500), rule="cheap", fallbacks=["full"], latency_ms=5
        )
    await rt.accountant.admit("orphan", boot, [("mini", "mini")], 1000, 1000)
    if env.is_memory:
        env.advance(700)
    reconciled = (
        await client.post("/admin/reconcile", params={"older_than_s": 600 if env.is_memory else 0})
    ).json()
    assert reconciled["count"] == 1
    assert reconciled["reconciled"][0]["status"] == "reconciled"
    assert reconciled["charged_micros"] == 250  # 1000 * 0.05 + 1000 * 0.20 per Mtok

    usage = (await client.get("/admin/usage", params={"group_by": "backend"})).json()
    assert [(r["group"], r["requests"], r["cost_micros"]) for r in usage["data"]] == [
        ("(reconciled)", 1, 250),
        ("mini", 2, 300),
    ]
    assert usage["total_cost_usd"] == "0.000550"
    by_team = (await client.get("/admin/usage", params={"group_by": "team"})).json()
    assert [(r["group"], r["requests"]) for r in by_team["data"]] == [("default", 3)]
    assert (await client.get("/admin/usage", params={"group_by": "color"})).status_code == 400
    assert (await client.get("/admin/usage", params={"since": "yesterday"})).status_code == 400

    jsonl = await client.get("/admin/ledger", params={"format": "jsonl"})
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["request_id"] for r in rows] == ["r1", "r2", "orphan"]
    assert rows[0]["cost_micros"] == 150 and rows[0]["fallbacks"] == ["full"]
    table = list(
        csv.DictReader(
            io.StringIO((await client.get("/admin/ledger", params={"format": "csv"})).text)
        )
    )
    assert [(r["request_id"], r["cost_micros"], r["status"]) for r in table] == [
        ("r1", "150", "ok"),
        ("r2", "150", "ok"),
        ("orphan", "250", "reconciled"),
    ]
    late = (await client.get("/admin/ledger", params={"since": str(rows[2]["ts"])})).text
    assert [json.loads(line)["request_id"] for line in late.splitlines()] == ["orphan"]
