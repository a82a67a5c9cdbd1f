"""Config generators for the proxies under test. Adjust the router's shape here only.

Both proxies get the same two models, `mini` and `full`, pointing at the fake upstream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "sk-fake-upstream"
MINI_MODEL = "mini-model"
FULL_MODEL = "full-model"


def _capabilities(context_window: int, max_output_tokens: int) -> dict[str, Any]:
    return {
        "context_window": context_window,
        "max_output_tokens": max_output_tokens,
        "input_modalities": ["text"],
        "output_modalities": ["text"],
        "tools": True,
        "json_schema": True,
    }


def router_config(
    *,
    upstream_base_url: str,
    port: int,
    redis_url: str,
    key_prefix: str,
    admin_key: str,
    client_key: str,
) -> dict[str, Any]:
    """Our router's config, in the schema of router/config.py (RouterConfig).

    Production-like: Redis store, fail-closed, the repo's default policy and prices. The
    bootstrap key (team "default", no budgets or limits) only serves the readiness probe;
    the load uses a key minted with ROUTER_CLIENT_KEY (see bench/targets.py). Paths are
    absolute because the file is written to a temp dir.
    """

    def backend(upstream_model: str, price_model: str, ctx: int, out: int) -> dict[str, Any]:
        return {
            "provider": "openai",
            "base_url": upstream_base_url,
            "api_key": UPSTREAM_KEY,
            "model": upstream_model,
            "price_model": price_model,
            "capabilities": _capabilities(ctx, out),
        }

    return {
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"url": redis_url, "key_prefix": key_prefix, "fail_mode": "closed"},
        "auth": {"admin_key": admin_key, "bootstrap_key": client_key},
        "aliases": ["auto"],
        "policy": str(REPO / "policies" / "default.yaml"),
        "prices": str(REPO / "config" / "prices.yaml"),
        "backends": {
            "mini": backend(MINI_MODEL, "mini", 131072, 8192),
            "full": backend(FULL_MODEL, "full", 262144, 32768),
        },
    }


# The router is measured with a minted client key, admitted like a production one: two key
# budgets, a team budget, rpm/tpm/concurrency limits. All far above what a run can use, so
# no request is refused (a refusal would show up as errors in the table).
BENCH_TEAM = "bench"
ROUTER_CLIENT_KEY: dict[str, Any] = {
    "team": BENCH_TEAM,
    "name": "bench",
    "budgets": [
        {"period": "day", "limit_usd": "1000000"},
        {"period": "rolling", "window_s": 3600, "limit_usd": "1000000"},
    ],
    "limits": {"rpm": 100_000_000, "tpm": 100_000_000_000, "max_concurrency": 100_000},
}
ROUTER_TEAM_BUDGETS: dict[str, Any] = {"budgets": [{"period": "month", "limit_usd": "1000000"}]}


def litellm_config(*, upstream_base_url: str, master_key: str) -> dict[str, Any]:
    """LiteLLM proxy config: two OpenAI-compatible deployments, no database, a master key."""

    def deployment(name: str, upstream_model: str) -> dict[str, Any]:
        return {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{upstream_model}",
                "api_base": upstream_base_url,
                "api_key": UPSTREAM_KEY,
            },
        }

    return {
        "model_list": [deployment("mini", MINI_MODEL), deployment("full", FULL_MODEL)],
        "general_settings": {"master_key": master_key},
    }


def write_yaml(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
