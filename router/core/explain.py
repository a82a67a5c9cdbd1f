"""Why a request went where it went: a JSON-able trace of a decision, and a text table.

The trace re-evaluates every condition of the rules up to the deciding one (so it may run
the tokenizer the decision itself avoided); it is for operators and the CLI, not the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router.core.cost import worst_case_cost
from router.core.engine import CompiledRule, Engine
from router.core.model import Decision, Features, Price, Principal, Snapshot
from router.core.plan import Plan
from router.types import MICROS_PER_USD


def _features(features: Features, exact: bool) -> dict[str, Any]:
    prompt = features.prompt
    tokens: dict[str, Any] = {"lower": prompt.lower, "upper": prompt.upper}
    if exact or prompt.tokenized:
        tokens["exact"] = prompt.exact()
    return {
        "input": sorted(features.input_modalities),
        "output": sorted(features.output_modalities),
        "prompt_tokens": tokens,
        "max_output_tokens": features.max_output_tokens,
        "tools": features.tools,
        "tool_choice": features.tool_choice,
        "json_schema": features.json_schema,
        "json_object": features.json_object,
        "stream": features.stream,
        "image_generation": features.image_generation,
        "realtime_audio": features.realtime_audio,
        "prefer": features.prefer,
        "messages": features.message_count,
    }


def _rule(
    rule: CompiledRule,
    features: Features,
    principal: Principal,
    snapshot: Snapshot,
    pinned: str | None,
) -> dict[str, Any]:
    conditions = [
        {"condition": c.label, "holds": c.test(features, principal, snapshot)}
        for c in rule.conditions
    ]
    entry: dict[str, Any] = {
        "rule": rule.name,
        "matched": all(c["holds"] for c in conditions),
        "conditions": conditions,
    }
    if (
        entry["matched"]
        and pinned is not None
        and rule.decision.rejection is None
        and pinned not in rule.pinned
    ):
        entry["skipped"] = f"does not route to the pinned model '{pinned}'"
    return entry


def _rules(
    engine: Engine,
    features: Features,
    principal: Principal,
    snapshot: Snapshot,
    decision: Decision,
    pinned: str | None,
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    decided = False
    for rule in engine.rules:
        if decided:
            entries.append({"rule": rule.name, "evaluated": False})
            continue
        entries.append(_rule(rule, features, principal, snapshot, pinned))
        decided = rule.name == decision.rule
    return entries


def _candidates(plan: Plan, prices: Mapping[str, Price]) -> list[dict[str, Any]]:
    entries = []
    for name, output in zip(plan.decision.candidates, plan.output_tokens, strict=True):
        entry: dict[str, Any] = {"backend": name, "output_tokens": output}
        price = prices.get(name)
        if price is not None:
            micros = worst_case_cost(price, plan.prompt_tokens, output)
            entry.update(
                worst_case_micros=micros,
                worst_case_usd=micros / MICROS_PER_USD,
                price_version=price.version,
            )
        entries.append(entry)
    return entries


def trace(
    engine: Engine,
    features: Features,
    principal: Principal,
    snapshot: Snapshot,
    plan: Plan,
    *,
    pinned: str | None = None,
    prices: Mapping[str, Price] | None = None,
    exact: bool = True,
) -> dict[str, Any]:
    """Everything that went into `plan`: the rules, the decision, what each candidate would be
    sent and could cost at `prices` (default: the snapshot's, keyed by backend name), and what
    admission would reserve. Plan first, then trace: tracing may tokenize the prompt, which
    would change what the plan reserves."""
    decision = plan.decision
    rejection = decision.rejection
    return {
        "features": _features(features, exact),
        "pinned": pinned,
        "rules": _rules(engine, features, principal, snapshot, decision, pinned),
        "decision": {
            "rule": decision.rule,
            "candidates": list(decision.candidates),
            "max_tokens_cap": decision.max_tokens_cap,
            "reasons": list(decision.reasons),
            "rejection": None
            if rejection is None
            else {"status": rejection.status, "code": rejection.code, "message": rejection.message},
        },
        "candidates": _candidates(plan, snapshot.prices if prices is None else prices),
        "reserve": {
            "prompt_tokens": plan.prompt_tokens,
            "max_output_tokens": plan.max_output_tokens,
        },
        "dropped": dict(decision.dropped),
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render(data: Mapping[str, Any]) -> str:
    """A trace as a plain-text report for a terminal."""
    feats = data["features"]
    tokens = feats["prompt_tokens"]
    exact = f"{tokens['exact']} exact, " if "exact" in tokens else ""
    lines = [
        "Request",
        *_table(
            [
                ["input", ", ".join(feats["input"]) or "-"],
                ["output", ", ".join(feats["output"])],
                ["prompt tokens", f"{exact}bound {tokens['lower']}..{tokens['upper']}"],
                ["max output", str(feats["max_output_tokens"] or "not set")],
                ["tools", str(feats["tools"])],
                [
                    "json",
                    "schema"
                    if feats["json_schema"]
                    else "object"
                    if feats["json_object"]
                    else "no",
                ],
                ["stream", _yes(feats["stream"])],
                ["image generation", _yes(feats["image_generation"])],
                ["real-time audio", _yes(feats["realtime_audio"])],
                ["prefer", feats["prefer"] or "-"],
                ["pinned model", data["pinned"] or "-"],
            ]
        ),
        "",
        "Rules",
    ]
    rows = []
    for rule in data["rules"]:
        if not rule.get("evaluated", True):
            rows.append(["-", rule["rule"], "not evaluated"])
            continue
        conditions = (
            "; ".join(f"{c['condition']}: {_yes(c['holds'])}" for c in rule["conditions"])
            or "no conditions"
        )
        if "skipped" in rule:
            conditions += f" (skipped: {rule['skipped']})"
        rows.append(["match" if rule["matched"] else "no", rule["rule"], conditions])
    lines += _table(rows)
    decision = data["decision"]
    lines += ["", f"Decision: rule {decision['rule']}"]
    if decision["rejection"] is not None:
        rejection = decision["rejection"]
        lines.append(
            f"  rejected {rejection['status']} {rejection['code']}: {rejection['message']}"
        )
    if data["candidates"]:
        rows = [["#", "backend", "output tokens", "worst-case cost"]]
        for position, entry in enumerate(data["candidates"], 1):
            cost = f"${entry['worst_case_usd']:.6f}" if "worst_case_usd" in entry else "no price"
            rows.append([str(position), entry["backend"], str(entry["output_tokens"]), cost])
        lines += _table(rows)
    if data["candidates"]:
        reserve = data["reserve"]
        lines.append(
            f"  reserves {reserve['prompt_tokens']} prompt + "
            f"{reserve['max_output_tokens']} output tokens"
        )
    if decision["max_tokens_cap"] is not None:
        lines.append(f"  max_tokens capped at {decision['max_tokens_cap']}")
    for name, why in data["dropped"].items():
        lines.append(f"  dropped {name}: {why}")
    lines += [f"  - {reason}" for reason in decision["reasons"]]
    return "\n".join(lines) + "\n"
