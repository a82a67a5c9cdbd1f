"""Deployment config: YAML, `${VAR}` / `${VAR:-default}` expanded from the environment,
validated by pydantic, built once at start-up and passed around explicitly.

A bad file is reported as `FILE: key.path: what is wrong` so operators can fix it without
reading a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from router.core.model import Capabilities, Modality
from router.supply.settings import SupplySettings

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The config file is missing, not YAML, or does not validate; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_messages: int = Field(4096, gt=0)
    max_json_depth: int = Field(64, gt=0)
    max_header_bytes: int = Field(64 * 1024, gt=0)
    request_timeout_s: float = Field(600.0, gt=0)
    graceful_timeout_s: float = Field(30.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_prompts: bool = False


class StoreConfig(_Strict):
    url: str = "memory://"
    key_prefix: str = "router"
    fail_mode: Literal["closed", "open"] = "closed"
    timeout_s: float = Field(0.25, gt=0)

    _url_blank = field_validator("url", mode="before")(
        lambda v: "memory://" if v in ("", None) else v
    )


class AuthConfig(_Strict):
    admin_key: SecretStr | None = None
    bootstrap_key: SecretStr | None = None
    bootstrap_team: str = "default"
    failed_auth_per_minute: int = Field(30, gt=0)
    key_pepper: SecretStr | None = None
    """Server-side secret mixed into key hashes (HMAC), so a leaked store alone cannot
    confirm a guessed key. Changing it invalidates every stored key."""

    _blank = field_validator("admin_key", "bootstrap_key", "key_pepper", mode="before")(
        _blank_to_none
    )


class TimeoutsConfig(_Strict):
    connect_s: float = Field(5.0, gt=0)
    first_byte_s: float = Field(60.0, gt=0)
    read_s: float = Field(300.0, gt=0)


class CapabilitiesConfig(_Strict):
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    input_modalities: list[Modality] = [Modality.TEXT]
    output_modalities: list[Modality] = [Modality.TEXT]
    tools: bool = True
    json_schema: bool = True
    image_generation: bool = False
    realtime_audio: bool = False

    def build(self) -> Capabilities:
        return Capabilities(
            context_window=self.context_window,
            max_output_tokens=self.max_output_tokens,
            input_modalities=frozenset(self.input_modalities),
            output_modalities=frozenset(self.output_modalities),
            tools=self.tools,
            json_schema=self.json_schema,
            image_generation=self.image_generation,
            realtime_audio=self.realtime_audio,
        )


class BackendConfig(_Strict):
    provider: Literal["openai", "litellm"] = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str
    price_model: str | None = None
    capabilities: CapabilitiesConfig
    timeouts: TimeoutsConfig = TimeoutsConfig()
    max_connections: int = Field(256, gt=0)
    max_response_bytes: int = Field(64 * 1024 * 1024, gt=0)
    headers: dict[str, str] = {}
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """Where the router puts the output bound: OpenAI's reasoning models take only
    `max_completion_tokens`; most self-hosted servers only honour `max_tokens`."""
    requires_api_key: bool = False
    """A provider that cannot work without a key: with none set, requests only it could
    serve are refused up front with a message that says how to configure it."""
    supply: SupplySettings = SupplySettings()

    _blank = field_validator("api_key", "base_url", mode="before")(_blank_to_none)

    @property
    def price_key(self) -> str:
        """The model name prices are looked up under."""
        return self.price_model or self.model


class RouterConfig(_Strict):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    auth: AuthConfig = AuthConfig()
    backends: dict[str, BackendConfig]
    aliases: list[str] = ["auto"]
    policy: Path = Path("../policies/default.yaml")
    prices: Path = Path("prices.yaml")
    source: Path = Path("router.yaml")

    @field_validator("backends")
    @classmethod
    def _some_backend(cls, value: dict[str, BackendConfig]) -> dict[str, BackendConfig]:
        if not value:
            raise ValueError("at least one backend is required")
        return value

    def capabilities(self) -> dict[str, Capabilities]:
        return {name: backend.capabilities.build() for name, backend in self.backends.items()}

    def model_names(self) -> list[str]:
        """What a client may put in `model`: the router's aliases, then each backend."""
        return [*self.aliases, *self.backends]


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {key: expand_env(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, env) for item in value]
    return value


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{path}: {where}: {problem['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> RouterConfig:
    """Read, expand and validate a config file; relative paths inside resolve against it."""
    source = Path(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: (top level): expected a mapping of settings")
    expanded = expand_env(raw, os.environ if env is None else env)
    try:
        config = RouterConfig.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None
    base = source.resolve().parent
    return config.model_copy(
        update={
            "policy": (base / config.policy).resolve(),
            "prices": (base / config.prices).resolve(),
            "source": source.resolve(),
        }
    )
