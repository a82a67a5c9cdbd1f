"""Cost arithmetic in integer micro-dollars: worst-case reservations and actual charges.

Prices are micro-dollars per million tokens, so one token costs price / 1e6 micro-dollars.
Totals round up once, per request, so the ledger, the counters and a recomputation from usage
all agree to the micro-dollar.
"""

from router.core.model import Price, Usage
from router.types import TOKENS_PER_MTOK, Micros


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def token_cost(
    price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> Micros:
    """Cost of a token mix at one price; cached prompt tokens use the cached rate if set."""
    cached = min(cached_tokens, prompt_tokens)
    cached_rate = (
        price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    )
    scaled = (
        (prompt_tokens - cached) * price.input_per_mtok
        + cached * cached_rate
        + completion_tokens * price.output_per_mtok
    )
    return _ceil_div(scaled, TOKENS_PER_MTOK) + price.per_request


def actual_cost(price: Price, usage: Usage) -> Micros:
    """What a served request is charged."""
    return token_cost(price, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


def worst_case_cost(price: Price, prompt_tokens: int, max_output_tokens: int) -> Micros:
    """What admission reserves: every prompt token uncached, every allowed output token used."""
    return token_cost(price, prompt_tokens, max_output_tokens)
