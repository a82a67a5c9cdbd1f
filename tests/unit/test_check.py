"""Policy checking: errors point at a line and column; impossible rules are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import load_config
from router.core.check import check_policy_text, load_policy_text
from router.core.problems import PolicyError, Problem
from tests.unit.core_support import BACKENDS

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
CONFIG = ROOT / "config" / "router.yaml"


def _problems(text: str) -> list[tuple[str, int | None, int | None, str]]:
    return [(p.severity, p.line, p.col, p.message) for p in check_policy_text(text, BACKENDS)]


def _one(text: str, severity: str | None = None) -> Problem:
    found = [
        p for p in check_policy_text(text, BACKENDS) if severity is None or p.severity == severity
    ]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("name", ["default", "cost-first", "quality-first", "budget-guard"])
def test_shipped_policies_are_clean(name: str) -> None:
    backends = load_config(CONFIG).capabilities()
    assert check_policy_text((POLICIES / f"{name}.yaml").read_text(), backends) == []


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("rules:\n  - name: a\n    route: [mini]\n    rout: [full]\n", 4, 5, "unknown field"),
        (
            "rules:\n  - name: a\n    when:\n      inputs: [image]\n    route: [mini]\n",
            4,
            7,
            "unknown field",
        ),
        (
            "rules:\n  - name: a\n    when: {input: {any: [video]}}\n    route: [mini]\n",
            3,
            26,
            "Input should be 'text', 'image', 'audio' or 'file'",
        ),
        (
            "rules:\n  - name: a\n    route: [mini]\n"
            "  - name: b\n    reject: {status: 404, message: x}\n",
            5,
            22,
            "Input should be 400, 403, 413, 429 or 503",
        ),
        ("rules:\n  - name: a\n", 2, 5, "give exactly one of 'route' or 'reject'"),
        (
            "rules:\n  - name: a\n    when: {prompt_tokens: {}}\n    route: [mini]\n",
            3,
            27,
            "give at least one of gt, gte, lt, lte, between",
        ),
        (
            "rules:\n  - name: a\n    route: [mini]\n  - name: a\n    route: [full]\n",
            2,
            3,
            "rule name 'a' is used twice",
        ),
        ("rules:\n  - name: a\n    route: [mini, mini]\n", 2, 5, "'route' names a backend twice"),
        (
            "rules:\n  - name: a\n    route: [mini, gpt]\n",
            3,
            19,
            "unknown backend 'gpt'; the config defines: mini, full, plain",
        ),
        (
            "rules:\n  - name: a\n    when: {can_serve: [gpt]}\n    route: [mini]\n",
            3,
            24,
            "unknown backend 'gpt'; the config defines: mini, full, plain",
        ),
        ("rules:\n  - name: a\n    name: b\n    route: [mini]\n", 3, 5, "duplicate key 'name'"),
        ("rules:\n  - name: a\n    route: [mini\n", 4, 1, "invalid YAML"),
        ("rules:\n\t- name: a\n", 2, 1, "invalid YAML"),
        ("", 1, 1, "the policy file is empty"),
        ("- a\n- b\n", 1, 1, "Input should be a valid dictionary"),
    ],
)
def test_errors_carry_line_and_column(text: str, line: int, col: int, message: str) -> None:
    problem = _one(text, "error")
    assert (problem.line, problem.col) == (line, col)
    assert message in problem.message


def test_every_schema_error_is_reported_at_once() -> None:
    text = (
        "rules:\n  - name: a\n    when: {stream: maybe, tool: true}\n    route: [mini]\n"
        "  - name: b c\n    route: [full]\n"
    )
    assert [(line, col) for _, line, col, _ in _problems(text)] == [(3, 20), (3, 27), (5, 11)]


IMPOSSIBLE = [
    (
        "{input: {any: [image]}}",
        "route: [mini]",
        "error",
        "every request rule 'a' matches would be rejected: mini lacks image input",
    ),
    (
        "{input: {all: [image]}}",
        "route: [mini, plain]",
        "error",
        "mini lacks image input; plain lacks image input",
    ),
    ("{tools: true}", "route: [plain]", "error", "plain lacks tools"),
    ("{image_generation: true}", "route: [mini]", "error", "mini lacks image generation"),
    (
        "{prompt_tokens: {gt: 5000}}",
        "route: [mini, full]",
        "error",
        "mini lacks a prompt of at least 5001 tokens (context window 1000)",
    ),
    (
        "{max_output_tokens: {gte: 300}}",
        "route: [mini]",
        "error",
        "mini lacks at least 300 output tokens (max output 200)",
    ),
    (
        "{prompt_tokens: {gt: 10, lt: 5}}",
        "route: [full]",
        "warning",
        "rule 'a' can never match: prompt_tokens: no number is in the range",
    ),
    (
        "{input: {all: [image], none: [image]}}",
        "route: [full]",
        "warning",
        "input: image is both required and excluded",
    ),
    (
        "{input: {any: [image], none: [image, audio]}}",
        "route: [full]",
        "warning",
        "every modality of 'any' is excluded by 'none'",
    ),
    (
        "{budget: {fraction: {gt: 0.5, lt: 0.5}}}",
        "route: [full]",
        "warning",
        "budget.fraction: no number is in the range",
    ),
    (
        "{can_serve: mini, input: [image]}",
        "route: [full]",
        "warning",
        "it requires image input, so can_serve mini never holds",
    ),
    (
        "{any_of: [{prompt_tokens: {between: [9, 1]}}]}",
        "route: [full]",
        "warning",
        "no branch of any_of can match",
    ),
    ("{not: {}}", "route: [full]", "warning", "'not' of no conditions never holds"),
    (
        "{stream: true}",
        "route: [mini]\n    cap_max_tokens: 900",
        "warning",
        "the cap is at or above every routed backend's max output",
    ),
]


@pytest.mark.parametrize(("when", "action", "severity", "message"), IMPOSSIBLE)
def test_impossible_rules(when: str, action: str, severity: str, message: str) -> None:
    problem = _one(
        f"rules:\n  - name: a\n    when: {when}\n    {action}\n  - name: rest\n    route: [full]\n"
    )
    assert problem.severity == severity
    assert message in problem.message
    assert problem.line in (3, 4, 5)


def test_unreachable_rules() -> None:
    text = (
        "rules:\n  - name: a\n    when: {stream: true}\n    route: [full, mini]\n"
        "  - name: b\n    when: {stream: true}\n    route: [mini]\n"
        "  - name: all\n    route: [full, mini, plain]\n  - name: late\n    route: [mini]\n"
    )
    found = _problems(text)
    assert found == [
        ("warning", 6, 11, "rule 'b' is never reached: rule 'a' has the same conditions"),
        (
            "warning",
            10,
            11,
            "rule 'late' is never reached: rule 'all' before it matches every request",
        ),
    ]


def test_rules_pinned_requests_reach_are_not_unreachable() -> None:
    text = (
        "rules:\n  - name: a\n    when: {stream: true}\n    route: [full]\n"
        "  - name: b\n    when: {stream: true}\n    route: [mini]\n"
        "  - name: all\n    route: [full]\n  - name: late\n    route: [mini]\n"
        "  - name: guard\n    reject: {status: 429, message: Nope}\n"
    )
    assert _problems(text) == []


def test_missing_catch_all_is_a_warning() -> None:
    problem = _one("rules:\n  - name: a\n    when: {stream: true}\n    route: [full]\n")
    assert problem.severity == "warning"
    assert "the last rule has conditions" in problem.message


def test_without_backends_names_are_not_checked() -> None:
    assert check_policy_text("rules:\n  - name: a\n    route: [anything]\n") == []


def test_load_raises_on_errors_and_returns_warnings() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text("rules:\n  - name: a\n    route: [gpt]\n", BACKENDS, "p.yaml")
    assert str(caught.value).startswith("p.yaml:3:13: error: rules[0].route[0]: unknown backend")
    _, warnings = load_policy_text(
        "rules:\n  - name: a\n    when: {stream: true}\n    route: [full]\n", BACKENDS
    )
    assert [w.severity for w in warnings] == ["warning"]


def test_render_format() -> None:
    problem = Problem("error", ("rules", 2, "when", "input"), "unknown field", 7, 9)
    assert problem.render("p.yaml") == "p.yaml:7:9: error: rules[2].when.input: unknown field"
