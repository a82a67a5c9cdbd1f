"""Session fixtures of the pure-core tests: token counters are slow to build, so once."""

from __future__ import annotations

import pytest

from router.core.tokens import TokenCounter


@pytest.fixture(scope="session")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="session")
def cl100k() -> TokenCounter:
    return TokenCounter("cl100k_base")
