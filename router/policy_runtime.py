"""The policy in force, and its hot reload: read, check, compile, then swap in one step.

A reload that fails (unreadable file, YAML or schema error, unknown backend, impossible
rule) keeps the engine that is serving and reports why; requests never see a half-built
engine because the swap is a single attribute assignment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from router.config import ConfigError
from router.core.check import load_policy_text
from router.core.compile import compile_policy
from router.core.engine import Engine
from router.core.model import Capabilities
from router.core.problems import PolicyError, Problem

log = logging.getLogger("router.policy")

_Stamp = tuple[int, int, int]


def _stamp(path: Path) -> _Stamp:
    """Changes when the file is edited in place or replaced (editors often rename over it)."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def read_engine(path: Path, backends: Mapping[str, Capabilities]) -> tuple[Engine, list[Problem]]:
    """Load, check and compile a policy file; raise PolicyError with every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(
            [Problem("error", (), f"cannot read the policy: {error}")], str(path)
        ) from None
    policy, warnings = load_policy_text(text, backends, str(path))
    return compile_policy(policy, backends), warnings


class PolicyHolder:
    """Holds the compiled engine the server decides with; `engine` is always a valid one."""

    def __init__(
        self, path: Path, backends: Mapping[str, Capabilities], engine: Engine, stamp: _Stamp | None
    ) -> None:
        self.path = path
        self.backends = dict(backends)
        self.engine = engine
        self._stamp = stamp

    @classmethod
    def load(cls, path: Path, backends: Mapping[str, Capabilities]) -> PolicyHolder:
        """Start-up load: a bad policy is a ConfigError, so the process does not start."""
        try:
            stamp = _stamp(path)
            engine, warnings = read_engine(path, backends)
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the policy: {error.strerror}") from None
        except PolicyError as error:
            raise ConfigError(str(error)) from None
        for warning in warnings:
            log.warning("policy warning: %s", warning.render(str(path)))
        return cls(path, backends, engine, stamp)

    def reload(self) -> list[Problem]:
        """Swap in the file's current policy if it is valid; return its problems either way
        (errors mean the old engine stays)."""
        try:
            stamp = _stamp(self.path)
            engine, warnings = read_engine(self.path, self.backends)
        except OSError as error:
            problems = [Problem("error", (), f"cannot read the policy: {error.strerror}")]
        except PolicyError as error:
            problems = list(error.problems)
        else:
            self.engine, self._stamp = engine, stamp
            log.info("policy reloaded from %s (%d rules)", self.path, len(engine.rules))
            for warning in warnings:
                log.warning("policy warning: %s", warning.render(str(self.path)))
            return warnings
        log.error(
            "policy reload failed, keeping the previous policy:\n%s",
            "\n".join(p.render(str(self.path)) for p in problems),
        )
        return problems

    def changed(self) -> bool:
        """True when the file differs from the one last loaded (or tried and failed)."""
        try:
            stamp = _stamp(self.path)
        except OSError:
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True

    async def watch(self, interval_s: float = 1.0) -> None:
        """Poll the file's stamp every `interval_s` and reload on change; run as a task."""
        while True:
            await asyncio.sleep(interval_s)
            if await asyncio.to_thread(self.changed):
                await asyncio.to_thread(self.reload)
