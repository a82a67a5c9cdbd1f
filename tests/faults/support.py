"""What the fault tests and the soak script share: a router on its own Redis, steady load from
the openai SDK, and the books (ledger, reservations, leases, budget counters) read back from
the admin API and straight from Redis.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.redis_servers import RedisServer
from tests.router_process import ADMIN_KEY, CLIENT_KEY, RouterProcess, router_config

HELLO = [{"role": "user", "content": "say hello to the router please"}]
BUDGET_USD = "1000"
"""A team budget large enough never to deny, so the counters can be checked against the
ledger."""
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")
"""A Redis that keeps what it acknowledged across a SIGKILL, as a production one would: an
outage test must measure the router, not a Redis that forgets its data."""


def durable_redis() -> RedisServer:
    """A redis-server of our own (never the shared one on 6379), with an fsynced AOF."""
    return RedisServer(extra_args=DURABLE)


def fault_config(
    mini_url: str,
    full_url: str,
    redis_url: str,
    *,
    fail_mode: str = "closed",
    timeout_s: float = 0.25,
    **overrides: Any,
) -> dict[str, Any]:
    """The e2e router config on `redis_url`, with quick timeouts so faults show fast."""
    config = router_config(mini_url, full_url, store_url=redis_url, **overrides)
    config["store"] = {**config["store"], "fail_mode": fail_mode, "timeout_s": timeout_s}
    config["server"] = {**config["server"], "log_level": "info"}
    for backend in config["backends"].values():
        backend["timeouts"] = {"connect_s": 1, "first_byte_s": 2, "read_s": 2}
    return config


def admin(router: RouterProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{router.url}{path}",
        timeout=20,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        **kwargs,
    )


def healthy(router: RouterProcess) -> bool:
    """The process still answers /healthz."""
    try:
        return httpx.get(f"{router.url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def set_team_budget(router: RouterProcess, team: str = "default") -> None:
    resp = admin(
        router,
        "PUT",
        f"/admin/teams/{team}/budgets",
        json={"budgets": [{"period": "month", "limit_usd": BUDGET_USD}]},
    )
    resp.raise_for_status()


def ledger(router: RouterProcess) -> list[dict[str, Any]]:
    resp = admin(router, "GET", "/admin/ledger", params={"format": "jsonl"})
    resp.raise_for_status()
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


@dataclass(frozen=True, slots=True)
class Books:
    """Everything under one key prefix that says where the money is."""

    ledger_cost: int
    ledger_ids: frozenset[str]
    ledger_rows: int
    spent: int
    """Sum of every budget hash's spent fields (`s:<bucket>`)."""
    reserved: int
    """Sum of every budget hash's reserved fields (`r` / `r:<bucket>`)."""
    reservations: int
    """Entries left in the teams' reservation hashes."""
    key_leases: int
    """Entries left in the keys' concurrency lease zsets."""
    supply_leases: int
    """Entries left in the backends' capacity lease zsets."""

    def __str__(self) -> str:
        return (
            f"ledger {self.ledger_rows} rows / {self.ledger_cost} micros, spent "
            f"{self.spent}, reserved {self.reserved}, reservations {self.reservations}, "
            f"key leases {self.key_leases}, supply leases {self.supply_leases}"
        )


def read_books(router: RouterProcess, server: RedisServer, prefix: str) -> Books:
    rows = ledger(router)
    spent = reserved = reservations = key_leases = supply_leases = 0
    with server.sync_client(decode_responses=True) as client:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            kind = client.type(key)
            if kind == "hash" and ":b:" in key:
                for name, value in client.hgetall(key).items():
                    if name.startswith("s:"):
                        spent += int(value)
                    elif name == "r" or name.startswith("r:"):
                        reserved += int(value)
            elif kind == "hash" and key.endswith(":res"):
                reservations += client.hlen(key)
            elif kind == "zset" and key.endswith(":leases"):
                live = client.zcard(key)
                if ":{b:" in key:
                    supply_leases += live
                else:
                    key_leases += live
    return Books(
        sum(int(r["cost_micros"]) for r in rows),
        frozenset(r["request_id"] for r in rows),
        len(rows),
        spent,
        reserved,
        reservations,
        key_leases,
        supply_leases,
    )


def dump_values(server: RedisServer, prefix: str) -> bytes:
    """Every key and value under `prefix`, whatever its type, as one blob to grep."""
    out: list[bytes] = []
    with server.sync_client() as client:
        for key in client.scan_iter(match=f"{prefix}:*".encode(), count=1000):
            out.append(key)
            out.append(client.dump(key) or b"")
            kind = client.type(key)
            if kind == b"string":
                out.append(client.get(key) or b"")
            elif kind == b"hash":
                for name, value in client.hgetall(key).items():
                    out += [name, value]
            elif kind == b"set":
                out += list(client.smembers(key))
            elif kind == b"zset":
                out += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == b"stream":
                for _, fields in client.xrange(key):
                    for name, value in fields.items():
                        out += [name, value]
            elif kind == b"list":
                out += list(client.lrange(key, 0, -1))
    return b"\n".join(out)


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.02,
    state: Callable[[], object] | None = None,
) -> float:
    """Poll an external process's state until `predicate` holds; seconds it took. On
    timeout the error shows `state()`, what was seen last."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            seen = f"; last seen: {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{seen}")
        time.sleep(interval)
    return time.monotonic() - start


def error_shape_ok(body: object) -> bool:
    """`{"error": {"message", "type", "param", "code"}}` with a non-empty message."""
    if not isinstance(body, Mapping) or set(body) != {"error"}:
        return False
    error = body["error"]
    return (
        isinstance(error, Mapping)
        and set(error) == {"message", "type", "param", "code"}
        and isinstance(error["message"], str)
        and bool(error["message"])
        and isinstance(error["type"], str)
    )


@dataclass(slots=True)
class Outcome:
    """One request the load sent: when, what came back."""

    request_id: str
    started: float
    ended: float
    status: int
    code: str | None = None
    backend: str | None = None
    shaped: bool = True
    stream: bool = False


@dataclass(slots=True)
class Load:
    """`clients` threads, each an openai SDK client sending requests back to back until
    stopped; every answer is recorded with a request id of our own."""

    router: RouterProcess
    clients: int = 4
    stream_every: int = 3
    """Every n-th request of a client streams."""
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sent: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def start(self) -> Load:
        for index in range(self.clients):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        with self._lock:
            return list(self.outcomes)

    def wait_answers(self, count: int, timeout: float = 20.0) -> None:
        """Until `count` more answers (any status) came back."""
        for _ in range(count):
            if not self._sent.acquire(timeout=timeout):
                raise AssertionError("the load stopped getting answers")

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def _run(self, index: int) -> None:
        client = openai.OpenAI(
            base_url=self.router.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=15
        )
        n = 0
        while not self._stop.is_set():
            n += 1
            outcome = self._one(
                client,
                f"load-{index}-{n}-{uuid.uuid4().hex[:6]}",
                stream=n % self.stream_every == 0,
            )
            with self._lock:
                self.outcomes.append(outcome)
            self._sent.release()

    def _one(self, client: openai.OpenAI, request_id: str, *, stream: bool) -> Outcome:
        started = time.monotonic()
        headers = {"x-request-id": request_id}
        try:
            if stream:
                with client.chat.completions.with_streaming_response.create(
                    model="auto", messages=HELLO, stream=True, extra_headers=headers
                ) as resp:
                    text = "".join(resp.iter_lines())
                    done = "[DONE]" in text
                    return Outcome(
                        request_id,
                        started,
                        time.monotonic(),
                        200 if done else 599,
                        None if done else "stream_cut",
                        resp.headers.get("x-router-backend"),
                        stream=True,
                    )
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=HELLO, extra_headers=headers
            )
            raw.parse()
            return Outcome(
                request_id,
                started,
                time.monotonic(),
                raw.status_code,
                backend=raw.headers.get("x-router-backend"),
            )
        except openai.APIStatusError as error:
            body = error.response.json() if error.response.content else None
            code = body["error"].get("code") if error_shape_ok(body) else None
            return Outcome(
                request_id,
                started,
                time.monotonic(),
                error.status_code,
                code,
                shaped=error_shape_ok(body),
                stream=stream,
            )
        except (openai.APIConnectionError, httpx.HTTPError) as error:
            return Outcome(
                request_id,
                started,
                time.monotonic(),
                0,
                type(error).__name__,
                shaped=False,
                stream=stream,
            )


@contextmanager
def running_load(router: RouterProcess, clients: int = 4) -> Iterator[Load]:
    load = Load(router, clients).start()
    try:
        yield load
    finally:
        load.stop()


def start_router(config: Mapping[str, Any], workdir: Path) -> RouterProcess:
    return RouterProcess(config, workdir).start()


def log_lines(router: RouterProcess) -> list[dict[str, Any]]:
    """The router's JSON log lines (anything else on stderr is skipped)."""
    out = []
    for line in router.logs().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def log_problems(router: RouterProcess) -> list[str]:
    """Unhandled errors and tracebacks in the router's log: each one is a bug."""
    found = [
        str(line.get("error") or line["msg"])
        for line in log_lines(router)
        if line["msg"] == "unhandled error" or "Traceback" in str(line.get("error", ""))
    ]
    return found + [line for line in router.logs().splitlines() if line.startswith("Traceback")]
