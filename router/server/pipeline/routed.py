"""The record of one request on its way through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from router.accounting import Admission
from router.core.model import Decision, Features
from router.core.plan import Plan
from router.dispatch import Hops
from router.store.base import KeyRecord
from router.types import JSONObject


@dataclass(slots=True)
class Routed:
    """Who asked, what for, where it may go, on what terms, and what was reserved."""

    request_id: str
    key: KeyRecord
    body: JSONObject
    features: Features
    plan: Plan
    admission: Admission
    started: float
    """time.monotonic() when the request arrived."""
    hops: Hops
    dispatched: float = 0.0

    @property
    def decision(self) -> Decision:
        return self.plan.decision
