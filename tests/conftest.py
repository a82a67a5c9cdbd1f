"""Fixtures shared by every test layer: fake upstreams and a real router process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream
from tests.router_process import RouterProcess, router_config


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream(model="mini-upstream") as mini, FakeUpstream(model="full-upstream") as full:
        yield mini, full


@pytest.fixture
def fakes(upstreams: tuple[FakeUpstream, FakeUpstream]) -> tuple[FakeUpstream, FakeUpstream]:
    """The module's two upstreams, reset to good behaviour with empty logs for each test."""
    for fake in upstreams:
        fake.reset()
        fake.clear()
    return upstreams


@pytest.fixture(scope="module")
def router(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    """One router (memory store) in front of the module's upstreams."""
    mini, full = upstreams
    workdir: Path = tmp_path_factory.mktemp("router")
    with RouterProcess(router_config(mini.base_url, full.base_url), workdir) as proc:
        yield proc
