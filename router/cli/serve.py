"""`router serve`: load and validate the config, then run the app under uvicorn."""

from __future__ import annotations

import argparse
import math
import signal
from pathlib import Path
from types import FrameType

import uvicorn

DEFAULT_CONFIG = Path("config/router.yaml")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="run the router's HTTP server")
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="deployment config YAML (default: %(default)s)",
    )
    parser.add_argument("--host", help="listen address (overrides server.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides server.port)")
    parser.set_defaults(handler=run)


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM after its graceful shutdown, so a router that
    drained and settled everything would still die by signal 15. A drain that finished is a
    clean exit: report it as status 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            self._captured_signals.pop()


def run(args: argparse.Namespace) -> int:
    from router.config import load_config
    from router.logs import configure_logging
    from router.policy_runtime import PolicyHolder
    from router.server.app import build_asgi
    from router.server.http_protocol import BoundedHeadProtocol

    config = load_config(args.config)
    PolicyHolder.load(config.policy, config.capabilities())
    configure_logging(config.server.log_level)
    server = _Server(
        uvicorn.Config(
            build_asgi(config),
            host=args.host or config.server.host,
            port=args.port if args.port is not None else config.server.port,
            loop="uvloop",
            http=BoundedHeadProtocol,
            h11_max_incomplete_event_size=config.server.max_header_bytes,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=math.ceil(config.server.graceful_timeout_s),
        )
    )
    server.run()
    return 0 if server.started else 1
