"""Period and rate-window arithmetic: the Python twin of lua/_lib.lua and admit.lua.

The in-process store runs these; the Redis scripts carry the same rules in Lua, and the
contract suite holds both stores to the same answers. Times are integer ms since the epoch.

Budget counters live in a dict of fields per budget, exactly like the Redis hash:
's:<bucket>' spent and 'r:<bucket>' reserved for calendar periods (UTC day or month),
's:<bucket>' spent per time bucket and a single 'r' reserved for rolling windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from router.store.base import Budget, Period

DAY_MS = 86_400_000
MINUTE_MS = 60_000
_EPOCH = date(1970, 1, 1)


def calendar(period: Period, now_ms: int) -> tuple[int, int]:
    """Bucket id and end (ms) of the UTC day or month containing `now_ms`."""
    day = now_ms // DAY_MS
    if period is Period.DAY:
        return day, (day + 1) * DAY_MS
    today = _EPOCH + timedelta(days=day)
    following = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return today.year * 12 + today.month - 1, (following - _EPOCH).days * DAY_MS


def rolling_geometry(window_s: int) -> tuple[int, int]:
    """(bucket size in s, bucket count): ~60 buckets, so spend leaves whole buckets at once."""
    size = max(1, -(-window_s // 60))
    return size, -(-window_s // size)


@dataclass(frozen=True, slots=True)
class BudgetRead:
    spent: int
    reserved: int
    resets_at_ms: int | None
    reserved_field: str
    spent_field: str


def read_budget(fields: dict[str, int], budget: Budget, now_ms: int, *, purge: bool) -> BudgetRead:
    """Where a budget stands at `now_ms`; with `purge`, drop buckets that no longer count."""
    if budget.period is Period.ROLLING:
        size, count = rolling_geometry(budget.window_s or 0)
        idx = now_ms // 1000 // size
        spent, oldest = 0, None
        for name, value in list(fields.items()):
            if name == "r":
                continue
            bucket = int(name[2:])
            if bucket <= idx - count:
                if purge:
                    del fields[name]
            else:
                spent += value
                oldest = bucket if oldest is None else min(oldest, bucket)
        resets = None if oldest is None else (oldest + count) * size * 1000
        return BudgetRead(spent, fields.get("r", 0), resets, "r", f"s:{idx}")
    bucket, resets_ms = calendar(budget.period, now_ms)
    spent_field, reserved_field = f"s:{bucket}", f"r:{bucket}"
    if purge and spent_field not in fields and reserved_field not in fields:
        for name in [n for n in fields if int(n[2:]) < bucket - 1]:
            del fields[name]
    return BudgetRead(
        fields.get(spent_field, 0),
        fields.get(reserved_field, 0),
        resets_ms,
        reserved_field,
        spent_field,
    )


def unreserve(fields: dict[str, int], name: str, amount: int) -> None:
    """Take a reservation back off, deleting the field at zero (or when it was lost)."""
    left = fields.get(name, 0) - amount
    if left <= 0:
        fields.pop(name, None)
    else:
        fields[name] = left


def wait_ms(prev: int, cur: int, cost: int, limit: int, elapsed_ms: int) -> int:
    """ms until a 60 s sliding window, estimated from the previous and current minute,
    has room for `cost` more (0 = room now)."""
    if prev * (MINUTE_MS - elapsed_ms) + (cur + cost) * MINUTE_MS <= limit * MINUTE_MS:
        return 0
    if cur + cost <= limit:
        return MINUTE_MS - (limit - cur - cost) * MINUTE_MS // prev - elapsed_ms
    next_minute = MINUTE_MS - elapsed_ms
    if cur <= 0 or cost > limit:
        return next_minute
    return next_minute + max(0, MINUTE_MS - (limit - cost) * MINUTE_MS // cur)
