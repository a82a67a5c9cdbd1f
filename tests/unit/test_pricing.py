"""USD parsing, the seed file, and which price version is in force when."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.model import Price
from router.pricing import (
    PriceBook,
    PriceSpec,
    PriceUnknown,
    format_usd,
    load_seed,
    parse_usd,
)
from router.store.memory import MemoryStore

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        ("0.05", 50_000),
        ("2", 2_000_000),
        ("$1.50", 1_500_000),
        (" 8.00 ", 8_000_000),
        (Decimal("0.000001"), 1),
        (3, 3_000_000),
        (0.1, 100_000),
        (2.675, 2_675_000),
        ("1e-6", 1),
        ("0", 0),
    ],
)
def test_parse_usd_is_exact(value: object, micros: int) -> None:
    assert parse_usd(value) == micros  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["0.0000001", "-1", "abc", "NaN", "Infinity", True, "", float("inf")]
)
def test_parse_usd_refuses_what_is_not_a_micro_exact_amount(value: object) -> None:
    with pytest.raises(ValueError):
        parse_usd(value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**15))
def test_parse_usd_round_trips_every_micro_amount(micros: int) -> None:
    text = str(Decimal(micros) / 1_000_000)
    assert parse_usd(text) == micros


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (5_000_000, "$5.00"),
        (120_000, "$0.12"),
        (123, "$0.000123"),
        (0, "$0.00"),
        (1_234_567_890_000, "$1,234,567.89"),
        (1_500_001, "$1.500001"),
    ],
)
def test_format_usd(micros: int, text: str) -> None:
    assert format_usd(micros) == text


def test_the_shipped_seed_prices_mini_and_full_and_rejects_unknown_models() -> None:
    seed = load_seed(REPO / "config" / "prices.yaml", cost_map={})
    assert seed.models["mini"] == PriceSpec(50_000, 200_000)
    assert seed.models["full"] == PriceSpec(2_000_000, 8_000_000, 500_000)
    assert seed.default_unknown is None


def test_litellm_fills_only_what_the_seed_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  a: {litellm_model: m, output_per_mtok: '9'}\n"
        "  b: {litellm_model: odd}\n"
        "default_unknown: {policy: charge, input_per_mtok: '15', output_per_mtok: 60}\n"
    )
    cost_map = {
        "m": {
            "input_cost_per_token": 2e-06,
            "output_cost_per_token": 8e-06,
            "cache_read_input_token_cost": 5e-07,
        },
        "odd": {"input_cost_per_token": 1.0000001e-07, "output_cost_per_token": 1.25e-07},
    }
    seed = load_seed(path, cost_map=cost_map)
    assert seed.models["a"] == PriceSpec(2_000_000, 9_000_000, 500_000)
    assert seed.models["b"] == PriceSpec(100_001, 125_000)  # rounded up, never down
    assert seed.default_unknown == PriceSpec(15_000_000, 60_000_000)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("models: {a: {input_per_mtok: '1'}}", "needs input_per_mtok and output_per_mtok"),
        ("models: {a: {litellm_model: nope}}", "litellm has no model 'nope'"),
        ("models: {a: {input_per_mtok: '1', output_per_mtok: '0.0000001'}}", "finer than"),
        ("models: {a: {inptu_per_mtok: '1'}}", "inptu_per_mtok"),
    ],
)
def test_seed_errors_name_the_model_and_the_problem(tmp_path: Path, body: str, error: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match=error):
        load_seed(path, cost_map={})


def version(v: int, effective_from: float, rate: int = 1, model: str = "m") -> Price:
    return Price(model, v, effective_from, rate, rate)


def test_price_in_force_is_the_latest_effective_from_not_after_the_time() -> None:
    book = PriceBook(
        [version(1, 0.0, 10), version(2, 100.0, 20), version(3, 200.0, 30), version(4, 150.0, 40)]
    )
    assert [book.price_at("m", t).version for t in (0, 99.9, 100, 149, 150, 199, 200, 1e12)] == [
        1,
        1,
        2,
        2,
        4,
        4,
        3,
        3,
    ]


def test_same_effective_from_goes_to_the_higher_version() -> None:
    book = PriceBook([version(2, 50.0), version(1, 50.0)])
    assert book.price_at("m", 60).version == 2


def test_unknown_or_not_yet_in_force_is_an_error_never_free() -> None:
    book = PriceBook([version(1, 100.0)])
    with pytest.raises(PriceUnknown, match="'m'"):
        book.price_at("m", 50)
    with pytest.raises(PriceUnknown, match="'other'"):
        book.price_at("other", 500)


def test_a_configured_default_prices_unknown_models_as_version_zero() -> None:
    book = PriceBook([], default_unknown=PriceSpec(15_000_000, 60_000_000))
    assert book.price_at("mystery", 1.0) == Price("mystery", 0, 0.0, 15_000_000, 60_000_000)


def test_apply_is_idempotent_and_current_leaves_out_scheduled_models() -> None:
    now = [1000.0]
    book = PriceBook([version(1, 0.0)], clock=lambda: now[0])
    book.apply(version(1, 0.0))
    book.apply(version(2, 2000.0))
    book.apply(version(1, 5000.0, model="later"))
    assert [p.version for p in book.history("m")] == [1, 2]
    assert book.current() == {"m": version(1, 0.0)}
    assert [(p.model, p.version) for p in book.scheduled()] == [("m", 2), ("later", 1)]
    now[0] = 2500.0
    assert book.current() == {"m": version(2, 2000.0)}
    assert book.price_at("m") == version(2, 2000.0)


async def test_load_seeds_only_models_the_store_has_never_priced_then_follows_it() -> None:
    store = MemoryStore(clock=lambda: 10.0)
    await store.add_price(Price("mini", 0, 0.0, 1, 1))
    seed = load_seed(REPO / "config" / "prices.yaml", cost_map={})
    book = await PriceBook.load(store, seed, clock=lambda: 10.0)
    assert book.price_at("mini") == Price("mini", 1, 0.0, 1, 1)
    assert book.price_at("full").input_per_mtok == 2_000_000
    assert [p.version for p in (await store.prices())["full"]] == [1]
    await store.add_price(Price("full", 0, 5.0, 3_000_000, 9_000_000))
    await asyncio.sleep(0)
    assert book.price_at("full").version == 2
    again = await PriceBook.load(store, REPO / "config" / "prices.yaml")
    assert [p.version for p in again.history("full")] == [1, 2]
