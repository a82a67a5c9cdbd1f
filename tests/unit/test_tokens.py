"""The local tiktoken counter: same counts as tiktoken's own encodings, and sound bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from router.core.tokens import EncodingFileError, TokenCounter, litellm_tokenizer_dir

SAMPLES = [
    "",
    "Hello, world!",
    "  indented\n\tcode()  // comment\n\n\n",
    "<|endoftext|> is text here, not a special token",
    "naïve café 日本語のテキスト 😀 Ελληνικά русский",
    "x" * 5000,
    " " * 300 + "a",
    "--\n/usr/bin\n/\n//--\n",
    "word\u00a0word\u2003word\u3000word\x85word",
    ("lorem ipsum " * 6000)[:70_000],
    "12345678901234567890 1,234.5",
]

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
spacey = st.lists(
    st.sampled_from(
        [
            " ",
            "\n",
            "\t",
            "\r\n",
            "/",
            "a",
            "Z",
            "é",
            "日",
            "\u00a0",
            "\u3000",
            "\u2028",
            "'s",
            "--",
            "1",
            "😀",
            ".",
            "\x0b",
            "\x0c",
            "\x1c",
            "\x85",
        ]
    ),
    max_size=120,
).map("".join)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_counts_match_tiktoken(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = TokenCounter(name)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(litellm_tokenizer_dir()))
    reference = tiktoken.get_encoding(name)
    for text in SAMPLES:
        assert counter.count_text(text) == len(reference.encode_ordinary(text))


def test_longest_token_is_measured(counter: TokenCounter, cl100k: TokenCounter) -> None:
    assert counter.max_token_bytes == 128
    assert cl100k.max_token_bytes == 128


def _assert_sound(counter: TokenCounter, parts: list[str]) -> None:
    exact = counter.count_texts(parts)
    lower, upper = counter.bounds(parts)
    assert lower <= exact <= upper
    words = counter.word_bound(parts, upper)
    assert words <= exact
    for limit in (0, words // 2, words - 1):
        early = counter.word_bound(parts, limit)
        assert early > limit or early == words


@pytest.mark.parametrize("text", SAMPLES)
def test_bounds_hold_on_samples(counter: TokenCounter, cl100k: TokenCounter, text: str) -> None:
    _assert_sound(counter, [text])
    _assert_sound(cl100k, [text, text])


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, max_size=4))
def test_bounds_hold_on_any_unicode(counter: TokenCounter, parts: list[str]) -> None:
    _assert_sound(counter, parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(spacey, max_size=4))
def test_bounds_hold_around_whitespace(
    counter: TokenCounter, cl100k: TokenCounter, parts: list[str]
) -> None:
    _assert_sound(counter, parts)
    _assert_sound(cl100k, parts)


def test_word_bound_is_close_on_prose(counter: TokenCounter) -> None:
    prose = "The quick brown fox jumps over the lazy dog, again and again. " * 200
    assert counter.word_bound([prose], 10**9) >= 0.7 * counter.count_text(prose)


def test_lone_surrogates_are_bounded(counter: TokenCounter) -> None:
    _assert_sound(counter, ["a\ud800b \udfff", "\ud83d"])


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EncodingFileError, match="cannot read"):
        TokenCounter(directory=tmp_path)


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    for source in litellm_tokenizer_dir().iterdir():
        if source.is_file():
            (tmp_path / source.name).write_bytes(source.read_bytes()[:-10])
    with pytest.raises(EncodingFileError, match="SHA-256"):
        TokenCounter("cl100k_base", directory=tmp_path)


def test_unknown_encoding() -> None:
    with pytest.raises(EncodingFileError, match="unknown encoding"):
        TokenCounter("p50k_base")
