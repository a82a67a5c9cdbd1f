"""Budget terms as the admin gives them, and the team budgets every key of a team shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from router.accounting import Accountant
from router.errors import InvalidRequest
from router.services.guard import stored
from router.store.base import Budget, BudgetStatus, Period, Scope, Store
from router.types import Micros


@dataclass(frozen=True, slots=True)
class BudgetTerms:
    """A budget before it is bound to a key or a team."""

    period: Period
    limit: Micros
    soft_limit: Micros | None = None
    window_s: int | None = None

    def bind(self, scope: Scope, scope_id: str) -> Budget:
        try:
            return Budget(scope, scope_id, self.period, self.limit, self.soft_limit, self.window_s)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid budget: {exc}.", param="budgets") from exc


class TeamBudgetAdmin:
    """Set and read a team's budgets. A change reaches this replica's admissions at once and
    the other replicas' within the accountant's team-budget TTL."""

    def __init__(self, store: Store, accountant: Accountant) -> None:
        self._store = store
        self._accountant = accountant

    async def replace(self, team: str, terms: Sequence[BudgetTerms]) -> tuple[BudgetStatus, ...]:
        """Make `terms` the team's whole set of budgets; where each now stands."""
        budgets = tuple(t.bind(Scope.TEAM, team) for t in terms)
        await stored(self._store.set_team_budgets(team, budgets))
        self._accountant.forget_team_budgets(team)
        return await self.status(team)

    async def status(self, team: str) -> tuple[BudgetStatus, ...]:
        budgets = await stored(self._store.team_budgets(team))
        return await stored(self._store.budget_status(team, budgets))
