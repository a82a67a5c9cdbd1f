"""A client's x-request-id is a correlation id, not an accounting key: clients reuse them
(retries, a fixed trace id), and each served request must still be charged once, with
nothing left reserved."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.support import (
    HELLO,
    fault_config,
    ledger,
    read_books,
    set_team_budget,
    start_router,
    wait_for,
)
from tests.redis_servers import RedisServer
from tests.router_process import CLIENT_KEY, RouterProcess


@pytest.fixture(scope="module")
def on_redis(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RouterProcess, RedisServer, str]]:
    mini, full = upstreams
    with RedisServer() as server:
        config = fault_config(mini.base_url, full.base_url, server.url)
        router = start_router(config, tmp_path_factory.mktemp("request-ids"))
        set_team_budget(router)
        yield router, server, config["store"]["key_prefix"]
        router.stop()


def ask(router: RouterProcess, request_id: str) -> str:
    client = openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, extra_headers={"x-request-id": request_id}
    )
    assert raw.parse().choices
    assert raw.headers["x-request-id"] == request_id, "the client's id is echoed"
    return raw.headers["x-router-cost-usd"]


@pytest.mark.parametrize("at_once", [False, True])
def test_a_reused_request_id_is_charged_every_time(on_redis, fakes, at_once):
    router, server, prefix = on_redis
    request_id = f"trace-reused-{at_once}"
    if at_once:
        fakes[0].configure(latency_ms=300)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda _: ask(router, request_id), range(3)))
    else:
        for _ in range(3):
            ask(router, request_id)
    rows = [row for row in ledger(router) if row["request_id"] == request_id]
    assert len(rows) == 3, rows

    def balanced() -> bool:
        books = read_books(router, server, prefix)
        return books.reservations == 0 and books.ledger_cost == books.spent

    wait_for(balanced, 5, "the books to balance", state=lambda: read_books(router, server, prefix))
