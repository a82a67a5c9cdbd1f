"""Validate bodies and stream events against OpenAI's published OpenAPI document.

The document is OpenAPI 3.1, whose schemas are JSON Schema 2020-12 plus annotations
(`discriminator`, `x-*`) that a validator ignores; it is registered whole as one resource so
every `$ref` inside it resolves. A `oneOf` with a `discriminator` picks its branch by `type` in
OpenAPI, while JSON Schema demands exactly one branch match (an input message matches both
`EasyInputMessage` and `InputMessage`), so those are read as `anyOf`. The document lives
outside the repository (`../shared/...`): tests that need it skip, naming the file, without it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

RELATIVE = Path("shared") / "openai-openapi" / "openapi.yaml"
_URI = "urn:openai-openapi"


def spec_path() -> Path | None:
    """The first `shared/openai-openapi/openapi.yaml` beside the repository or an ancestor."""
    for folder in Path(__file__).resolve().parents[2].parents:
        candidate = folder / RELATIVE
        if candidate.is_file():
            return candidate
    return None


def require_spec() -> Path:
    path = spec_path()
    if path is None:
        pytest.skip(f"needs ../{RELATIVE} (OpenAI's OpenAPI document) beside the repository")
    return path


def _discriminated_as_any_of(node: Any) -> None:
    if isinstance(node, dict):
        if "discriminator" in node and "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _discriminated_as_any_of(value)
    elif isinstance(node, list):
        for value in node:
            _discriminated_as_any_of(value)


@functools.cache
def _registry() -> Registry:
    with require_spec().open() as handle:
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    _discriminated_as_any_of(document)
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


@functools.cache
def validator(schema_name: str) -> Draft202012Validator:
    """A validator for one named schema of `components/schemas`."""
    return Draft202012Validator(
        {"$ref": f"{_URI}#/components/schemas/{schema_name}"}, registry=_registry()
    )


def errors(schema_name: str, instance: Any) -> list[str]:
    """Every violation, each as `path: message`, so a failing test says what is wrong."""
    found = validator(schema_name).iter_errors(instance)
    return [f"{'/'.join(map(str, error.absolute_path)) or '.'}: {error.message}" for error in found]


def assert_valid(schema_name: str, instance: Any) -> None:
    problems = errors(schema_name, instance)
    assert not problems, f"not a valid {schema_name}:\n" + "\n".join(problems[:10])


@functools.cache
def _event_schemas() -> dict[str, str]:
    union = _registry().contents(_URI)["components"]["schemas"]["ResponseStreamEvent"]["anyOf"]
    schemas = _registry().contents(_URI)["components"]["schemas"]
    names = {}
    for option in union:
        name = option["$ref"].rsplit("/", 1)[1]
        for kind in schemas[name]["properties"]["type"].get("enum", ()):
            names[kind] = name
    return names


def assert_valid_event(event: dict[str, Any]) -> None:
    """One Responses stream event: against its own schema (readable errors), then the union."""
    name = _event_schemas().get(event.get("type", ""))
    assert name is not None, f"{event.get('type')!r} is not a ResponseStreamEvent type"
    assert_valid(name, event)
    assert_valid("ResponseStreamEvent", event)
