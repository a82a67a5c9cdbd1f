"""API keys: minting, hashing, and resolving `Authorization: Bearer <key>` to a KeyRecord.

Only hashes are stored. Keys are 256-bit random strings, so one SHA-256 is enough (no slow
KDF needed); an optional server-side pepper turns it into an HMAC, so a leaked store alone
cannot confirm a guessed key. Resolution sits on the hot path, hence the short cache in
front of the store; a key disabled by the admin API stops working on other replicas within
the cache TTL. Repeated failures from one client address are throttled.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from router.errors import AuthenticationFailed, RateLimited, StoreUnavailable
from router.store.base import KeyRecord, Store, StoreError

if TYPE_CHECKING:
    from router.config import AuthConfig

log = logging.getLogger("router.keys")

KEY_PREFIX = "sk-rt-"
BOOTSTRAP_KEY_ID = "bootstrap"
DEFAULT_TEAM = "default"


def generate_key() -> tuple[str, str]:
    """A new (plaintext, key_id). The plaintext is shown once and never stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32), "key_" + secrets.token_hex(8)


def hash_key(plaintext: str, pepper: str | None = None) -> str:
    """Hex SHA-256 of the key, or HMAC-SHA-256 keyed by the pepper when one is set."""
    if pepper:
        return hmac.new(pepper.encode(), plaintext.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(plaintext.encode()).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class FailureThrottle:
    """A token bucket of failed attempts per client address, bounded in size (oldest
    addresses are forgotten first)."""

    def __init__(
        self,
        *,
        burst: int = 20,
        per_s: float = 1.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._per_s = per_s
        self._max = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, client: str) -> float:
        tokens, at = self._buckets.get(client, (float(self._burst), self._clock()))
        return min(float(self._burst), tokens + (self._clock() - at) * self._per_s)

    def retry_after(self, client: str) -> float | None:
        """Seconds until `client` may try again, or None when it may try now."""
        if client not in self._buckets:
            return None
        tokens = self._tokens(client)
        return None if tokens >= 1 else (1 - tokens) / self._per_s

    def failed(self, client: str) -> None:
        self._buckets[client] = (self._tokens(client) - 1, self._clock())
        self._buckets.move_to_end(client)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)


class KeyResolver:
    """Bearer token -> KeyRecord, via the bootstrap key, a short cache, then the store."""

    def __init__(
        self,
        store: Store,
        *,
        pepper: str | None = None,
        bootstrap_key: str | None = None,
        bootstrap_team: str = DEFAULT_TEAM,
        cache_ttl_s: float = 5.0,
        cache_size: int = 10_000,
        throttle: FailureThrottle | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._pepper = pepper
        self._ttl = cache_ttl_s
        self._size = cache_size
        self._clock = clock
        self._cache: OrderedDict[str, tuple[KeyRecord, float]] = OrderedDict()
        self._throttle = throttle or FailureThrottle(clock=clock)
        self._bootstrap: KeyRecord | None = None
        if bootstrap_key:
            self._bootstrap = KeyRecord(
                BOOTSTRAP_KEY_ID, self.hash(bootstrap_key), bootstrap_team, name="bootstrap"
            )

    @classmethod
    def from_config(
        cls, store: Store, auth: AuthConfig, *, pepper: str | None = None
    ) -> KeyResolver:
        """The resolver an `auth:` config section describes."""
        per_minute = auth.failed_auth_per_minute
        return cls(
            store,
            pepper=pepper,
            bootstrap_key=auth.bootstrap_key.get_secret_value() if auth.bootstrap_key else None,
            bootstrap_team=auth.bootstrap_team,
            throttle=FailureThrottle(burst=per_minute, per_s=per_minute / 60),
        )

    def hash(self, plaintext: str) -> str:
        """The stored form of a key under this server's pepper."""
        return hash_key(plaintext, self._pepper)

    async def lookup(self, token: str) -> KeyRecord | None:
        """The record for a plaintext key, disabled or not; None when unknown."""
        key_hash = self.hash(token)
        if self._bootstrap is not None and constant_time_equals(key_hash, self._bootstrap.key_hash):
            return self._bootstrap
        cached = self._cache.get(key_hash)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        try:
            record = await self._store.key_by_hash(key_hash)
        except StoreError as exc:
            if cached is not None:
                log.warning(
                    "key store unreachable; serving key %s from its last-seen record",
                    cached[0].key_id,
                )
                return cached[0]
            raise StoreUnavailable("the key store is unreachable; retry shortly") from exc
        if record is None:
            self._cache.pop(key_hash, None)
            return None
        self._cache[key_hash] = (record, self._clock() + self._ttl)
        self._cache.move_to_end(key_hash)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return record

    def check_throttle(self, client: str) -> None:
        """RateLimited (429) while `client` has failed too often recently."""
        wait = self._throttle.retry_after(client)
        if wait is not None:
            raise RateLimited(
                f"Too many failed authentication attempts from this address; retry in "
                f"{math.ceil(wait)} s.",
                code="too_many_auth_failures",
                retry_after=wait,
            )

    def failed(self, client: str) -> None:
        """Count a failed attempt (a wrong key here, or a wrong admin key elsewhere)."""
        self._throttle.failed(client)

    async def resolve(self, authorization: str | None, client_ip: str | None = None) -> KeyRecord:
        """The caller's key, or AuthenticationFailed (401) / RateLimited (429)."""
        client = client_ip or "unknown"
        self.check_throttle(client)
        token = bearer_token(authorization)
        if token is None:
            raise AuthenticationFailed("Missing API key. Send it as 'Authorization: Bearer <key>'.")
        record = await self.lookup(token)
        if record is None:
            self.failed(client)
            raise AuthenticationFailed(
                "Invalid API key. Check the key you sent, or ask your admin for a new one."
            )
        if record.disabled:
            self.failed(client)
            raise AuthenticationFailed(
                "This API key is disabled. Ask your admin for a new one.", code="api_key_disabled"
            )
        return record

    def invalidate(self, key_hash: str | None = None) -> None:
        """Forget one cached key (or all), e.g. after the admin API disabled or rotated it."""
        if key_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(key_hash, None)
