"""Policy text -> Policy, or problems that point at a line and column.

YAML is composed into its node tree once: the tree gives every key path a position (so
pydantic's error locations become `file:line:col`) and is then constructed into plain data.
On top of the schema, `check_policy` looks for rules that can never match, rules every match
of which would be rejected because no backend of their route can serve it, and backend names
the config does not define.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import yaml
from pydantic import ValidationError

from router.core.model import Capabilities, Modality
from router.core.policy import AmountRange, ModalityCondition, Policy, Rule, TagCondition, When
from router.core.problems import Loc, PolicyError, Problem, Severity


@dataclass
class Positions:
    """1-based (line, column) of each key path's value, and of the key itself."""

    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def find(self, loc: Loc, *, key: bool = False) -> tuple[int, int] | None:
        """The deepest known position on `loc`, skipping parts YAML does not have (pydantic
        adds union member names to its locations)."""
        found = self.values.get((), None)
        path: Loc = ()
        for part in loc:
            if (*path, part) in self.values:
                path = (*path, part)
                found = self.values[path]
        if key and path == loc and path in self.keys:
            return self.keys[path]
        return found


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, loc: Loc, positions: Positions, problems: list[Problem]) -> None:
    positions.values[loc] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*loc, key)
            if child in positions.keys:
                line, col = _mark(key_node)
                problems.append(Problem("error", child, f"duplicate key {key!r}", line, col))
            positions.keys[child] = _mark(key_node)
            _walk(value_node, child, positions, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), positions, problems)


def parse_policy(text: str) -> tuple[Policy | None, Positions, list[Problem]]:
    """Parse and validate; the policy is None when there are errors."""
    positions = Positions()
    problems: list[Problem] = []
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, positions, [Problem("error", (), "the policy file is empty", 1, 1)]
        _walk(node, (), positions, problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(str(m) for m in (error.context, error.problem) if m)
        return None, positions, [Problem("error", (), f"invalid YAML: {message}", line, col)]
    except yaml.YAMLError as error:
        return None, positions, [Problem("error", (), f"invalid YAML: {error}")]
    finally:
        loader.dispose()
    if problems:
        return None, positions, problems
    try:
        return Policy.model_validate(data), positions, []
    except ValidationError as error:
        for item in error.errors(include_url=False):
            loc = tuple(item["loc"])
            line_col = positions.find(loc, key=item["type"] == "extra_forbidden")
            message = (
                "unknown field"
                if item["type"] == "extra_forbidden"
                else item["msg"].removeprefix("Value error, ")
            )
            problems.append(Problem("error", loc, message, *(line_col or (None, None))))
        return None, positions, problems


def _empty_modalities(cond: ModalityCondition | TagCondition) -> str | None:
    some = None if cond.any is None else set(cond.any)
    every = set(cond.all or ())
    banned = set(cond.none or ())
    if some is not None and not some:
        return "'any' is empty"
    if every & banned:
        return f"{', '.join(sorted(every & banned))} is both required and excluded"
    if some is not None and some <= banned:
        return "every modality of 'any' is excluded by 'none'"
    return None


def _empty_amounts(when: When) -> Iterator[tuple[str, AmountRange]]:
    if when.budget is not None:
        for key in ("remaining_usd", "remaining_micros", "fraction"):
            amount = getattr(when.budget, key)
            if amount is not None:
                yield f"budget.{key}", amount
    for supply in when.supply or ():
        for key in ("load", "quota_left"):
            amount = getattr(supply, key)
            if amount is not None:
                yield f"supply.{key}", amount


def _never(when: When, backends: Mapping[str, Capabilities], cap: int | None) -> str | None:
    """Why these conditions (taken together) can never all hold, if they obviously cannot."""
    for key in ("input", "output", "tags"):
        cond = getattr(when, key)
        why = None if cond is None else _empty_modalities(cond)
        if why is not None:
            return f"{key}: {why}"
    for key in ("prompt_tokens", "max_output_tokens"):
        span = getattr(when, key)
        if span is not None:
            low, high = span.span()
            if low is not None and high is not None and low > high:
                return f"{key}: no number is in the range"
    for name, amount in _empty_amounts(when):
        if amount.empty():
            return f"{name}: no number is in the range"
    for key in ("prefer", "key_id", "team", "any_of"):
        if getattr(when, key) == []:
            return f"{key} is an empty list"
    for name in when.can_serve or ():
        caps = backends.get(name)
        gap = None if caps is None else _gap(when, caps, cap)
        if gap is not None:
            return f"it requires {gap}, so can_serve {name} never holds"
    if when.any_of and all(_never(nested, backends, cap) for nested in when.any_of):
        return "no branch of any_of can match"
    if when.not_ is not None and when.not_.is_empty():
        return "'not' of no conditions never holds"
    return None


def _gap(when: When, caps: Capabilities, cap: int | None) -> str | None:
    """What a request matching `when` needs that `caps` lacks; only top-level conditions
    count, so this never reports a gap a matching request might not have."""
    for key, offered in (("input", caps.input_modalities), ("output", caps.output_modalities)):
        cond: ModalityCondition | None = getattr(when, key)
        if cond is None:
            continue
        missing: set[Modality] = set(cond.all or ()) - offered
        if cond.any is not None and cond.any and not set(cond.any) & offered:
            missing |= set(cond.any)
        if missing:
            return f"{', '.join(sorted(missing))} {key}"
    for key, offered_flag in (
        ("image_generation", caps.image_generation),
        ("realtime_audio", caps.realtime_audio),
        ("tools", caps.tools),
        ("json_schema", caps.json_schema),
    ):
        if getattr(when, key) is True and not offered_flag:
            return key.replace("_", " ")
    if when.prompt_tokens is not None:
        low = when.prompt_tokens.span()[0]
        if low is not None and low >= caps.context_window:
            return f"a prompt of at least {low} tokens (context window {caps.context_window})"
    if when.max_output_tokens is not None:
        low = when.max_output_tokens.span()[0]
        out = low if cap is None or low is None else min(low, cap)
        if out is not None and out > caps.max_output_tokens:
            return f"at least {out} output tokens (max output {caps.max_output_tokens})"
    return None


def _decides_first(earlier: Rule, rule: Rule, backends: Mapping[str, Capabilities]) -> bool:
    """Whether `earlier`, when it matches, also decides every request `rule` could: a pinned
    request passes over a route rule that does not list the pinned backend."""
    if earlier.route is None:
        return True
    reachable = rule.route if rule.route is not None else list(backends) or [""]
    return set(reachable) <= set(earlier.route)


def _rule_problems(
    index: int, rule: Rule, earlier: list[Rule], backends: Mapping[str, Capabilities]
) -> Iterator[tuple[Severity, Loc, str]]:
    loc: Loc = ("rules", index)
    shadows = [r for r in earlier if _decides_first(r, rule, backends)]
    catch_all = next((r for r in shadows if r.when.is_empty()), None)
    if catch_all is not None:
        yield (
            "warning",
            (*loc, "name"),
            f"rule '{rule.name}' is never reached: rule '{catch_all.name}' before it matches "
            "every request",
        )
        return
    same = next((r for r in shadows if r.when == rule.when), None)
    if same is not None:
        yield (
            "warning",
            (*loc, "when"),
            f"rule '{rule.name}' is never reached: rule '{same.name}' has the same conditions",
        )
    why = _never(rule.when, backends, rule.cap_max_tokens)
    if why is not None:
        yield "warning", (*loc, "when"), f"rule '{rule.name}' can never match: {why}"
    if rule.route and all(name in backends for name in rule.route):
        gaps = {name: _gap(rule.when, backends[name], rule.cap_max_tokens) for name in rule.route}
        if all(gaps.values()):
            listing = "; ".join(f"{name} lacks {gap}" for name, gap in gaps.items())
            yield (
                "error",
                (*loc, "route"),
                f"every request rule '{rule.name}' matches would be rejected: {listing}",
            )
    if (
        rule.cap_max_tokens
        and rule.route
        and all(
            name in backends and rule.cap_max_tokens >= backends[name].max_output_tokens
            for name in rule.route
        )
    ):
        yield (
            "warning",
            (*loc, "cap_max_tokens"),
            "the cap is at or above every routed backend's max output, so it changes nothing",
        )


def check_policy(
    policy: Policy, backends: Mapping[str, Capabilities] | None, positions: Positions | None = None
) -> list[Problem]:
    """Problems of a valid policy; without `backends`, backend names are not checked."""
    found: list[tuple[Severity, Loc, str]] = []
    if backends is not None:
        known = ", ".join(backends) or "none"
        found += [
            ("error", loc, f"unknown backend {name!r}; the config defines: {known}")
            for loc, name in policy.backend_references()
            if name not in backends
        ]
    for index, rule in enumerate(policy.rules):
        found += _rule_problems(index, rule, policy.rules[:index], backends or {})
    if not policy.rules[-1].when.is_empty():
        found.append(
            (
                "warning",
                ("rules", len(policy.rules) - 1, "when"),
                "the last rule has conditions: requests no rule matches are rejected "
                "with 503; end with a rule without 'when'",
            )
        )
    return [
        Problem(severity, loc, message, *((positions and positions.find(loc)) or (None, None)))
        for severity, loc, message in found
    ]


def check_policy_text(
    text: str, backends: Mapping[str, Capabilities] | None = None
) -> list[Problem]:
    """Every problem of a policy file's text: YAML, schema, then meaning."""
    policy, positions, problems = parse_policy(text)
    if policy is not None:
        problems = check_policy(policy, backends, positions)
    return sorted(problems, key=lambda p: (p.line or 0, p.col or 0))


def load_policy_text(
    text: str, backends: Mapping[str, Capabilities], source: str = "<policy>"
) -> tuple[Policy, list[Problem]]:
    """A policy that has no errors, and its warnings; raise PolicyError otherwise."""
    policy, positions, problems = parse_policy(text)
    if policy is not None:
        problems = check_policy(policy, backends, positions)
    if policy is None or any(p.severity == "error" for p in problems):
        raise PolicyError(problems, source)
    return policy, problems
