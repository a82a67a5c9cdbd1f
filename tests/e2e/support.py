"""Shared helpers for the end-to-end money tests (budgets, prices, replicas, shutdown,
secrets at rest): router processes behind one real Redis key prefix, the admin API, a look
straight into Redis, and a bounded-concurrency load generator.

Every helper synchronises by polling an external state (Redis, the admin API, a socket)
until a bound; none sleeps a fixed time in place of waiting for something.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from router.core.cost import actual_cost
from router.core.model import Price, Usage
from router.pricing import parse_usd
from router.store.base import LedgerEntry
from router.store.codec import entry_from_fields
from tests.fake_upstream import FakeUpstream
from tests.router_process import ADMIN_KEY, RouterProcess, router_config

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
"""The shared test Redis; every test keeps to key prefixes of its own there."""
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN_KEY}"}
PROMPT = [{"role": "user", "content": "summarise the quarterly spend report in one line"}]
ERROR_FIELDS = {"message", "type", "param", "code"}


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02
) -> float:
    """Poll `predicate` until it holds; the seconds it took. AssertionError past `timeout`."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - began


async def await_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.005
) -> float:
    began = time.monotonic()
    while not await predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - began


# --------------------------------------------------------------------------- Redis


def redis_client() -> redis.Redis:
    """A client of the shared test Redis, or a skip when there is none."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        client.close()
        pytest.skip(f"no Redis at {REDIS_URL}")
    return client


class Peek:
    """Read-only look at everything the routers keep under one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def keys(self) -> list[str]:
        return sorted(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))

    def open_holds(self) -> dict[str, int]:
        """Reservations (hash and time index) and concurrency leases still held, per key;
        empty when every request was settled or released."""
        held: dict[str, int] = {}
        for key in self.keys():
            if key.endswith((":res-at", ":leases")):
                count = self.client.zcard(key)
            elif key.endswith(":res"):
                count = self.client.hlen(key)
            else:
                continue
            if count:
                held[key] = int(count)
        return held

    def ledger(self) -> list[LedgerEntry]:
        """Every ledger entry of every team, straight from the streams."""
        entries = [
            entry_from_fields(fields)
            for key in self.keys()
            if key.endswith(":ledger")
            for _, fields in self.client.xrange(key)
        ]
        return sorted(entries, key=lambda e: e.ts)

    def dump(self) -> str:
        """Every key name and value under the prefix, whatever its type, as one text."""
        out: list[str] = []
        c = self.client
        for key in self.keys():
            kind = c.type(key)
            out.append(f"{key} ({kind})")
            if kind == "string":
                out.append(str(c.get(key)))
            elif kind == "hash":
                out += [f"{k}={v}" for k, v in c.hgetall(key).items()]
            elif kind == "list":
                out += [str(v) for v in c.lrange(key, 0, -1)]
            elif kind == "set":
                out += [str(v) for v in c.smembers(key)]
            elif kind == "zset":
                out += [f"{m}={s}" for m, s in c.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                out += [f"{i} {fields}" for i, fields in c.xrange(key)]
            else:
                out.append(f"<unread type {kind}>")
        return "\n".join(out)

    def delete_all(self) -> None:
        """Drop this prefix's keys (never a FLUSH: the Redis is shared)."""
        keys = self.keys()
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start : start + 500])


# --------------------------------------------------------------------------- routers


def pid_of(router: RouterProcess) -> int:
    """The router's process id (RouterProcess does not expose it)."""
    proc = router._proc
    assert proc is not None, "the router is not running"
    return proc.pid


def start_all(routers: Sequence[RouterProcess]) -> None:
    """Start several router processes at once (each takes about a second to boot)."""
    with concurrent.futures.ThreadPoolExecutor(len(routers)) as pool:
        for future in [pool.submit(r.start) for r in routers]:
            future.result()


@contextlib.contextmanager
def replicas(
    workdir: Path,
    mini: FakeUpstream,
    full: FakeUpstream,
    count: int,
    configure: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> Iterator[tuple[list[RouterProcess], Peek]]:
    """`count` routers sharing one fresh key prefix of the shared Redis; the prefix's keys
    are deleted afterwards. `configure` may edit the config before it is written."""
    client = redis_client()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    cfg = router_config(
        mini.base_url, full.base_url, store_url=REDIS_URL, key_prefix=prefix, **overrides
    )
    if configure is not None:
        configure(cfg)
    routers = [RouterProcess(cfg, workdir) for _ in range(count)]
    peek = Peek(client, prefix)
    try:
        start_all(routers)
        yield routers, peek
    finally:
        for router in routers:
            router.stop()
        peek.delete_all()
        client.close()


# --------------------------------------------------------------------------- admin API


def price_of(view: dict[str, Any]) -> Price:
    """A Price from the admin API's view of one version (USD strings, parsed exactly)."""
    cached = view["cached_input_per_mtok_usd"]
    return Price(
        view["model"],
        int(view["version"]),
        0.0,
        parse_usd(view["input_per_mtok_usd"]),
        parse_usd(view["output_per_mtok_usd"]),
        None if cached is None else parse_usd(cached),
        parse_usd(view["per_request_usd"]),
    )


class Admin:
    """The admin API of one router process."""

    def __init__(self, router: RouterProcess) -> None:
        self.url = router.url
        self.http = httpx.Client(base_url=router.url, headers=ADMIN_HEADERS, timeout=10)

    def _ok(self, resp: httpx.Response) -> Any:
        assert resp.status_code < 300, (
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
        )
        return resp.json()

    def create_key(
        self,
        team: str,
        name: str,
        *,
        budgets: Sequence[dict[str, Any]] = (),
        limits: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"team": team, "name": name, "budgets": list(budgets)}
        if limits:
            body["limits"] = limits
        created: dict[str, Any] = self._ok(self.http.post("/admin/keys", json=body))
        return created

    def key(self, key_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self._ok(self.http.get(f"/admin/keys/{key_id}"))
        return view

    def set_team_budgets(self, team: str, budgets: Sequence[dict[str, Any]]) -> dict[str, Any]:
        view: dict[str, Any] = self._ok(
            self.http.put(f"/admin/teams/{team}/budgets", json={"budgets": list(budgets)})
        )
        return view

    def team_budgets(self, team: str) -> dict[str, Any]:
        view: dict[str, Any] = self._ok(self.http.get(f"/admin/teams/{team}/budgets"))
        return view

    def prices(self) -> dict[str, Price]:
        """The price in force now, per model, as this replica sees it."""
        return {v["model"]: price_of(v) for v in self._ok(self.http.get("/admin/prices"))["data"]}

    def history(self, model: str) -> dict[int, Price]:
        views = self._ok(self.http.get(f"/admin/prices/{model}/history"))["data"]
        return {int(v["version"]): price_of(v) for v in views}

    def add_price(self, model: str, input_usd: str, output_usd: str) -> Price:
        return price_of(
            self._ok(
                self.http.post(
                    "/admin/prices",
                    json={
                        "model": model,
                        "input_per_mtok": input_usd,
                        "output_per_mtok": output_usd,
                    },
                )
            )
        )

    def ledger(self) -> list[dict[str, Any]]:
        resp = self.http.get("/admin/ledger")
        assert resp.status_code == 200, resp.text
        return [json.loads(line) for line in resp.text.splitlines() if line]

    def backends(self) -> dict[str, dict[str, Any]]:
        view: dict[str, dict[str, Any]] = self._ok(self.http.get("/admin/backends"))["backends"]
        return view

    def close(self) -> None:
        self.http.close()


def usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"


def fake_cost(fake: FakeUpstream, price: Price) -> tuple[int, int]:
    """(requests that produced usage, their total cost at `price`) from what the fake
    upstream recorded it produced: the bill the router's ledger must match."""
    served = [r for r in fake.requests if r.usage is not None]
    total = sum(
        actual_cost(price, Usage(r.usage["prompt_tokens"], r.usage["completion_tokens"]))
        for r in served
        if r.usage is not None
    )
    return len(served), total


# --------------------------------------------------------------------------- load


@dataclass
class Reply:
    request_id: str
    router: int
    status: int
    headers: httpx.Headers
    body: Any
    started: float
    ended: float


async def send(
    client: httpx.AsyncClient,
    router: RouterProcess,
    index: int,
    request_id: str,
    key: str,
    body: dict[str, Any],
) -> Reply:
    """One chat request; a stream is read to its end (its body is the list of data lines)."""
    headers = {"authorization": f"Bearer {key}", "x-request-id": request_id}
    url = f"{router.base_url}/chat/completions"
    started = time.monotonic()
    if body.get("stream"):
        async with client.stream("POST", url, json=body, headers=headers) as resp:
            if resp.status_code != 200:
                await resp.aread()
                parsed: Any = resp.json()
            else:
                parsed = [line async for line in resp.aiter_lines() if line.startswith("data:")]
            return Reply(
                request_id, index, resp.status_code, resp.headers, parsed, started, time.monotonic()
            )
    resp = await client.post(url, json=body, headers=headers)
    return Reply(
        request_id, index, resp.status_code, resp.headers, resp.json(), started, time.monotonic()
    )


async def fire(
    routers: Sequence[RouterProcess],
    count: int,
    key: str,
    body_of: Callable[[int], dict[str, Any]],
    *,
    concurrency: int = 64,
    tag: str = "r",
) -> list[Reply]:
    """`count` requests spread round-robin over `routers`, at most `concurrency` at once."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(i: int) -> Reply:
            async with gate:
                index = i % len(routers)
                return await send(client, routers[index], index, f"{tag}-{i}", key, body_of(i))

        return await asyncio.gather(*(one(i) for i in range(count)))


def is_openai_error(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"error"} and set(body["error"]) == ERROR_FIELDS
