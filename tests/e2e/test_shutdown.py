"""Graceful shutdown: SIGTERM while streams are in flight. The router stops accepting
connections at once, lets every stream finish ([DONE] included), settles each one, and
exits 0 within server.graceful_timeout_s."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.e2e.support import ADMIN_HEADERS, PROMPT, pid_of, replicas
from tests.router_process import CLIENT_KEY, RouterProcess

GRACE_S = 6
STREAMS = 4
WORDS = 15
DELAY_MS = 100


async def _stream(
    client: httpx.AsyncClient, router: RouterProcess, index: int, started: asyncio.Event
) -> list[str]:
    """The stream's data lines; a transport error ends the list with an 'ERROR ...' line
    (when it happened, relative to the monotonic clock) instead of escaping."""
    lines: list[str] = []
    try:
        async with client.stream(
            "POST",
            f"{router.base_url}/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": f"drain-{index}"},
            json={"model": "mini", "messages": PROMPT, "stream": True},
        ) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    lines.append(line)
                    if '"content":"' in line and not started.is_set():
                        started.set()
    except httpx.HTTPError as error:
        lines.append(f"ERROR {error!r} at {time.monotonic():.3f}")
    return lines


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def _drain(router: RouterProcess) -> tuple[list[list[str]], float, float, float]:
    """Streams started, SIGTERM, then (their lines, when SIGTERM was sent, how long until
    connections were refused, how long until the streams ended)."""
    async with httpx.AsyncClient(timeout=30) as client:
        started = [asyncio.Event() for _ in range(STREAMS)]
        streams = [
            asyncio.create_task(_stream(client, router, i, started[i])) for i in range(STREAMS)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 10)
        signalled = time.monotonic()
        router.terminate()
        while not await _refused(router.port):
            assert time.monotonic() - signalled < 3, "still accepting connections"
            await asyncio.sleep(0.01)
        refused = time.monotonic() - signalled
        early = [s.result()[-1] for s in streams if s.done()]
        assert not early, (
            f"streams ended before the router stopped listening: {early} "
            f"(SIGTERM at {signalled:.3f})\n{router.logs()[-3000:]}"
        )
        lines = await asyncio.gather(*streams)
        return lines, signalled, refused, time.monotonic() - signalled


def test_sigterm_lets_streams_finish_then_exits_cleanly(tmp_path, fakes):
    mini, full = fakes
    mini.configure(reply_words=WORDS, chunk_delay_ms=DELAY_MS)
    with replicas(tmp_path, mini, full, 1, server={"graceful_timeout_s": GRACE_S}) as (
        routers,
        peek,
    ):
        router = routers[0]
        lines, signalled, refused, streamed = asyncio.run(_drain(router))
        code = router.wait(timeout=GRACE_S + 5)
        exited = time.monotonic() - signalled

        for stream in lines:
            assert stream[-1] == "data: [DONE]", (
                f"{stream[-3:]} (SIGTERM at {signalled:.3f})\n{router.logs()[-3000:]}"
            )
            assert (
                sum('"content":"' in line and '"content":""' not in line for line in stream)
                == WORDS
            )
        assert code == 0, router.logs()[-3000:]
        assert exited < GRACE_S
        ledger = {e.request_id: e for e in peek.ledger()}
        assert set(ledger) == {f"drain-{i}" for i in range(STREAMS)}
        assert all(e.status == "ok" and e.completion_tokens > 0 for e in ledger.values())
        assert not peek.open_holds(), "nothing left reserved once the process is gone"
        print(
            f"\nshutdown: refused new connections {1000 * refused:.0f} ms after SIGTERM, "
            f"{STREAMS} streams finished at {streamed:.2f} s, exit {code} at {exited:.2f} s "
            f"(graceful_timeout_s={GRACE_S})"
        )


def test_sigterm_exit_status_is_zero(tmp_path, fakes):
    mini, full = fakes
    with replicas(tmp_path, mini, full, 1) as (routers, _):
        router = routers[0]
        router.terminate()
        assert router.wait(timeout=10) == 0


def test_a_killed_router_leaves_its_reservation_charged_until_reconciled(tmp_path, fakes):
    """SIGKILL (no graceful anything) mid-stream: the reservation is not forgiven; the
    admin's reconcile, on another replica, charges it at the reserved amount and clears it."""
    mini, full = fakes
    mini.configure(reply_words=200, chunk_delay_ms=50)
    with replicas(tmp_path, mini, full, 2) as (routers, peek):
        doomed, survivor = routers
        with httpx.stream(
            "POST",
            f"{doomed.base_url}/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "orphan-1"},
            json={"model": "mini", "messages": PROMPT, "stream": True},
            timeout=10,
        ) as resp:
            reserved = round(float(resp.headers["x-router-cost-estimate-usd"]) * 1e6)
            lines = resp.iter_lines()
            next(line for line in lines if '"content":"' in line)
            os.kill(pid_of(doomed), signal.SIGKILL)
            with pytest.raises(httpx.HTTPError):
                list(lines)
        assert doomed.wait(timeout=5) == -signal.SIGKILL
        assert peek.open_holds(), "the dead process's reservation stays charged"
        assert peek.ledger() == []
        admin = httpx.Client(base_url=survivor.url, headers=ADMIN_HEADERS)
        done = admin.post("/admin/reconcile", params={"older_than_s": 0}).json()
        assert done["count"] == 1 and done["charged_micros"] == reserved > 0
        (entry,) = peek.ledger()
        assert (entry.request_id, entry.status, entry.cost) == ("orphan-1", "reconciled", reserved)
        assert not peek.open_holds(), "reconcile clears the reservation and the lease"
        assert admin.post("/admin/reconcile", params={"older_than_s": 0}).json()["count"] == 0
