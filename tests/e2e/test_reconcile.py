"""Reconcile has one implementation: `router reconcile --store-url`, run straight on the
store while no router is needed, answers exactly as the admin API does."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx

from router.store.base import AdmitRequest, Budget, Limits, Period, Scope
from router.store.factory import open_store
from tests.e2e.support import ADMIN_HEADERS, REDIS_URL, replicas
from tests.router_process import REPO


def _orphan(prefix: str, request_id: str, reserve: int) -> None:
    """A reservation whose process died before settling it."""

    async def admit() -> None:
        store = open_store(REDIS_URL, key_prefix=prefix, timeout_s=2.0)
        budget = Budget(Scope.KEY, "key-orphan", Period.DAY, 10_000_000)
        try:
            result = await store.admit(
                AdmitRequest(
                    request_id, "key-orphan", "team-orphan", (budget,), Limits(), reserve, 10
                )
            )
        finally:
            await store.close()
        assert result.admitted

    asyncio.run(admit())


def test_the_cli_on_the_store_answers_as_the_admin_api_does(tmp_path, fakes):
    mini, full = fakes
    with replicas(tmp_path, mini, full, 1) as ([router], peek):
        _orphan(peek.prefix, "orphan-api", 300)
        via_api = httpx.post(
            f"{router.url}/admin/reconcile", params={"older_than_s": 0}, headers=ADMIN_HEADERS
        ).json()
        _orphan(peek.prefix, "orphan-cli", 500)
        command = ["reconcile", "--store-url", REDIS_URL, "--key-prefix", peek.prefix]
        cli = subprocess.run(
            [sys.executable, "-m", "router", *command, "--older-than-s", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert cli.returncode == 0, cli.stderr
        via_cli = json.loads(cli.stdout)
        ledger = {(e.request_id, e.status, e.cost) for e in peek.ledger()}
        assert not peek.open_holds()
    assert ledger == {("orphan-api", "reconciled", 300), ("orphan-cli", "reconciled", 500)}
    for answer, request_id, cost in ((via_api, "orphan-api", 300), (via_cli, "orphan-cli", 500)):
        assert (answer["count"], answer["charged_micros"]) == (1, cost)
        assert answer["charged_usd"] == f"{cost / 1_000_000:.6f}"
        [entry] = answer["reconciled"]
        assert (entry["request_id"], entry["status"], entry["cost_micros"]) == (
            request_id,
            "reconciled",
            cost,
        )
    assert via_api.keys() == via_cli.keys()
    assert via_api["reconciled"][0].keys() == via_cli["reconciled"][0].keys()
