"""Whether a failed Redis command may still have run, across redis-py's own retry.

A command whose reply was lost (a timeout, or a connection dropped after sending) may have
run; one that never connected did not. redis-py retries once and raises only the last
error, so a lost reply followed by a retry that cannot connect would read as "never sent"
and a reservation the first attempt made would stay until reconcile. `AttemptAwareRetry`
remembers every attempt and raises `MaybeAppliedError` in that case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.retry import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")


def maybe_applied(exc: BaseException) -> bool:
    """Whether the command may have run although no reply came back: a timeout, or a
    connection lost after the command was sent. Only a failure to connect at all (redis-py
    says "Error N connecting to host:port") proves it never reached Redis."""
    if isinstance(exc, MaybeAppliedError | TimeoutError | RedisTimeoutError):
        return True
    return isinstance(exc, RedisConnectionError) and "connecting to" not in str(exc)


class MaybeAppliedError(RedisConnectionError):
    """The last attempt never reached Redis, but an earlier one may have run."""


def last_failure(exc: RedisConnectionError, earlier_landed: bool) -> RedisConnectionError:
    """What to raise after the last attempt failed: its own error, unless that says "never
    sent" while an earlier attempt may have run."""
    if earlier_landed and not maybe_applied(exc):
        return MaybeAppliedError(f"{exc} (after an attempt whose reply was lost)")
    return exc


class AttemptAwareRetry(Retry):
    """redis-py's Retry, raising `MaybeAppliedError` when any attempt may have run."""

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        landed = False

        async def note(error: Exception, *count: int) -> None:
            nonlocal landed
            landed = landed or maybe_applied(error)
            await fail(error, *count)

        try:
            return await super().call_with_retry(do, note, is_retryable, with_failure_count)
        except RedisConnectionError as exc:
            failure = last_failure(exc, landed)
            if failure is exc:
                raise
            raise failure from exc
