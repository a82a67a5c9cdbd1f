"""`router policy check` and `router policy explain`: validate a policy, or show how it would
route one request. Both work offline: the config supplies backend capabilities, nothing is
called over the network. Explain decides and plans as the router does, except that it does
not know which API keys the running router was given, so it never refuses a backend for
lack of one (POST /v1/route/explain on the router does).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.config import ConfigError, load_config
from router.core.check import check_policy_text
from router.core.explain import render, trace
from router.core.inspect import inspect
from router.core.model import (
    BudgetLeft,
    Capabilities,
    Price,
    Principal,
    Snapshot,
    SupplyState,
)
from router.core.plan import Planner
from router.core.problems import PolicyError
from router.core.tokens import TokenCounter
from router.errors import InvalidRequest
from router.policy_runtime import read_engine
from router.types import MICROS_PER_USD

DEFAULT_CONFIG = Path("config/router.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Budget(_Strict):
    remaining_usd: float
    limit_usd: float
    soft_limit_usd: float | None = None

    def build(self) -> BudgetLeft:
        soft = None if self.soft_limit_usd is None else round(self.soft_limit_usd * MICROS_PER_USD)
        return BudgetLeft(
            round(self.remaining_usd * MICROS_PER_USD), round(self.limit_usd * MICROS_PER_USD), soft
        )


class _Price(_Strict):
    input_per_mtok_usd: float
    output_per_mtok_usd: float

    def build(self, model: str) -> Price:
        return Price(
            model,
            0,
            0.0,
            round(self.input_per_mtok_usd * MICROS_PER_USD),
            round(self.output_per_mtok_usd * MICROS_PER_USD),
        )


class _Snapshot(_Strict):
    """What `--snapshot FILE.json` may say about state; everything else is healthy."""

    supply: dict[str, SupplyState] = {}
    key_budget: _Budget | None = None
    team_budget: _Budget | None = None
    prices: dict[str, _Price] = Field(default_factory=dict)

    def build(self) -> Snapshot:
        return Snapshot(
            supply=self.supply,
            prices={name: price.build(name) for name, price in self.prices.items()},
            key_budget=None if self.key_budget is None else self.key_budget.build(),
            team_budget=None if self.team_budget is None else self.team_budget.build(),
        )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`router policy check|explain`, and the short forms `router check` / `router explain`."""
    group = commands.add_parser("policy", help="check a routing policy or explain a decision")
    actions = group.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    for container in (actions, commands):
        _add_check(container)
        _add_explain(container)


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check", help="validate a policy file against the backends")
    check.add_argument("policy", type=Path, metavar="POLICY.yaml")
    check.add_argument(
        "--config",
        type=Path,
        help=f"config whose backends the policy routes to (default: {DEFAULT_CONFIG} if it exists)",
    )
    check.set_defaults(handler=run_check)


def _add_explain(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = commands.add_parser("explain", help="show how the policy routes one request")
    explain.add_argument(
        "--request",
        type=Path,
        required=True,
        metavar="FILE.json",
        help="a chat completion request body ('-' reads stdin)",
    )
    explain.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="deployment config YAML (default: %(default)s)",
    )
    explain.add_argument("--policy", type=Path, help="policy file (default: the config's)")
    explain.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME: VALUE",
        help="a request header, e.g. 'x-router-prefer: cost' (repeatable)",
    )
    explain.add_argument("--key-id", default="cli", help="API key id of the caller")
    explain.add_argument("--team", default="default", help="team of the caller")
    explain.add_argument("--tag", action="append", default=[], help="a key tag (repeatable)")
    explain.add_argument(
        "--snapshot",
        type=Path,
        metavar="FILE.json",
        help="state to decide against: supply, key_budget, team_budget "
        "(USD), prices (USD per million tokens); default: all healthy",
    )
    explain.add_argument("--json", action="store_true", help="print the trace as JSON")
    explain.set_defaults(handler=run_explain)


def _backends(config_path: Path | None) -> Mapping[str, Capabilities] | None:
    if config_path is None:
        if not DEFAULT_CONFIG.exists():
            print(
                "note: no --config, so backend names and capabilities are not checked",
                file=sys.stderr,
            )
            return None
        config_path = DEFAULT_CONFIG
    return load_config(config_path).capabilities()


def run_check(args: argparse.Namespace) -> int:
    path: Path = args.policy
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"{path}: cannot read: {error}", file=sys.stderr)
        return 1
    problems = check_policy_text(text, _backends(args.config))
    for problem in problems:
        print(problem.render(str(path)))
    if not problems:
        print(f"{path}: ok")
    return 1 if problems else 0


def _read_json(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    return json.loads(text)


def _headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, _, content = value.partition(":")
        headers[name.strip().lower()] = content.strip()
    return headers


def run_explain(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    backends = config.capabilities()
    policy_path = args.policy or config.policy
    try:
        engine, _ = read_engine(policy_path, backends)
        body = _read_json(args.request)
        snapshot = (
            _Snapshot.model_validate(_read_json(args.snapshot)).build()
            if args.snapshot
            else Snapshot()
        )
    except PolicyError as error:
        print(error, file=sys.stderr)
        return 1
    except (OSError, ValueError, ValidationError) as error:
        raise ConfigError(f"cannot read the request or snapshot: {error}") from None
    if not isinstance(body, dict):
        print(f"{args.request}: expected a JSON object (a chat completion body)", file=sys.stderr)
        return 1
    model = body.get("model")
    pinned = model if isinstance(model, str) and model in backends else None
    principal = Principal(key_id=args.key_id, team=args.team, tags=frozenset(args.tag))
    try:
        features = inspect(body, _headers(args.header), TokenCounter())
    except InvalidRequest as error:
        print(f"{args.request}: {error.message}", file=sys.stderr)
        return 1
    plan = Planner(backends).route(engine, features, principal, snapshot, pinned)
    data = trace(engine, features, principal, snapshot, plan, pinned=pinned)
    print(json.dumps(data, indent=2) if args.json else render(data), end="\n" if args.json else "")
    return 0
