"""Static checks of docker-compose.yml, the Dockerfile and .dockerignore.

There is no Docker daemon in CI, so these catch what would otherwise only show up at
`docker compose up` on a customer's GPU box: schema errors, a router that starts before
Redis is ready, a Redis that forgets budgets on restart, a missing GPU reservation.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema

from tests.shared_files import shared_file

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SHARED_SCHEMA = "schemas/compose-spec.json"

ROUTER_ENV = {
    "ROUTER_API_KEY",
    "ROUTER_ADMIN_KEY",
    "FULL_API_KEY",
    "FULL_BASE_URL",
    "MINI_BASE_URL",
    "REDIS_URL",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs = compose.get("services")
    assert isinstance(svcs, dict)
    return svcs


def _env(service: dict[str, Any]) -> dict[str, str | None]:
    """Normalise both `environment:` forms (mapping or list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): None if v is None else str(v) for k, v in env.items()}
    out: dict[str, str | None] = {}
    for item in env:
        key, sep, value = str(item).partition("=")
        out[key] = value if sep else None
    return out


def _published_ports(service: dict[str, Any]) -> set[tuple[str, str]]:
    """(published, target) pairs from short ("[ip:]host:container[/proto]") or long syntax."""
    pairs: set[tuple[str, str]] = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            pairs.add((str(port.get("published", "")), str(port.get("target", ""))))
            continue
        parts = str(port).split("/")[0].rsplit(":", 2)
        if len(parts) == 1:
            pairs.add(("", parts[0]))
        else:
            pairs.add((parts[-2], parts[-1]))
    return pairs


def _command_words(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    assert test, "healthcheck.test missing"
    return test if isinstance(test, str) else " ".join(str(t) for t in test)


def _schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """Every violation, path first, under the draft the schema declares (older copies of
    the spec name draft-07 by a `$schema` URI jsonschema does not recognise: draft-07)."""
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator.check_schema(schema)
    errors = validator(schema).iter_errors(document)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(errors, key=lambda e: list(e.absolute_path))
    ]


@pytest.fixture(scope="module")
def compose_spec() -> dict[str, Any]:
    """The Compose Specification schema as check-jsonschema vendors it (its
    `--builtin-schema vendor.compose-spec`), so a plain clone validates too."""
    schema = get_builtin_schema("vendor.compose-spec")
    assert "services" in schema["properties"]
    return schema


def test_compose_validates_against_compose_spec(
    compose: dict[str, Any], compose_spec: dict[str, Any]
) -> None:
    errors = _schema_errors(compose_spec, compose)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("breakage", "where"),
    [
        (lambda c: c.__setitem__("servics", {}), "<root>"),
        (lambda c: c["services"]["redis"].__setitem__("ports", "6379:6379"), "services/redis"),
        (lambda c: c["services"]["router"].__setitem__("depends_on", 5), "services/router"),
    ],
    ids=["unknown-top-level-key", "ports-not-a-list", "depends-on-not-a-list-or-map"],
)
def test_the_vendored_schema_catches_a_broken_compose_file(
    compose: dict[str, Any], compose_spec: dict[str, Any], breakage: Any, where: str
) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    errors = _schema_errors(compose_spec, broken)
    assert any(error.startswith(where) for error in errors), errors


def test_compose_validates_against_the_pinned_shared_schema(compose: dict[str, Any]) -> None:
    """The same check against the schema the team pinned beside the repository."""
    schema = json.loads(shared_file(SHARED_SCHEMA).read_text())
    errors = _schema_errors(schema, compose)
    assert not errors, "\n".join(errors)


def test_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"router", "redis", "mini", "prometheus"} <= services.keys()


def test_router_build_ports_and_health(services: dict[str, dict[str, Any]]) -> None:
    router = services["router"]
    build = router.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    assert context in {".", "./"}, "router must be built from the repo root"
    if isinstance(build, dict) and "dockerfile" in build:
        assert build["dockerfile"] == "Dockerfile"
    assert ("8080", "8080") in _published_ports(router)
    assert "/healthz" in _healthcheck_text(router)


def test_router_waits_for_healthy_redis(services: dict[str, dict[str, Any]]) -> None:
    deps = services["router"].get("depends_on")
    assert isinstance(deps, dict), "use the long depends_on form so conditions apply"
    assert deps["redis"]["condition"] == "service_healthy"
    assert deps["mini"]["condition"] == "service_started"


def test_router_environment(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["router"])
    missing = ROUTER_ENV - env.keys()
    assert not missing, f"router environment lacks {sorted(missing)}"
    assert env["MINI_BASE_URL"] == "http://mini:8000/v1"
    assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_redis_persists_and_has_healthcheck(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    assert str(redis["image"]).split(":")[0] in {"redis", "docker.io/library/redis"}
    assert str(redis["image"]).partition(":")[2].startswith("7")
    words = _command_words(redis)
    assert "--appendonly" in words and words[words.index("--appendonly") + 1] == "yes"
    data_mounts = [
        v.split(":")[0] if isinstance(v, str) else v.get("source")
        for v in redis.get("volumes") or []
        if (v.split(":")[1] if isinstance(v, str) else v.get("target")) == "/data"
    ]
    assert data_mounts, "redis /data must be on a volume"
    assert data_mounts[0] in (compose.get("volumes") or {}), "/data should be a named volume"
    assert re.search(r"redis-cli\s+ping", _healthcheck_text(redis))


def test_mini_is_vllm_with_gpu(services: dict[str, dict[str, Any]]) -> None:
    mini = services["mini"]
    assert str(mini["image"]).startswith("vllm/vllm-openai")
    devices = mini["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    words = _command_words(mini)
    model = words[words.index("--model") + 1]
    assert model.startswith("${MINI_MODEL:-") and "Qwen/Qwen2.5-0.5B-Instruct" in model
    served = words[words.index("--served-model-name") + 1]
    assert served.startswith("${"), "served-model-name should come from the environment"
    # The router asks the Mini backend for MINI_MODEL, so it must be vLLM's served name.
    assert _env(services["router"]).get("MINI_MODEL") == served
    assert "/health" in _healthcheck_text(mini)


def test_prometheus_scrapes_router(services: dict[str, dict[str, Any]]) -> None:
    prom = services["prometheus"]
    assert str(prom["image"]).startswith("prom/prometheus")
    assert ("9090", "9090") in _published_ports(prom)
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in prom["volumes"]]
    config_mount = next(m for m in mounts if m.split(":")[1] == "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load((ROOT / config_mount.split(":")[0]).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    router_job = jobs["router"]
    assert router_job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in router_job["static_configs"] for t in sc["targets"]]
    assert "router:8080" in targets


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    out = []
    for line in logical:
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def _exec_words(args: str) -> list[str]:
    """Exec form (JSON array) or shell form of CMD/ENTRYPOINT."""
    if args.startswith("["):
        words = json.loads(args)
        assert isinstance(words, list)
        return [str(w) for w in words]
    return shlex.split(args)


def test_dockerfile_runs_router_serve() -> None:
    assert DOCKERFILE.is_file()
    instructions = _dockerfile_instructions()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    assert any(i == "RUN" and re.search(r"pip install\s+\.(\s|$)", a) for i, a in instructions)
    entrypoint = [a for i, a in instructions if i == "ENTRYPOINT"]
    cmd = [a for i, a in instructions if i == "CMD"]
    words = (_exec_words(entrypoint[-1]) if entrypoint else []) + (
        _exec_words(cmd[-1]) if cmd else []
    )
    assert words[:2] == ["router", "serve"], words
    options = dict(zip(words[2::2], words[3::2], strict=False))
    assert options.get("--config") == "/app/config/router.yaml"
    assert options.get("--host") == "0.0.0.0"
    assert options.get("--port") == "8080"
    assert (ROOT / "config" / "router.yaml").is_file()


def test_dockerignore_keeps_secrets_and_bulk_out() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env"} <= patterns
