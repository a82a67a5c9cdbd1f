"""Problems found in a policy, located by key path and, when known, line and column."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Loc = tuple[str | int, ...]
Severity = Literal["error", "warning"]


def format_loc(loc: Loc) -> str:
    """('rules', 2, 'when', 'input') -> 'rules[2].when.input'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Severity
    loc: Loc
    message: str
    line: int | None = None
    """1-based, like editors count."""
    col: int | None = None

    @property
    def path(self) -> str:
        return format_loc(self.loc)

    def render(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}:{self.col or 1}"
        return f"{where}: {self.severity}: {self.path}: {self.message}"


class PolicyError(Exception):
    """A policy that cannot be used; `problems` says every reason, errors first."""

    def __init__(self, problems: Sequence[Problem], source: str = "<policy>") -> None:
        self.problems = sorted(problems, key=lambda p: p.severity != "error")
        self.source = source
        super().__init__("\n".join(p.render(source) for p in self.problems))


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [problem for problem in problems if problem.severity == "error"]
