"""The `router` command. Each command group lives in its own module with a `register`
function; this module only assembles them and turns known errors into clean exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from router import __version__
from router.cli import admin, backends, mini, policy, serve
from router.config import ConfigError

_GROUPS = (serve, policy, admin, backends, mini)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="router",
        description="Cost-aware OpenAI-compatible model router.",
    )
    parser.add_argument("--version", action="version", version=f"router {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
