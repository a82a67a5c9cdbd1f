"""Lua sources for the Redis store, read from package data with importlib.resources.

Each script is `_lib.lua` (shared period and window helpers, locals only) followed by the
script named by its verb; the Redis store registers each once and runs it by SHA.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def script_source(verb: str) -> str:
    lua = resources.files("router.store").joinpath("lua")
    return (
        lua.joinpath("_lib.lua").read_text("utf-8")
        + "\n"
        + lua.joinpath(f"{verb}.lua").read_text("utf-8")
    )
