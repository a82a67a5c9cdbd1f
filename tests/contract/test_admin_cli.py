"""The admin CLI against a real HTTP server (uvicorn in a thread, in-process store), and
`reconcile --store-url` straight against Redis."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from router.accounting import Accountant
from router.cli import admin as admin_cli
from router.core.model import Price
from router.errors import RouterError
from router.keys import KeyResolver
from router.pricing import PriceBook
from router.server.admin import router as admin_router
from router.store.factory import open_store
from router.store.memory import MemoryStore
from tests.contract.builders import admit_request, key_budget
from tests.contract.conftest import REDIS_URL, delete_prefix, redis_available
from tests.contract.test_admin_api import _router_error

ADMIN = "sk-admin-cli-test"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    store = MemoryStore()
    prices = PriceBook([Price("mini", 1, 0.0, 50_000, 200_000)])
    app = FastAPI()
    app.add_exception_handler(RouterError, _router_error)
    app.include_router(admin_router)
    app.state.runtime = SimpleNamespace(
        store=store,
        prices=prices,
        accountant=Accountant(store, prices),
        keys=KeyResolver(store),
        config=SimpleNamespace(auth=SimpleNamespace(admin_key=SecretStr(ADMIN))),
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "admin test server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    parser = argparse.ArgumentParser()
    admin_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.handler(args)
    out, err = capsys.readouterr()
    try:
        parsed = json.loads(out)
    except ValueError:
        parsed = out
    return code, parsed, err


@pytest.fixture(autouse=True)
def admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_ADMIN_KEY", ADMIN)


def test_keys(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, created, err = run(
        capsys,
        "keys",
        "create",
        "--url",
        server_url,
        "--team",
        "ml",
        "--name",
        "batch",
        "--tag",
        "eu",
        "--budget",
        "day:5.00",
        "--budget",
        "rolling:1.5:3600",
        "--rpm",
        "60",
    )
    assert code == 0 and "not shown again" in err
    assert created["key"].startswith("sk-rt-")
    assert [b["limit_micros"] for b in created["budgets"]] == [5_000_000, 1_500_000]
    code, listed, _ = run(capsys, "keys", "list", "--url", server_url)
    assert created["id"] in json.dumps(listed) and created["key"] not in json.dumps(listed)
    code, rotated, _ = run(capsys, "keys", "rotate", created["id"], "--url", server_url)
    assert rotated["key"] != created["key"]
    code, disabled, _ = run(capsys, "keys", "disable", created["id"], "--url", server_url)
    assert disabled["disabled"] is True


def test_prices(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, added, _ = run(
        capsys,
        "prices",
        "set",
        "full",
        "--input",
        "2.00",
        "--output",
        "8",
        "--cached",
        "0.5",
        "--url",
        server_url,
    )
    assert (code, added["version"], added["cached_input_per_mtok_usd"]) == (0, 1, "0.500000")
    run(
        capsys,
        "prices",
        "set",
        "full",
        "--input",
        "3",
        "--output",
        "9",
        "--effective-from",
        "2999-01-01T00:00:00Z",
        "--url",
        server_url,
    )
    _, shown, _ = run(capsys, "prices", "show", "--url", server_url)
    assert [p["version"] for p in shown["scheduled"]] == [2]
    _, history, _ = run(capsys, "prices", "history", "full", "--url", server_url)
    assert [p["version"] for p in history["data"]] == [1, 2]


def test_usage_ledger_and_reconcile(
    server_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, usage, _ = run(capsys, "usage", "--group-by", "day", "--url", server_url)
    assert code == 0 and usage["group_by"] == "day"
    out = tmp_path / "ledger.csv"
    code, _, _ = run(
        capsys, "ledger", "export", "--format", "csv", "-o", str(out), "--url", server_url
    )
    assert code == 0 and out.read_text().startswith("time,ts,request_id")
    code, reconciled, _ = run(capsys, "reconcile", "--older-than-s", "0", "--url", server_url)
    assert (code, reconciled["count"]) == (0, 0)


def test_errors_are_one_line_and_exit_1(
    server_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "keys", "list", "--url", server_url, "--admin-key", "wrong")
    assert code == 1 and "HTTP 401: Invalid admin key." in err
    code, _, err = run(capsys, "prices", "history", "nope", "--url", server_url)
    assert code == 1 and "HTTP 404" in err
    monkeypatch.delenv("ROUTER_ADMIN_KEY")
    code, _, err = run(capsys, "keys", "list", "--url", server_url)
    assert code == 1 and "set ROUTER_ADMIN_KEY" in err
    code, _, err = run(
        capsys, "keys", "list", "--url", "http://127.0.0.1:9", "--admin-key", "x", "--timeout", "2"
    )
    assert code == 1 and "cannot reach the router" in err
    with pytest.raises(SystemExit):
        run(capsys, "keys", "create", "--team", "t", "--budget", "day")


def test_reconcile_against_the_store_directly(capsys: pytest.CaptureFixture[str]) -> None:
    if not redis_available():
        pytest.skip("no Redis")
    prefix = f"rt-test-{uuid.uuid4().hex[:12]}"

    async def orphan() -> None:
        store = open_store(REDIS_URL, key_prefix=prefix, timeout_s=2.0)
        await store.admit(admit_request("orphan", (key_budget(1000),), 300))
        await store.close()

    asyncio.run(orphan())
    try:
        code, result, _ = run(
            capsys,
            "reconcile",
            "--store-url",
            REDIS_URL,
            "--key-prefix",
            prefix,
            "--older-than-s",
            "0",
        )
        assert (code, result["count"], result["charged_micros"]) == (0, 1, 300)
    finally:
        asyncio.run(delete_prefix(prefix))
