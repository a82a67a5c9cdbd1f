"""Everything one router process holds, built once at start-up and passed explicitly.

The request pipeline (router/server/pipeline) reads what it needs from here; the runtime
itself does no per-request work. It owns the process's lifetime: start-up, the background
settlements of finished streams, and an orderly shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping

from router.accounting import Accountant
from router.backends.base import Backend
from router.backends.factory import build_backends
from router.config import RouterConfig
from router.core.plan import Planner
from router.core.tokens import TokenCounter
from router.dispatch import Dispatcher
from router.keys import KeyResolver
from router.metrics import Metrics
from router.observe import Observer
from router.policy_runtime import PolicyHolder
from router.pricing import PriceBook
from router.store.base import Store, StoreError
from router.store.factory import open_store
from router.supply.factory import build_supply
from router.supply.manager import SupplyManager

log = logging.getLogger("router.runtime")


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
        unconfigured = sorted(
            name
            for name, backend in config.backends.items()
            if backend.requires_api_key and backend.api_key is None
        )
        self.planner = Planner(
            config.capabilities(), unconfigured, config_source=str(config.source)
        )
        for name in unconfigured:
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
