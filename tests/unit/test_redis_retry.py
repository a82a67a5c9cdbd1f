"""The retry that remembers whether any attempt may have run (router/store/redis_retry.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.store.redis_retry import AttemptAwareRetry, MaybeAppliedError, maybe_applied

LOST = RedisConnectionError("Connection closed by server.")
REFUSED = RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def _run(errors: list[Exception]) -> tuple[BaseException | str, int]:
    """Run one command through the retry; each attempt raises the next error, if any."""
    attempts: Iterator[Exception] = iter(errors)
    failures = 0

    async def do() -> str:
        error = next(attempts, None)
        if error is not None:
            raise error
        return "OK"

    async def fail(error: Exception) -> None:
        nonlocal failures
        failures += 1

    async def main() -> BaseException | str:
        try:
            return await AttemptAwareRetry(NoBackoff(), 1).call_with_retry(do, fail)
        except Exception as exc:
            return exc

    return asyncio.run(main()), failures


def test_a_lost_reply_then_a_refused_retry_may_have_applied() -> None:
    outcome, failures = _run([LOST, REFUSED])
    assert isinstance(outcome, MaybeAppliedError) and maybe_applied(outcome)
    assert outcome.__cause__ is REFUSED and failures == 2


def test_attempts_that_never_connected_did_not_apply() -> None:
    outcome, _ = _run([REFUSED, REFUSED])
    assert outcome is REFUSED and not maybe_applied(outcome)


def test_a_timeout_on_the_last_attempt_is_raised_as_is() -> None:
    timeout = RedisTimeoutError("Timeout reading from socket")
    outcome, _ = _run([REFUSED, timeout])
    assert outcome is timeout and maybe_applied(outcome)


def test_a_retry_that_succeeds_returns_its_reply() -> None:
    assert _run([LOST])[0] == "OK"
