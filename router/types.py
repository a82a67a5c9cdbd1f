"""Type aliases shared across the package, kept in one place so signatures stay readable."""

from typing import Any, TypeAlias

Micros: TypeAlias = int
"""Money in integer micro-dollars (1 USD = 1_000_000). Never a float."""

JSONObject: TypeAlias = dict[str, Any]
"""A decoded JSON object as it came off the wire."""

MICROS_PER_USD = 1_000_000
TOKENS_PER_MTOK = 1_000_000
