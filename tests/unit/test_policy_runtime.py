"""PolicyHolder: validate-then-swap reloads, the old engine kept on failure, the watcher."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from router.config import ConfigError
from router.core.model import Principal, Snapshot
from router.policy_runtime import PolicyHolder
from tests.unit.core_support import BACKENDS, features

MINI = "rules:\n  - name: mini\n    route: [mini]\n"
FULL = "rules:\n  - name: full\n    route: [full]\n"
WHO = Principal("k", "t")


def _write(path: Path, text: str, bump_ns: int = 0) -> None:
    path.write_text(text)
    if bump_ns:
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump_ns))


def _rule(holder: PolicyHolder) -> str:
    return holder.engine.decide(features(), WHO, Snapshot()).rule


def test_load_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, MINI)
    holder = PolicyHolder.load(path, BACKENDS)
    assert _rule(holder) == "mini"
    _write(path, FULL)
    assert holder.reload() == []
    assert _rule(holder) == "full"


def test_failed_reload_keeps_the_serving_engine(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, MINI)
    holder = PolicyHolder.load(path, BACKENDS)
    engine = holder.engine
    _write(path, "rules:\n  - name: x\n    route: [gpt]\n")
    problems = holder.reload()
    assert [(p.severity, p.line) for p in problems] == [("error", 3)]
    assert holder.engine is engine
    path.unlink()
    assert "cannot read" in holder.reload()[0].message
    assert holder.engine is engine


def test_bad_policy_at_start_up_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, "rules: [")
    with pytest.raises(ConfigError, match=r"policy.yaml:1:\d+: error"):
        PolicyHolder.load(path, BACKENDS)
    with pytest.raises(ConfigError, match="cannot read"):
        PolicyHolder.load(tmp_path / "missing.yaml", BACKENDS)


def test_changed_notices_edits_once(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, MINI)
    holder = PolicyHolder.load(path, BACKENDS)
    assert not holder.changed()
    _write(path, FULL, bump_ns=1_000_000)
    assert holder.changed()
    assert not holder.changed()


async def test_watch_swaps_in_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, MINI)
    holder = PolicyHolder.load(path, BACKENDS)
    task = asyncio.create_task(holder.watch(interval_s=0.01))
    try:
        _write(path, FULL, bump_ns=1_000_000)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if _rule(holder) == "full":
                break
        assert _rule(holder) == "full"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
