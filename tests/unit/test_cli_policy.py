"""`router policy check` and `router policy explain`, run in-process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from router.cli import policy as policy_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "router.yaml"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    policy_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    result: int = args.handler(args)
    return result


def test_check_clean_policy(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "policies" / "default.yaml"
    assert _run("policy", "check", str(path), "--config", str(CONFIG)) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


def test_check_reports_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  - name: a\n    route: [mini, gpt]\n    colour: red\n")
    assert _run("policy", "check", str(path), "--config", str(CONFIG)) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:4:5: error: rules[0].colour: unknown field",
    ]
    path.write_text("rules:\n  - name: a\n    route: [mini, gpt]\n")
    assert _run("policy", "check", str(path), "--config", str(CONFIG)) == 1
    assert capsys.readouterr().out.startswith(f"{path}:3:19: error: rules[0].route[1]: unknown")


def test_explain_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "model": "auto",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "https://x"}},
                        ],
                    }
                ],
            }
        )
    )
    assert _run("policy", "explain", "--request", str(request), "--config", str(CONFIG)) == 0
    out = capsys.readouterr().out
    assert "Decision: rule full" in out
    assert "match  full" in out


def test_explain_json_with_snapshot_and_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps({"model": "full", "messages": [{"role": "user", "content": "hi"}]})
    )
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(
        json.dumps(
            {
                "key_budget": {"remaining_usd": 1, "limit_usd": 10, "soft_limit_usd": 5},
                "prices": {"full": {"input_per_mtok_usd": 2, "output_per_mtok_usd": 8}},
            }
        )
    )
    assert (
        _run(
            "policy",
            "explain",
            "--request",
            str(request),
            "--config",
            str(CONFIG),
            "--snapshot",
            str(snapshot),
            "--json",
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["pinned"] == "full"
    assert data["decision"]["rejection"]["status"] == 429
