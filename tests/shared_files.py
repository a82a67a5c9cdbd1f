"""Reference files that live beside the repository, not in it (`../shared`: the OpenAI spec,
the Compose schema as the team pinned it). CI lays them out; a plain clone has none, so a
test that reads one skips, naming the file it missed, instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_file(relative: str) -> Path:
    """The file under ../shared, or a skip whose reason names it."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"needs {path} (the shared reference files beside the repository)")
    return path
