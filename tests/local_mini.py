"""Run the real local Mini (llama.cpp's server over SmolLM2-135M-Instruct, CPU only) for tests, and
put a real router in front of it.

The Mini is started through `router.mini`, the same code `router mini serve` runs, so these
helpers also exercise it. Keep `max_tokens` small: 2 shared cores make ~25 tokens/s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from router.core.cost import actual_cost
from router.core.model import Usage
from router.mini import LocalMini, MiniSettings, resolve_model_path
from router.pricing import load_seed
from tests.router_process import REPO, RouterProcess, free_port, router_config

READY_TIMEOUT_S = 90.0
MINI_CTX = 2048
MAX_TOKENS = 12


@contextmanager
def running_local_mini(workdir: Path, *, ctx: int = MINI_CTX) -> Iterator[LocalMini]:
    """A llama.cpp server on a free loopback port, its output in `workdir`; stopped after."""
    port = free_port()
    settings = MiniSettings(model_path=resolve_model_path(None), port=port, ctx=ctx)
    log_path = workdir / f"mini-{port}.log"
    with (
        log_path.open("ab") as output,
        LocalMini(settings, output=output, log_path=log_path) as mini,
    ):
        yield mini


def local_mini_router_config(mini: LocalMini, full_url: str, **overrides: Any) -> dict[str, Any]:
    """tests.router_process.router_config with `mini` pointing at the real server, declared
    with the capabilities config/local-mini.yaml gives it."""
    config = router_config(mini.base_url, full_url, **overrides)
    backend = config["backends"]["mini"]
    backend.pop("api_key", None)
    backend["model"] = mini.settings.alias
    backend["capabilities"].update(
        context_window=mini.settings.ctx,
        max_output_tokens=mini.settings.ctx // 2,
        tools=False,
        json_schema=False,
    )
    backend["timeouts"] = {"connect_s": 1, "first_byte_s": 30, "read_s": 30}
    return config


def served_entry(router: RouterProcess, request_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The router's `served` log line for one request (streams settle just after they end)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for line in router.logs().splitlines():
            if request_id not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("msg") == "served" and record.get("request_id") == request_id:
                return dict(record)
        if time.monotonic() > deadline:
            raise AssertionError(f"no `served` log line for {request_id}:\n{router.logs()}")
        time.sleep(0.05)


def mini_cost(prompt_tokens: int, completion_tokens: int) -> int:
    """Micro-dollars the router must charge the Mini for this usage, at the seeded price
    router_config uses (config/prices.yaml, model `mini`)."""
    price = load_seed(REPO / "config" / "prices.yaml").models["mini"].price("mini")
    return actual_cost(price, Usage(prompt_tokens, completion_tokens))
