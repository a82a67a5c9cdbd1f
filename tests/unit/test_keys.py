"""Key minting and hashing, and resolving a bearer token to its record."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from pydantic import SecretStr

from router.config import AuthConfig
from router.errors import AuthenticationFailed, RateLimited, StoreUnavailable
from router.keys import (
    FailureThrottle,
    KeyResolver,
    bearer_token,
    constant_time_equals,
    generate_key,
    hash_key,
)
from router.store.base import KeyRecord, StoreError
from router.store.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.down = False

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        self.lookups += 1
        if self.down:
            raise StoreError("down")
        return await super().key_by_hash(key_hash)


def test_generated_keys_are_prefixed_random_and_distinct() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len({plaintext for plaintext, _ in keys}) == 200
    assert len({key_id for _, key_id in keys}) == 200
    plaintext, key_id = next(iter(keys))
    assert plaintext.startswith("sk-rt-") and len(plaintext) >= 6 + 43
    assert key_id.startswith("key_")


def test_hash_is_sha256_hex_or_hmac_with_a_pepper() -> None:
    assert hash_key("sk-rt-abc") == hashlib.sha256(b"sk-rt-abc").hexdigest()
    assert (
        hash_key("sk-rt-abc", "pepper")
        == hmac.new(b"pepper", b"sk-rt-abc", hashlib.sha256).hexdigest()
    )
    assert hash_key("sk-rt-abc", "pepper") != hash_key("sk-rt-abc")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer sk-1", "sk-1"),
        ("bearer   sk-1 ", "sk-1"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
        ("sk-1", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_constant_time_equals() -> None:
    assert constant_time_equals("abc", "abc")
    assert not constant_time_equals("abc", "abd")
    assert not constant_time_equals("abc", "ab")


async def stored(store: MemoryStore, resolver: KeyResolver, **kw: Any) -> tuple[str, KeyRecord]:
    plaintext, key_id = generate_key()
    record = KeyRecord(key_id, resolver.hash(plaintext), "team-a", **kw)
    await store.put_key(record)
    return plaintext, record


async def test_resolves_a_stored_key_and_caches_it_briefly() -> None:
    store, clock = CountingStore(), Clock()
    resolver = KeyResolver(store, cache_ttl_s=5, clock=clock)
    plaintext, record = await stored(store, resolver)
    assert await resolver.resolve(f"Bearer {plaintext}", "1.2.3.4") == record
    assert await resolver.resolve(f"Bearer {plaintext}", "1.2.3.4") == record
    assert store.lookups == 1
    clock.now += 6
    await resolver.resolve(f"Bearer {plaintext}", "1.2.3.4")
    assert store.lookups == 2


async def test_a_disabled_key_stops_working_once_its_cache_entry_goes() -> None:
    store, clock = CountingStore(), Clock()
    resolver = KeyResolver(store, clock=clock)
    plaintext, record = await stored(store, resolver)
    await resolver.resolve(f"Bearer {plaintext}")
    await store.put_key(KeyRecord(record.key_id, record.key_hash, record.team, disabled=True))
    resolver.invalidate(record.key_hash)
    with pytest.raises(AuthenticationFailed) as caught:
        await resolver.resolve(f"Bearer {plaintext}")
    assert (caught.value.status, caught.value.code) == (401, "api_key_disabled")


async def test_missing_and_unknown_keys_are_401() -> None:
    resolver = KeyResolver(MemoryStore())
    with pytest.raises(AuthenticationFailed, match="Missing API key"):
        await resolver.resolve(None)
    with pytest.raises(AuthenticationFailed, match="Invalid API key") as caught:
        await resolver.resolve("Bearer sk-rt-nope")
    assert caught.value.code == "invalid_api_key"


async def test_bootstrap_key_belongs_to_the_default_team_without_the_store() -> None:
    store = CountingStore()
    resolver = KeyResolver(store, bootstrap_key="sk-boot", pepper="p")
    record = await resolver.resolve("Bearer sk-boot")
    assert (record.key_id, record.team, record.key_hash) == (
        "bootstrap",
        "default",
        hash_key("sk-boot", "p"),
    )
    assert store.lookups == 0


async def test_repeated_failures_from_one_address_are_throttled() -> None:
    clock = Clock()
    store = MemoryStore()
    resolver = KeyResolver(
        store, clock=clock, throttle=FailureThrottle(burst=3, per_s=0.5, clock=clock)
    )
    plaintext, _ = await stored(store, resolver)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await resolver.resolve("Bearer sk-rt-guess", "6.6.6.6")
    with pytest.raises(RateLimited) as caught:
        await resolver.resolve(f"Bearer {plaintext}", "6.6.6.6")
    assert caught.value.status == 429
    assert caught.value.retry_after == pytest.approx(2.0)
    assert await resolver.resolve(f"Bearer {plaintext}", "7.7.7.7")
    clock.now += 2
    assert await resolver.resolve(f"Bearer {plaintext}", "6.6.6.6")


def test_throttle_forgets_the_oldest_addresses_first() -> None:
    throttle = FailureThrottle(burst=1, per_s=0.001, max_clients=2, clock=Clock())
    for client in ("a", "b", "c"):
        throttle.failed(client)
    assert throttle.retry_after("a") is None
    assert throttle.retry_after("c") is not None


async def test_cache_is_bounded() -> None:
    store = CountingStore()
    resolver = KeyResolver(store, cache_size=2)
    keys = [(await stored(store, resolver))[0] for _ in range(3)]
    for plaintext in keys:
        await resolver.resolve(f"Bearer {plaintext}")
    await resolver.resolve(f"Bearer {keys[0]}")
    assert store.lookups == 4


async def test_an_unreachable_store_is_503_but_cached_keys_keep_working() -> None:
    store = CountingStore()
    resolver = KeyResolver(store)
    plaintext, _ = await stored(store, resolver)
    await resolver.resolve(f"Bearer {plaintext}")
    store.down = True
    assert await resolver.resolve(f"Bearer {plaintext}")
    with pytest.raises(StoreUnavailable):
        await resolver.resolve("Bearer sk-rt-other")


async def test_from_config() -> None:
    auth = AuthConfig(
        admin_key=SecretStr("admin"),
        bootstrap_key=SecretStr("sk-boot"),
        bootstrap_team="ops",
        failed_auth_per_minute=1,
    )
    resolver = KeyResolver.from_config(MemoryStore(), auth)
    assert (await resolver.resolve("Bearer sk-boot")).team == "ops"
    with pytest.raises(AuthenticationFailed):
        await resolver.resolve("Bearer wrong", "9.9.9.9")
    with pytest.raises(RateLimited):
        await resolver.resolve("Bearer wrong", "9.9.9.9")
