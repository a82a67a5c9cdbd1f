"""`router keys|prices|usage|ledger|reconcile`: the admin API from a shell.

Every command talks to a running router's /admin API (--url, admin key from --admin-key or
ROUTER_ADMIN_KEY) with the standard library only, and prints the JSON it gets back.
`reconcile --store-url` instead runs the admin API's own reconcile service on the store
directly, for when no router is up, and prints the same JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_URL = "http://127.0.0.1:8080"


class CommandError(Exception):
    """Something the operator can fix; printed without a traceback."""


def _connection() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("ROUTER_URL", DEFAULT_URL),
        help="the router's base URL (default: $ROUTER_URL or %(default)s)",
    )
    common.add_argument("--admin-key", default=None, help="admin key (default: $ROUTER_ADMIN_KEY)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    return common


def _open(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, Any] | None = None,
) -> BinaryIO:
    base = args.url.rstrip("/")
    if urlsplit(base).scheme not in ("http", "https"):
        raise CommandError(f"--url must be http:// or https://, got {args.url!r}")
    key = args.admin_key or os.environ.get("ROUTER_ADMIN_KEY")
    if not key:
        raise CommandError("no admin key: set ROUTER_ADMIN_KEY or pass --admin-key")
    params = {k: v for k, v in (query or {}).items() if v is not None}
    url = base + path + ("?" + urlencode(params) if params else "")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    try:
        response: BinaryIO = urllib.request.urlopen(  # noqa: S310 - as above
            request, timeout=args.timeout
        )
    except urllib.error.HTTPError as exc:
        raise CommandError(f"{method} {path}: HTTP {exc.code}: {_message(exc.read())}") from exc
    except (urllib.error.URLError, TimeoutError) as exc:
        raise CommandError(
            f"cannot reach the router at {base}: {getattr(exc, 'reason', exc)}"
        ) from exc
    return response


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:500]


def _call(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, Any] | None = None,
) -> Any:
    with _open(args, method, path, body, query) as response:
        return json.loads(response.read())


def _print(data: Any) -> int:
    print(json.dumps(data, indent=2))
    return 0


def _budget(text: str) -> dict[str, Any]:
    """PERIOD:USD[:WINDOW_S], e.g. day:5.00, month:100, rolling:1.50:3600."""
    period, _, rest = text.partition(":")
    amount, _, window = rest.partition(":")
    if not period or not amount:
        raise argparse.ArgumentTypeError(f"{text!r}: expected PERIOD:USD[:WINDOW_S]")
    budget: dict[str, Any] = {"period": period, "limit_usd": amount}
    if window:
        budget["window_s"] = int(window)
    return budget


def _keys_create(args: argparse.Namespace) -> int:
    limits = {"rpm": args.rpm, "tpm": args.tpm, "max_concurrency": args.max_concurrency}
    created = _call(
        args,
        "POST",
        "/admin/keys",
        {
            "team": args.team,
            "name": args.name,
            "tags": args.tag,
            "budgets": args.budget,
            "limits": {k: v for k, v in limits.items() if v is not None},
        },
    )
    print("Save this key now; it is not shown again.", file=sys.stderr)
    return _print(created)


def _keys_rotate(args: argparse.Namespace) -> int:
    rotated = _call(args, "POST", f"/admin/keys/{quote(args.key_id, safe='')}/rotate")
    print("Save the new key now; the old one no longer works.", file=sys.stderr)
    return _print(rotated)


def _prices_set(args: argparse.Namespace) -> int:
    body = {
        "model": args.model,
        "input_per_mtok": args.input,
        "output_per_mtok": args.output,
        "cached_input_per_mtok": args.cached,
        "per_request": args.per_request,
    }
    if args.effective_from is not None:
        when = args.effective_from
        body["effective_from"] = float(when) if when.replace(".", "", 1).isdigit() else when
    return _print(_call(args, "POST", "/admin/prices", body))


def _ledger_export(args: argparse.Namespace) -> int:
    query = {"format": args.format, "since": args.since, "until": args.until}
    with _open(args, "GET", "/admin/ledger", query=query) as response:
        if args.output == "-":
            shutil.copyfileobj(response, sys.stdout.buffer)
        else:
            with open(args.output, "wb") as out:
                shutil.copyfileobj(response, out)
    return 0


async def _reconcile_store(url: str, key_prefix: str, older_than_s: float) -> dict[str, Any]:
    from router.services.reconcile import reconcile
    from router.services.views import reconciled_view
    from router.store.factory import open_store

    store = open_store(url, key_prefix=key_prefix, timeout_s=5.0)
    try:
        return reconciled_view(await reconcile(store, older_than_s))
    finally:
        await store.close()


def _reconcile(args: argparse.Namespace) -> int:
    if args.store_url:
        from router.errors import RouterError

        try:
            return _print(
                asyncio.run(_reconcile_store(args.store_url, args.key_prefix, args.older_than_s))
            )
        except RouterError as exc:
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""
            raise CommandError(exc.message + cause) from exc
    return _print(
        _call(args, "POST", "/admin/reconcile", query={"older_than_s": args.older_than_s})
    )


def _handler(run: Any) -> Any:
    """Turn CommandError into a clean message and exit code 1."""

    def handle(args: argparse.Namespace) -> int:
        try:
            result: int = run(args)
        except CommandError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return result

    return handle


def _leaf(
    group: Any, name: str, help_text: str, run: Any, common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, parents=[common])
    parser.set_defaults(handler=_handler(run))
    return parser


def register(commands: Any) -> None:
    """Add the admin command groups to the `router` command."""
    common = _connection()

    keys = commands.add_parser("keys", help="create, list, disable and rotate API keys")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = _leaf(sub, "create", "mint a key (its secret is printed once)", _keys_create, common)
    create.add_argument("--team", required=True)
    create.add_argument("--name", default="")
    create.add_argument("--tag", action="append", default=[], help="repeatable")
    create.add_argument(
        "--budget",
        action="append",
        default=[],
        type=_budget,
        help="PERIOD:USD[:WINDOW_S] (day, month, rolling); repeatable",
    )
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--max-concurrency", type=int)
    _leaf(sub, "list", "every key", lambda a: _print(_call(a, "GET", "/admin/keys")), common)
    for action in ("disable", "rotate"):
        run = (
            _keys_rotate
            if action == "rotate"
            else (
                lambda a: _print(
                    _call(a, "POST", f"/admin/keys/{quote(a.key_id, safe='')}/disable")
                )
            )
        )
        _leaf(sub, action, f"{action} a key", run, common).add_argument("key_id")

    prices = commands.add_parser("prices", help="set and inspect model prices")
    sub = prices.add_subparsers(dest="prices_command", metavar="ACTION", required=True)
    set_price = _leaf(
        sub, "set", "add a price version (USD per million tokens)", _prices_set, common
    )
    set_price.add_argument("model")
    set_price.add_argument("--input", required=True, help="USD per million input tokens")
    set_price.add_argument("--output", required=True, help="USD per million output tokens")
    set_price.add_argument("--cached", help="USD per million cached input tokens")
    set_price.add_argument("--per-request", default="0", help="USD per request")
    set_price.add_argument("--effective-from", help="ISO 8601 or epoch seconds (default: now)")
    _leaf(
        sub,
        "show",
        "prices in force and scheduled",
        lambda a: _print(_call(a, "GET", "/admin/prices")),
        common,
    )
    _leaf(
        sub,
        "history",
        "every version of one model",
        lambda a: _print(_call(a, "GET", f"/admin/prices/{quote(a.model, safe='')}/history")),
        common,
    ).add_argument("model")

    usage = _leaf(
        commands,
        "usage",
        "spend and tokens from the ledger, grouped",
        lambda a: _print(
            _call(
                a,
                "GET",
                "/admin/usage",
                query={"group_by": a.group_by, "since": a.since, "until": a.until},
            )
        ),
        common,
    )
    usage.add_argument("--group-by", choices=["key", "team", "backend", "day"], default="key")
    usage.add_argument("--since", help="ISO 8601 or epoch seconds")
    usage.add_argument("--until", help="ISO 8601 or epoch seconds")

    ledger = commands.add_parser("ledger", help="export the ledger")
    sub = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    export = _leaf(sub, "export", "every settled request, in time order", _ledger_export, common)
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--since", help="ISO 8601 or epoch seconds")
    export.add_argument("--until", help="ISO 8601 or epoch seconds")
    export.add_argument("--output", "-o", default="-", help="file (default: stdout)")

    reconcile = _leaf(
        commands,
        "reconcile",
        "charge orphaned reservations at their reserved amount",
        _reconcile,
        common,
    )
    reconcile.add_argument("--older-than-s", type=float, default=600.0)
    reconcile.add_argument(
        "--store-url", help="work on this store directly instead of through a router (redis://...)"
    )
    reconcile.add_argument(
        "--key-prefix", default="router", help="the store's key prefix (with --store-url)"
    )
