"""Money end to end: two real router processes sharing one real Redis, a flood of concurrent
requests against a budget sized for about a hundred of them, and streams that end badly.

The fake upstream reports exact, deterministic usage, so the bill is known in advance: the
ledger, the budget counters in Redis and the upstream's own record must agree to the
micro-dollar, and nothing may be left reserved once the dust settles.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx

from router.core.cost import actual_cost
from router.core.model import Usage
from router.core.tokens import TokenCounter
from tests.e2e.support import (
    PROMPT,
    Admin,
    Reply,
    fake_cost,
    fire,
    is_openai_error,
    replicas,
    send,
    usd,
    wait_until,
)
from tests.fake_upstream import count_prompt_tokens
from tests.router_process import RouterProcess

MAX_TOKENS = 8
FITS = 100
REQUESTS = 1000


def _body(i: int) -> dict[str, object]:
    """Pinned to the full model (the only candidate, so the reservation is its worst case);
    every fourth request streams."""
    body: dict[str, object] = {"model": "full", "messages": PROMPT, "max_tokens": MAX_TOKENS}
    if i % 4 == 3:
        body["stream"] = True
    return body


def test_a_budget_holds_exactly_across_two_routers_under_a_flood(pair, fakes):
    routers, peek = pair
    _, full = fakes
    admin = Admin(routers[0])
    price = admin.prices()["full"]
    prompt = count_prompt_tokens({"messages": PROMPT})
    assert full.behaviour.reply_words >= MAX_TOKENS
    each = actual_cost(price, Usage(prompt, MAX_TOKENS))
    limit = FITS * each
    team = "finops-flood"
    team_limit = 10 * limit
    admin.set_team_budgets(team, [{"period": "month", "limit_usd": usd(team_limit)}])
    created = admin.create_key(team, "flood", budgets=[{"period": "day", "limit_usd": usd(limit)}])

    replies = asyncio.run(fire(routers, REQUESTS, created["key"], _body, concurrency=64))

    statuses = Counter(r.status for r in replies)
    assert set(statuses) <= {200, 429}, statuses
    served = [r for r in replies if r.status == 200]
    rejected = [r for r in replies if r.status == 429]
    reserve = round(float(served[0].headers["x-router-cost-estimate-usd"]) * 1e6)
    assert reserve >= each
    assert FITS // 2 <= len(served) <= FITS, statuses
    assert {r.router for r in served} == {0, 1}, "both replicas served"
    for r in rejected:
        assert is_openai_error(r.body), r.body
        error = r.body["error"]
        assert error["code"] == "budget_exceeded" and error["type"]
        assert "Key 'flood'" in error["message"] and "budget" in error["message"]
    for r in served:
        if isinstance(r.body, list):
            assert r.body[-1] == "data: [DONE]"
        else:
            assert r.body["usage"]["completion_tokens"] == MAX_TOKENS

    wait_until(lambda: not peek.open_holds(), 10, "every stream to be settled")
    ledger = admin.ledger()
    ids = Counter(e["request_id"] for e in ledger)
    assert max(ids.values()) == 1, "each request is charged once"
    assert set(ids) == {r.request_id for r in served}, "every 200 charged, no 429 charged"
    total = sum(e["cost_micros"] for e in ledger)
    for entry in ledger:
        assert entry["status"] == "ok" and entry["backend"] == "full"
        assert entry["price_version"] == price.version
        assert (entry["prompt_tokens"], entry["completion_tokens"]) == (prompt, MAX_TOKENS)
        assert entry["cost_micros"] == each

    upstream_count, upstream_bill = fake_cost(full, price)
    assert upstream_count == full.call_count == len(served), "a 429 never reached upstream"
    key_status = admin.key(created["id"])["budget_status"][0]
    team_status = admin.team_budgets(team)["budgets"][0]
    assert key_status["spent_micros"] == team_status["spent_micros"] == total == upstream_bill
    assert key_status["reserved_micros"] == team_status["reserved_micros"] == 0
    usage = admin.http.get("/admin/usage", params={"group_by": "key"}).json()
    assert [(r["group"], r["requests"], r["cost_micros"]) for r in usage["data"]] == [
        (created["id"], len(served), total)
    ]
    assert total <= limit
    # Nothing leaked: one more request fits exactly when the counters say it should.
    more = asyncio.run(fire(routers, 1, created["key"], _body, tag="last"))[0]
    assert more.status == (200 if limit - total >= reserve else 429), more.body
    print(
        f"\nflood: {len(served)} served, {len(rejected)} rejected; spent {total} of "
        f"{limit} micro-USD (each {each}, reserved {reserve})"
    )


def _content(line: str) -> str:
    """The content delta of one SSE data line ('' for anything else)."""
    if not line.startswith("data: {"):
        return ""
    chunk = json.loads(line[len("data: ") :])
    choices = chunk.get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


async def _hang_up(router: RouterProcess, key: str, request_id: str, after: int) -> str:
    """Open a long stream, read `after` content chunks, close the connection; what was read."""
    text, seen = "", 0
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "POST",
            f"{router.base_url}/chat/completions",
            headers={"authorization": f"Bearer {key}", "x-request-id": request_id},
            json={"model": "mini", "messages": PROMPT, "stream": True, "max_tokens": 500},
        ) as resp,
    ):
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            piece = _content(line)
            if piece:
                text += piece
                seen += 1
                if seen == after:
                    break
    return text


async def _hang_ups(router: RouterProcess, key: str, count: int) -> list[str]:
    return await asyncio.gather(*(_hang_up(router, key, f"gone-{i}", 2) for i in range(count)))


async def _one(router: RouterProcess, key: str, request_id: str, stream: bool) -> Reply:
    body = {"model": "mini", "messages": PROMPT, "stream": stream, "max_tokens": 50}
    async with httpx.AsyncClient(timeout=10) as client:
        return await send(client, router, 0, request_id, key, body)


def _quick_timeouts(cfg: dict[str, Any]) -> None:
    mini = cfg["backends"]["mini"]
    mini["timeouts"] = {"connect_s": 1, "first_byte_s": 0.3, "read_s": 0.3}
    mini["supply"] = {"retry": {"attempts": 0}}


def test_abandoned_cut_and_timed_out_streams_leave_nothing_reserved(tmp_path, fakes):
    mini, full = fakes
    hung_up = 6
    with replicas(tmp_path, mini, full, 1, configure=_quick_timeouts) as (routers, peek):
        router = routers[0]
        admin = Admin(router)
        price = admin.prices()["mini"]
        created = admin.create_key(
            "streams", "streamer", budgets=[{"period": "day", "limit_usd": "5"}]
        )
        key = created["key"]

        # Clients that hang up after two chunks of a long, slow stream.
        mini.configure(reply_words=400, chunk_delay_ms=10)
        read = asyncio.run(_hang_ups(router, key, hung_up))
        mini.wait_idle(timeout=10)
        gone = mini.requests
        assert [r.outcome for r in gone] == ["client_disconnected"] * hung_up
        assert all(r.chunks_sent < 400 for r in gone), "the upstream was hung up on too"

        # An upstream that cuts the stream after three chunks.
        mini.configure(reply_words=20, chunk_delay_ms=0, cut_after_chunks=3)
        cut = asyncio.run(_one(router, key, "cut", stream=True))
        assert cut.status == 200 and '"code":"stream_interrupted"' in cut.body[-1], cut.body
        # Upstreams that stall before the first byte: never served, never charged.
        mini.configure(cut_after_chunks=None, stall_s=5)
        for stream in (False, True):
            stalled = asyncio.run(_one(router, key, f"stall-{stream}", stream=stream))
            assert stalled.status in (503, 504) and is_openai_error(stalled.body), stalled.body
        # An upstream that stalls after its first event: served, so charged, as a cut.
        mini.configure(stall_s=0, chunk_delay_ms=2000)
        slow = asyncio.run(_one(router, key, "slow", stream=True))
        assert slow.status == 200 and '"code":"stream_interrupted"' in slow.body[-1], slow.body

        settled = wait_until(
            lambda: not peek.open_holds(),
            10,
            "every reservation and lease to be settled or released",
        )
        ledger = {e["request_id"]: e for e in admin.ledger()}
        assert set(ledger) == {*(f"gone-{i}" for i in range(hung_up)), "cut", "slow"}
        counter = TokenCounter()
        for i, text in enumerate(read):
            entry = ledger[f"gone-{i}"]
            assert entry["status"] == "client_gone"
            assert entry["completion_tokens"] >= counter.count_text(text) > 0
        assert sum(ledger[f"gone-{i}"]["completion_tokens"] for i in range(hung_up)) <= sum(
            counter.count_text(r.content or "") for r in gone
        ), "charged for what the upstream produced, not for the reservation"
        assert ledger["cut"]["status"] == "cut"
        assert ledger["cut"]["completion_tokens"] == counter.count_text("alpha bravo charlie")
        assert ledger["slow"]["status"] == "cut"
        assert ledger["slow"]["completion_tokens"] == 0
        for entry in ledger.values():
            assert entry["prompt_tokens"] > 0
            assert entry["cost_micros"] == actual_cost(
                price, Usage(entry["prompt_tokens"], entry["completion_tokens"])
            )
            assert int(entry["extra"]["reserved"]) >= entry["cost_micros"]
        status = admin.key(created["id"])["budget_status"][0]
        assert status["reserved_micros"] == 0
        assert status["spent_micros"] == sum(e["cost_micros"] for e in ledger.values())
        print(
            f"\nhung up: upstream produced {sorted(r.chunks_sent for r in gone)} chunks; "
            f"all settled {settled:.2f}s after the last response"
        )


def test_a_reused_request_id_is_charged_every_time(pair, fakes):
    """x-request-id is the client's to choose (and echoed back); it must not be what makes
    a charge unique, or a client that repeats one is served free and leaves reservations
    behind that nothing settles."""
    routers, peek = pair
    _, full = fakes
    admin = Admin(routers[0])
    price = admin.prices()["full"]
    created = admin.create_key("reuse", "reuser", budgets=[{"period": "day", "limit_usd": "1"}])
    body = _body(0)

    async def reuse() -> list[Reply]:
        async with httpx.AsyncClient(timeout=20) as client:
            one_by_one = [
                await send(client, routers[i % 2], i % 2, "same-id", created["key"], body)
                for i in range(3)
            ]
            at_once = await asyncio.gather(
                *(
                    send(client, routers[i % 2], i % 2, "twin-id", created["key"], _body(3))
                    for i in range(4)
                )
            )
            return [*one_by_one, *at_once]

    replies = asyncio.run(reuse())
    assert [r.status for r in replies] == [200] * 7
    assert all(r.headers["x-request-id"] in ("same-id", "twin-id") for r in replies)
    wait_until(lambda: not peek.open_holds(), 5, "every reservation to be settled")
    ledger = admin.ledger()
    assert Counter(e["request_id"] for e in ledger) == {"same-id": 3, "twin-id": 4}
    total = sum(e["cost_micros"] for e in ledger)
    assert total == fake_cost(full, price)[1]
    status = admin.key(created["id"])["budget_status"][0]
    assert (status["spent_micros"], status["reserved_micros"]) == (total, 0)
