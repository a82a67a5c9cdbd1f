"""One router per fuzz module, with small bounds so the bounds are cheap to reach; its log
must hold no traceback when the module is done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.support import log_problems
from tests.router_process import RouterProcess, router_config

MAX_BODY_BYTES = 256 * 1024
MAX_MESSAGES = 64
MAX_JSON_DEPTH = 16


@pytest.fixture(scope="module")
def bounded(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    mini, full = upstreams
    config = router_config(
        mini.base_url,
        full.base_url,
        server={
            "max_body_bytes": MAX_BODY_BYTES,
            "max_messages": MAX_MESSAGES,
            "max_json_depth": MAX_JSON_DEPTH,
        },
    )
    with RouterProcess(config, tmp_path_factory.mktemp("fuzz")) as router:
        yield router
    assert log_problems(router) == [], "the router logged an unhandled error"
