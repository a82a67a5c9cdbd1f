"""`router mini serve` and `router mini up`: a real self-hosted Mini on a laptop with no GPU
and no API key (llama.cpp's server over Gemma 3 270M), alone or with the router in front."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

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
from router.mini._errors import INSTALL_HINT

DEFAULT_CONFIG = Path("config/local-mini.yaml")
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
        f"(default: Gemma 3 270M). Needs {INSTALL_HINT}.",
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
    up.set_defaults(handler=run_up)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-path",
        type=Path,
        help="GGUF file to serve (default: Gemma 3 270M from its PyPI package)",
    )
    parser.add_argument(
        "--chat-format",
        default=DEFAULT_CHAT_FORMAT,
        help="llama.cpp chat format; must match the model (default: %(default)s)",
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
        mini = LocalMini(_settings(args, "127.0.0.1", args.mini_port))
    except MiniError as error:
        return _fail(error)
    env = _router_env(mini.settings)
    os.environ.update(env)
    config = load_config(args.config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    stopping = threading.Event()
    with _stop_signals():
        try:
            mini.start(args.ready_timeout)
            _announce(f"MINI_BASE_URL={mini.base_url}", f"MINI_MODEL={mini.settings.alias}")
            for name, backend in config.backends.items():
                if backend.api_key is None and backend.base_url != mini.base_url:
                    print(
                        f"warning: backend {name!r} has no API key; requests only it can "
                        f"serve will fail. Set {name.upper()}_API_KEY (and "
                        f"{name.upper()}_BASE_URL for a provider other than OpenAI) and "
                        "run this again.",
                        file=sys.stderr,
                    )
            _watch(mini, stopping)
            _announce_when_ready(host, port, env.get("ROUTER_API_KEY"))
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


def _router_env(settings: MiniSettings) -> dict[str, str]:
    """What config/local-mini.yaml reads: where the Mini is and what it can honestly do."""
    env = {
        "MINI_BASE_URL": settings.base_url,
        "MINI_MODEL": settings.alias,
        "MINI_CONTEXT_WINDOW": str(settings.ctx),
        "MINI_MAX_OUTPUT_TOKENS": str(min(2048, settings.ctx // 2)),
    }
    if not os.environ.get("ROUTER_API_KEY"):
        env["ROUTER_API_KEY"] = "sk-local-" + secrets.token_urlsafe(18)
    return env


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


def _announce_when_ready(host: str, port: int, generated_key: str | None) -> None:
    """Print the router's URL (and a generated key) once /healthz answers."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{shown}:{port}"

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
        lines = [f"ROUTER_BASE_URL={url}/v1"]
        if generated_key is not None:
            lines.append(f"ROUTER_API_KEY={generated_key}")
        _announce(*lines)

    threading.Thread(target=poll, name="router-ready", daemon=True).start()
