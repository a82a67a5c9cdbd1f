"""`router serve`: load and validate the config, then run the app under uvicorn."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = Path("config/router.yaml")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="run the router's HTTP server")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="deployment config YAML (default: %(default)s)")
    parser.add_argument("--host", help="listen address (overrides server.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides server.port)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from router.config import load_config
    from router.logs import configure_logging
    from router.server.app import build_asgi

    config = load_config(args.config)
    configure_logging(config.server.log_level)
    uvicorn.run(
        build_asgi(config),
        host=args.host or config.server.host,
        port=args.port if args.port is not None else config.server.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(config.server.graceful_timeout_s),
        h11_max_incomplete_event_size=64 * 1024,
    )
    return 0
