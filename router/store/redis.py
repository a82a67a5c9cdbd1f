"""The Redis store: shared by every replica, standalone, Sentinel or Cluster alike.

Every multi-key change is one Lua script (router/store/lua/, run by SHA) over keys that share
the team's hash tag (router/store/keys.py), so admission and settlement each cost one round
trip and run unchanged on Redis Cluster. Time inside scripts is Redis TIME. The one extra
round trip is the first admission or settlement of a team in this process, which adds the
team to the set of known teams (a key in another slot) so the ledger and reconcile can find
its stream.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from router.core.model import Price
from router.store.base import (
    AdmitRequest,
    AdmitResult,
    Budget,
    BudgetStatus,
    KeyRecord,
    LedgerEntry,
    PriceListener,
    Settlement,
    StoreError,
)
from router.store.codec import (
    budgets_from_json,
    budgets_to_json,
    entry_fields,
    entry_from_fields,
    key_from_json,
    key_to_json,
    price_from_json,
    price_to_json,
)
from router.store.common import admit_result, reconciled_entry, status
from router.store.keys import KeySpace
from router.store.redis_retry import maybe_applied
from router.store.redis_watch import PriceWatcher
from router.store.resp import ScriptConnection
from router.store.scripts import script_source
from router.types import Micros

RedisClient = Redis | RedisCluster
_VERBS = ("admit", "settle", "release", "status", "add_price", "put_key")
_PAGE = 500
_Order = tuple[float, int, int]


@contextmanager
def _guard(op: str) -> Iterator[None]:
    """Every Redis failure leaves the store as StoreError, naming the operation."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
        raise StoreError(
            f"redis {op} failed: {type(exc).__name__}: {exc}", maybe_applied=maybe_applied(exc)
        ) from exc


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _budget_args(budgets: Sequence[Budget]) -> list[str]:
    return [item for b in budgets for item in (b.period.value, str(b.window_s or 0))]


def _statuses(budgets: Sequence[Budget], flat: Sequence[Any]) -> tuple[BudgetStatus, ...]:
    return tuple(
        status(
            b,
            int(flat[3 * i]),
            int(flat[3 * i + 1]),
            int(flat[3 * i + 2]) if flat[3 * i + 2] != "" else None,
        )
        for i, b in enumerate(budgets)
    )


def _stream_id(raw: str) -> tuple[int, int]:
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


class RedisStore:
    """Store over a redis-py asyncio client created with decode_responses=True."""

    def __init__(
        self,
        client: RedisClient,
        *,
        key_prefix: str,
        on_close: Sequence[Callable[[], Awaitable[object]]] = (),
        scripts: ScriptConnection | None = None,
    ) -> None:
        # redis-py types replies as bytes | str | None unions; with decode_responses every
        # reply is str, so the client is used untyped and replies are converted where read.
        self._client: Any = client
        self._names = KeySpace(key_prefix)
        self._scripts = {verb: client.register_script(script_source(verb)) for verb in _VERBS}
        self._known_teams: set[str] = set()
        self._watcher = PriceWatcher(client, self._names.price_channel(), self.prices)
        self._on_close = tuple(on_close)
        self._lane = scripts

    async def _run(self, verb: str, keys: list[str], args: list[str]) -> Any:
        """EVALSHA over the lean script connection where there is one (router/store/resp.py),
        else straight through `execute_command`: redis-py's Script wrapper costs a measurable
        share of the hot path. A flushed script cache is reloaded once."""
        script = self._scripts[verb]
        with _guard(verb):
            try:
                if self._lane is not None:
                    return await self._lane.call(
                        "EVALSHA", script.sha, str(len(keys)), *keys, *args
                    )
                return await self._client.execute_command(
                    "EVALSHA", script.sha, len(keys), *keys, *args
                )
            except NoScriptError:
                return await script(keys=keys, args=args)

    async def _ensure_team(self, team: str) -> None:
        if team not in self._known_teams:
            with _guard("sadd teams"):
                await self._client.sadd(self._names.teams(), team)
            self._known_teams.add(team)

    async def _teams(self) -> list[str]:
        with _guard("smembers teams"):
            members = await self._client.smembers(self._names.teams())
        return sorted(members)

    async def ping(self) -> None:
        with _guard("ping"):
            await self._client.ping()

    async def close(self) -> None:
        await self._watcher.close()
        with _guard("close"):
            await self._client.aclose()
            for closer in self._on_close:
                await closer()

    async def admit(self, request: AdmitRequest) -> AdmitResult:
        team, names = request.team, self._names
        await self._ensure_team(team)
        keys = [
            names.rate(team, request.key_id),
            names.leases(team, request.key_id),
            names.reservations(team),
            names.reservation_times(team),
            *(names.budget(team, b) for b in request.budgets),
            names.settled(team),
        ]
        limits = request.limits
        args = [
            request.request_id,
            request.key_id,
            str(request.reserve),
            str(request.tokens),
            _opt(limits.rpm),
            _opt(limits.tpm),
            _opt(limits.max_concurrency),
            str(request.lease_ttl_ms),
            request.nonce,
        ]
        for b in request.budgets:
            args += [b.period.value, str(b.hard_limit), str(b.window_s or 0)]
        reply = await self._run("admit", keys, args)
        return admit_result(
            reply[0], int(reply[1]), int(reply[2]), _statuses(request.budgets, reply[4:])
        )

    def _settle_keys(self, team: str, key_id: str, budgets: Sequence[Budget]) -> list[str]:
        names = self._names
        return [
            names.reservations(team),
            names.reservation_times(team),
            names.settled(team),
            names.leases(team, key_id),
            names.rate(team, key_id),
            names.ledger(team),
            *(names.budget(team, b) for b in budgets),
        ]

    async def settle(self, settlement: Settlement) -> tuple[BudgetStatus, ...]:
        await self._ensure_team(settlement.team)
        entry = settlement.entry
        args = [
            settlement.request_id,
            str(settlement.cost),
            str(entry.prompt_tokens + entry.completion_tokens),
            "0",
            str(len(settlement.budgets)),
            *_budget_args(settlement.budgets),
            *entry_fields(entry),
        ]
        reply = await self._run(
            "settle",
            self._settle_keys(settlement.team, settlement.key_id, settlement.budgets),
            args,
        )
        return _statuses(settlement.budgets, reply[1:])

    async def release(
        self, request_id: str, key_id: str, team: str, budgets: tuple[Budget, ...]
    ) -> None:
        names = self._names
        await self._run(
            "release",
            [names.reservations(team), names.reservation_times(team), names.leases(team, key_id)],
            [request_id],
        )

    async def budget_status(
        self, team: str, budgets: tuple[Budget, ...]
    ) -> tuple[BudgetStatus, ...]:
        if not budgets:
            return ()
        reply = await self._run(
            "status", [self._names.budget(team, b) for b in budgets], _budget_args(budgets)
        )
        return _statuses(budgets, reply)

    async def add_price(self, price: Price) -> Price:
        names = self._names
        stored = await self._run(
            "add_price",
            [
                names.price_models(),
                names.price_counter(price.model),
                names.price_versions(price.model),
            ],
            [price.model, price_to_json(price), names.price_channel()],
        )
        return price_from_json(stored)

    async def prices(self) -> dict[str, list[Price]]:
        client = self._client
        with _guard("prices"):
            models = await client.smembers(self._names.price_models())
            out = {}
            for model in sorted(models):
                raw = await client.hvals(self._names.price_versions(model))
                out[model] = sorted((price_from_json(r) for r in raw), key=lambda p: p.version)
        return out

    def watch_prices(self, listener: PriceListener) -> None:
        self._watcher.add(listener)

    async def put_key(self, record: KeyRecord) -> None:
        await self._run(
            "put_key",
            [self._names.keys_by_id(), self._names.keys_by_hash()],
            [record.key_id, record.key_hash, key_to_json(record)],
        )
        await self._ensure_team(record.team)

    async def _key(self, index: str, field: str) -> KeyRecord | None:
        with _guard("key lookup"):
            raw = await self._client.hget(index, field)
        return None if raw is None else key_from_json(raw)

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        return await self._key(self._names.keys_by_hash(), key_hash)

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        return await self._key(self._names.keys_by_id(), key_id)

    async def list_keys(self) -> list[KeyRecord]:
        with _guard("list keys"):
            raw = await self._client.hvals(self._names.keys_by_id())
        return sorted((key_from_json(r) for r in raw), key=lambda r: (r.created_at, r.key_id))

    async def set_team_budgets(self, team: str, budgets: tuple[Budget, ...]) -> None:
        with _guard("set team budgets"):
            await self._client.set(self._names.team_budgets(team), budgets_to_json(budgets))
        await self._ensure_team(team)

    async def team_budgets(self, team: str) -> tuple[Budget, ...]:
        with _guard("team budgets"):
            raw = await self._client.get(self._names.team_budgets(team))
        return budgets_from_json(raw)

    async def _stream(
        self, team: str, since: float | None, until: float | None
    ) -> AsyncIterator[tuple[_Order, LedgerEntry]]:
        # Stream ids carry the ms of the XADD, which may differ from `ts` by a ms: read a ms
        # wider, then filter on `ts` itself.
        low = "-" if since is None else str(max(0, math.floor(since * 1000) - 1))
        high = "+" if until is None else str(math.ceil(until * 1000) + 1)
        key = self._names.ledger(team)
        while True:
            with _guard("ledger read"):
                page = await self._client.xrange(key, low, high, count=_PAGE)
            for entry_id, fields in page:
                entry = entry_from_fields(fields)
                if (since is None or entry.ts >= since) and (until is None or entry.ts <= until):
                    yield (entry.ts, *_stream_id(entry_id)), entry
            if len(page) < _PAGE:
                return
            low = "(" + page[-1][0]

    async def ledger(
        self, since: float | None = None, until: float | None = None
    ) -> AsyncIterator[LedgerEntry]:
        """Each team's stream is in time order; merge them by the microsecond timestamp the
        settle script stamped (stream ids only have milliseconds)."""
        streams = [self._stream(team, since, until) for team in await self._teams()]
        heap: list[tuple[_Order, int, LedgerEntry]] = []
        for index, stream in enumerate(streams):
            first = await anext(stream, None)
            if first is not None:
                heapq.heappush(heap, (first[0], index, first[1]))
        while heap:
            _, index, entry = heapq.heappop(heap)
            yield entry
            following = await anext(streams[index], None)
            if following is not None:
                heapq.heappush(heap, (following[0], index, following[1]))

    async def stale_reservations(self, older_than_s: float) -> list[tuple[str, str, Micros]]:
        with _guard("time"):
            seconds, micros = await self._client.time()
        cutoff = seconds * 1000 + micros // 1000 - int(older_than_s * 1000)
        out: list[tuple[str, str, Micros]] = []
        for team in await self._teams():
            with _guard("stale reservations"):
                ids = await self._client.zrangebyscore(
                    self._names.reservation_times(team), "-inf", cutoff
                )
                if not ids:
                    continue
                records = await self._client.hmget(self._names.reservations(team), ids)
            out += [
                (rid, team, int(json.loads(raw)["amount"]))
                for rid, raw in zip(ids, records, strict=True)
                if raw is not None
            ]
        return out

    async def reconcile(self, request_id: str, team: str) -> LedgerEntry | None:
        with _guard("reconcile read"):
            raw = await self._client.hget(self._names.reservations(team), request_id)
        if raw is None:
            return None
        record = json.loads(raw)
        amount = int(record["amount"])
        entry = reconciled_entry(
            request_id, team, record["key_id"], amount, int(record["at"]) / 1000, time.time()
        )
        args = [request_id, str(amount), "", "1", "0", *entry_fields(entry)]
        reply = await self._run("settle", self._settle_keys(team, record["key_id"], ()), args)
        return entry if reply[0] == "ok" else None
