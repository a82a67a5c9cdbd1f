"""Fixtures the end-to-end tests share beyond the suite-wide ones in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import Peek, replicas
from tests.fake_upstream import FakeUpstream
from tests.router_process import RouterProcess


@pytest.fixture
def pair(
    tmp_path: Path, fakes: tuple[FakeUpstream, FakeUpstream]
) -> Iterator[tuple[list[RouterProcess], Peek]]:
    """Two routers sharing one Redis prefix, in front of the module's upstreams."""
    mini, full = fakes
    with replicas(tmp_path, mini, full, 2) as running:
        yield running
