"""Step 5: may it go ahead. A plan the policy refused is refused here; otherwise rate limits
are checked and the plan's worst case is reserved on the key's and the team's budgets, in one
atomic store call, before anything is sent."""

from __future__ import annotations

from collections.abc import Awaitable

from router.accounting import Admission
from router.core.plan import Plan
from router.errors import refusal
from router.runtime import Runtime
from router.store.base import KeyRecord


def admit(runtime: Runtime, request_id: str, key: KeyRecord, plan: Plan) -> Awaitable[Admission]:
    """The admission, or the refusal's error (4xx/503), 429 (limits, budgets) or 503 (store)."""
    rejection = plan.rejection
    if rejection is not None:
        raise refusal(rejection.status, rejection.code, rejection.message)
    backends = runtime.config.backends
    return runtime.accountant.admit(
        request_id,
        key,
        [(name, backends[name].price_key) for name in plan.decision.candidates],
        plan.prompt_tokens,
        plan.max_output_tokens,
    )
