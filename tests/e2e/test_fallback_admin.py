"""Operators steering supply: GET /admin/backends and `router backends` against a real
router process, whose effect shows in where requests go."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.router_process import ADMIN_KEY, CLIENT_KEY, REPO, RouterProcess, router_config

HELLO = [{"role": "user", "content": "say hello to the router please"}]


@pytest.fixture
def router(fakes, tmp_path: Path) -> Iterator[RouterProcess]:
    mini, full = fakes
    with RouterProcess(router_config(mini.base_url, full.base_url), tmp_path) as proc:
        yield proc


def cli(router: RouterProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", "backends", "--url", router.url, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ROUTER_ADMIN_KEY": ADMIN_KEY},
    )


def served_by(router: RouterProcess) -> str:
    client = openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    return raw.headers["x-router-backend"]


def test_the_list_needs_the_admin_key(router):
    url = f"{router.url}/admin/backends"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Bearer {CLIENT_KEY}"}).status_code == 403
    listed = httpx.get(url, headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
    mini = listed["backends"]["mini"]
    assert set(listed["backends"]) == {"mini", "full"}
    assert mini["breaker"] == "closed" and not mini["draining"] and mini["available"]


def test_show_drain_and_undrain_from_the_cli(router, fakes):
    mini, _ = fakes
    shown = cli(router, "show")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:2] == ["backend", "breaker"]
    assert any(line.startswith("mini") and "closed" in line for line in lines)
    drained = cli(router, "drain", "mini")
    assert drained.returncode == 0, drained.stderr
    assert "yes" in drained.stdout.splitlines()[1]
    assert served_by(router) == "full" and mini.call_count == 0
    assert cli(router, "undrain", "mini").returncode == 0
    assert served_by(router) == "mini"


def test_force_open_then_auto(router, fakes):
    mini, _ = fakes
    forced = cli(router, "--json", "force", "mini", "open")
    assert forced.returncode == 0, forced.stderr
    assert '"forced": "open"' in forced.stdout
    assert served_by(router) == "full" and mini.call_count == 0
    assert cli(router, "force", "mini", "auto").returncode == 0
    assert served_by(router) == "mini"


def test_cli_errors_are_one_clean_line(router):
    unknown = cli(router, "drain", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "error: There is no backend 'nope'. GET /admin/backends lists them."
    )
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "router",
            "backends",
            "--url",
            router.url,
            "--admin-key",
            "sk-wrong",
            "show",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: ")
