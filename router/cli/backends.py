"""`router backends`: see and steer each backend's supply through a running router's admin
API (so it acts on every replica sharing the store).

    router backends show
    router backends drain NAME | undrain NAME
    router backends force NAME open|closed|auto
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
_COLUMNS = ("backend", "breaker", "in flight", "quota left", "draining", "last probe")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("backends", help="show, drain or force backends' supply")
    parser.add_argument(
        "--url",
        default=os.environ.get("ROUTER_URL", DEFAULT_URL),
        help="router base URL (default: $ROUTER_URL or %(default)s)",
    )
    parser.add_argument(
        "--admin-key",
        default=os.environ.get("ROUTER_ADMIN_KEY"),
        help="admin key (default: $ROUTER_ADMIN_KEY)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("show", help="each backend's breaker, load, quota and probe")
    for verb, text in (
        ("drain", "stop new requests to a backend"),
        ("undrain", "send requests to a backend again"),
    ):
        actions.add_parser(verb, help=text).add_argument("name")
    forced = actions.add_parser("force", help="hold a breaker open/closed, or back to auto")
    forced.add_argument("name")
    forced.add_argument("state", choices=("open", "closed", "auto"))
    parser.set_defaults(handler=run, action="show")


def _request(args: argparse.Namespace) -> urllib.request.Request:
    base = args.url.rstrip("/") + "/admin/backends"
    if args.action == "show":
        url, method = base, "GET"
    else:
        url = f"{base}/{urllib.parse.quote(args.name, safe='')}/{args.action}"
        if args.action == "force":
            url += "?" + urllib.parse.urlencode({"state": args.state})
        method = "POST"
    headers = {"accept": "application/json"}
    if args.admin_key:
        headers["authorization"] = f"Bearer {args.admin_key}"
    return urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 (checked)


def _fraction(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"


def _row(name: str, status: dict[str, Any]) -> tuple[str, ...]:
    breaker = status["breaker"]
    if status["forced"] != "auto":
        breaker += " (forced)"
    elif status["retry_after_s"]:
        breaker += f" (Retry-After {status['retry_after_s']:g}s)"
    cap = status["capacity"]
    load = f"{status['in_flight']}/{cap}" if cap is not None else str(status["in_flight"])
    probe = status["last_probe"]
    seen = (
        "-"
        if probe is None
        else (f"{'ok' if probe['ok'] else probe['reason']} {probe['age_s']:.0f}s ago")
    )
    return (
        name,
        breaker,
        load,
        _fraction(status["quota_left"]),
        "yes" if status["draining"] else "no",
        seen,
    )


def _table(backends: dict[str, dict[str, Any]]) -> str:
    rows = [_COLUMNS, *(_row(name, status) for name, status in backends.items())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {error.code} {error.reason}"


def run(args: argparse.Namespace) -> int:
    if urllib.parse.urlsplit(args.url).scheme not in ("http", "https"):
        print(f"error: --url must be an http(s) URL, got {args.url!r}", file=sys.stderr)
        return 2
    request = _request(args)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (checked)
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        print(f"error: {_error_message(error)}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"error: cannot reach the router at {args.url}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.action == "show":
        print(_table(answer["backends"]))
    else:
        name = answer.pop("backend")
        print(_table({name: answer}))
    return 0
