"""A self-hosted Mini on a laptop: llama.cpp's OpenAI-compatible server over a small GGUF
model, run as a child process on loopback. No GPU, no API key.

The router never imports this to serve requests; it talks to the Mini over HTTP like any
other backend. Only `router mini ...` and the tests start one.
"""

from router.mini._errors import MiniError, MiniExited, MiniNotInstalled
from router.mini._model import DEFAULT_ALIAS, DEFAULT_CHAT_FORMAT, resolve_model_path
from router.mini._process import LocalMini, MiniSettings, require_server

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_CHAT_FORMAT",
    "LocalMini",
    "MiniError",
    "MiniExited",
    "MiniNotInstalled",
    "MiniSettings",
    "require_server",
    "resolve_model_path",
]
