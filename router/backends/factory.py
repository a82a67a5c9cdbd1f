"""Build every configured backend once at start-up, by provider, through one explicit map."""

from __future__ import annotations

from collections.abc import Callable

from router.backends.base import Backend
from router.backends.litellm_provider import LitellmBackend
from router.backends.openai_compat import OpenAICompatibleBackend
from router.config import BackendConfig

_PROVIDERS: dict[str, Callable[[str, BackendConfig], Backend]] = {
    "openai": OpenAICompatibleBackend,
    "litellm": LitellmBackend,
}


def build_backends(configs: dict[str, BackendConfig]) -> dict[str, Backend]:
    return {name: _PROVIDERS[config.provider](name, config) for name, config in configs.items()}
