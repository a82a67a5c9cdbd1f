"""Everything one router process holds, built once at start-up and passed explicitly.

The request pipeline asks the runtime for each step; the runtime delegates to the layer that
owns it (pure core, accounting, backends) and keeps the per-process bits: the background
settlements of finished streams, and the in-memory snapshot the policy engine reads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Coroutine, Mapping

from router.accounting import Accountant
from router.backends.base import Backend
from router.backends.factory import build_backends
from router.config import RouterConfig
from router.core.inspect import inspect
from router.core.model import Decision, Features, Price, Principal, Snapshot
from router.core.tokens import TokenCounter
from router.dispatch import Dispatcher
from router.errors import (
    BudgetExceeded,
    InvalidRequest,
    NoBackendAvailable,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RouterError,
)
from router.keys import KeyResolver
from router.metrics import Metrics
from router.observe import Observer
from router.policy_runtime import PolicyHolder
from router.pricing import PriceBook
from router.store.base import KeyRecord, Store, StoreError
from router.store.factory import open_store
from router.supply.factory import build_supply
from router.supply.manager import SupplyManager

log = logging.getLogger("router.runtime")

_REJECTIONS: dict[int, type[RouterError]] = {
    400: InvalidRequest,
    403: PermissionDenied,
    404: NotFound,
    413: PayloadTooLarge,
    429: BudgetExceeded,
}
_TOKENIZE_ABOVE = 4096
"""Prompts whose byte bound exceeds this are tokenized before admission, so a long prompt
reserves what it will cost, not the 4-5x looser byte bound."""


class Runtime:
    def __init__(
        self,
        config: RouterConfig,
        *,
        store: Store,
        prices: PriceBook,
        accountant: Accountant,
        keys: KeyResolver,
        policy: PolicyHolder,
        tokens: TokenCounter,
        backends: Mapping[str, Backend],
        supply: SupplyManager,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.store = store
        self.prices = prices
        self.accountant = accountant
        self.keys = keys
        self.policy = policy
        self.tokens = tokens
        self.backends = backends
        self.supply = supply
        self.metrics = metrics
        self.observer = Observer(metrics, log_prompts=config.server.log_prompts)
        self.dispatcher = Dispatcher(backends, supply)
        self.aliases = frozenset(config.aliases)
        self.unconfigured = frozenset(
            name
            for name, backend in config.backends.items()
            if backend.requires_api_key and backend.api_key is None
        )
        for name in sorted(self.unconfigured):
            log.warning(
                "backend %r has no API key: requests only it can serve will be "
                "refused until backends.%s.api_key is set",
                name,
                name,
            )
        self.started_at: float | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._watchers: list[asyncio.Task[None]] = []

    @classmethod
    async def build(cls, config: RouterConfig) -> Runtime:
        store = open_store(
            config.store.url, key_prefix=config.store.key_prefix, timeout_s=config.store.timeout_s
        )
        prices = await PriceBook.load(store, config.prices)
        backends = build_backends(config.backends)
        metrics = Metrics()
        auth = config.auth
        return cls(
            config,
            store=store,
            prices=prices,
            accountant=Accountant(
                store,
                prices,
                fail_mode=config.store.fail_mode,
                lease_ttl_ms=int((config.server.request_timeout_s + 60) * 1000),
            ),
            keys=KeyResolver.from_config(
                store, auth, pepper=auth.key_pepper.get_secret_value() if auth.key_pepper else None
            ),
            policy=PolicyHolder.load(config.policy, config.capabilities()),
            tokens=TokenCounter(),
            backends=backends,
            supply=build_supply(config, backends, metrics=metrics),
            metrics=metrics,
        )

    async def start(self) -> None:
        self.started_at = time.time()
        await self.supply.start()
        self._watchers.append(asyncio.create_task(self.policy.watch()))

    async def stop(self) -> None:
        """Finish settling what was served, then release every connection."""
        if self._background:
            await asyncio.wait(self._background, timeout=self.config.server.graceful_timeout_s)
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await self.accountant.close()
        await self.supply.stop()
        await asyncio.gather(*(backend.close() for backend in self.backends.values()))
        await self.store.close()

    async def readiness_problems(self) -> list[str]:
        try:
            await self.store.ping()
        except StoreError as error:
            return [f"store unreachable: {error}"]
        return []

    def inspect(self, body: dict[str, object], headers: Mapping[str, str]) -> Features:
        return inspect(body, headers, self.tokens)

    def snapshot(self, key: KeyRecord, *, with_prices: bool = False) -> Snapshot:
        """State the engine decides on, from memory. Rules never read prices, so the hot
        path skips them; explain asks for them to show each candidate's worst-case cost."""
        key_budget, team_budget = self.accountant.budget_left(key)
        prices: dict[str, Price] = {}
        if with_prices:
            in_force = self.prices.current()
            prices = {
                name: in_force[backend.price_key]
                for name, backend in self.config.backends.items()
                if backend.price_key in in_force
            }
        return Snapshot(
            supply=self.supply.snapshot(),
            prices=prices,
            key_budget=key_budget,
            team_budget=team_budget,
        )

    def decide(self, features: Features, key: KeyRecord, pinned: str | None) -> Decision:
        principal = Principal(key_id=key.key_id, team=key.team, tags=key.tags, name=key.name)
        return self.policy.engine.decide(features, principal, self.snapshot(key), pinned)

    def configured(self, features: Features, decision: Decision) -> Decision:
        """The decision without backends that have no API key; if none is left, a 503 that
        tells the operator what to set (before anything is reserved or sent)."""
        missing = [name for name in decision.candidates if name in self.unconfigured]
        if not missing:
            return decision
        ready = tuple(name for name in decision.candidates if name not in self.unconfigured)
        if ready:
            return dataclasses.replace(
                decision,
                candidates=ready,
                dropped={**decision.dropped, **dict.fromkeys(missing, "no API key")},
            )
        checks = self.policy.engine.checks
        unfit = [
            f"{name}: {gap.detail}"
            for name in self.config.backends
            if name not in missing
            and (gap := checks[name](features, decision.max_tokens_cap)) is not None
        ]
        names = " or ".join(missing)
        fields = ", ".join(f"backends.{name}.api_key" for name in missing)
        raise NoBackendAvailable(
            f"Only the {names} backend can serve this request"
            + (f" ({'; '.join(unfit)})" if unfit else "")
            + f", and it has no API key configured. Set {fields} in {self.config.source} "
            "(the shipped configs read FULL_API_KEY) and restart the router.",
            code="backend_not_configured",
        )

    def rejection_error(self, decision: Decision) -> RouterError:
        rejection = decision.rejection
        assert rejection is not None
        error_class = _REJECTIONS.get(rejection.status, NoBackendAvailable)
        error: RouterError = error_class(rejection.message, code=rejection.code)
        error.status = rejection.status
        return error

    def output_limit(self, features: Features, decision: Decision, backend: str) -> int:
        """The most output `backend` may produce for this request: the client's ask, under
        the policy's cap and the backend's own ceiling."""
        limit = self.config.backends[backend].capabilities.max_output_tokens
        if features.max_output_tokens is not None:
            limit = min(limit, features.max_output_tokens)
        if decision.max_tokens_cap is not None:
            limit = min(limit, decision.max_tokens_cap)
        return limit

    def max_output_tokens(self, features: Features, decision: Decision) -> int:
        """The most output any candidate may produce: what admission reserves for."""
        return max(
            (self.output_limit(features, decision, name) for name in decision.candidates), default=0
        )

    @staticmethod
    def reserve_tokens(features: Features) -> int:
        """Prompt tokens admission reserves for."""
        prompt = features.prompt
        return prompt.exact() if prompt.upper > _TOKENIZE_ABOVE else prompt.worst_case()

    def count_tokens(self, text: str) -> int:
        return self.tokens.count_text(text) if text else 0

    def spawn(self, work: Coroutine[None, None, None]) -> None:
        """Run work that must finish even if the request that started it is cancelled
        (settling a stream); shutdown waits for it."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("background settlement failed", exc_info=error)
