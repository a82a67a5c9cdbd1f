"""Token counting with tiktoken, from the BPE rank files litellm ships inside its package.

The files are read from disk once, at start-up, and checked against tiktoken's published
SHA-256; nothing is ever downloaded and no environment variable is touched. Lone surrogates
(legal in JSON) count as the 3 bytes of the U+FFFD tiktoken replaces them with.

Besides exact counts, the counter gives sound bounds that cost no tokenizing:
- upper: every BPE token covers at least one UTF-8 byte, so tokens <= bytes;
- lower: tokens >= bytes / (the longest token in the vocabulary, measured at load);
- a tighter lower bound (`word_bound`): both encodings pre-split text with a regex whose pieces
  never hold two "word starts" (a non-space byte right after an ASCII space, tab or newline),
  and BPE never merges across pieces, so tokens >= word starts. A '/' (o200k's pieces may end
  in newlines then slashes) and the lead bytes of the non-ASCII whitespace characters
  (C2, E1, E2, E3) never count as a word start, which keeps the argument exact.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tiktoken

_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


@dataclass(frozen=True, slots=True)
class _Spec:
    sha256: str
    pattern: str
    special_tokens: dict[str, int]


_SPECS = {
    "o200k_base": _Spec(
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _Spec(
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

_SPACE, _START, _NEUTRAL = 0x20, 0x78, 0x2E


def _byte_classes() -> bytes:
    """Map each byte to space, word-start-capable, or neutral (see the module docstring)."""
    neutral = {ord("/"), 0xC2, 0xE1, 0xE2, 0xE3, *range(0x80, 0xC0)}
    table = bytearray(_START for _ in range(256))
    for byte in b" \t\n\r\x0b\x0c":
        table[byte] = _SPACE
    for byte in neutral:
        table[byte] = _NEUTRAL
    return bytes(table)


_CLASSES = _byte_classes()
_WORD_START = bytes([_SPACE, _START])
_CHUNK = 32_768
"""Characters classified per step: small enough to stop early, large enough to stay in C."""


class EncodingFileError(RuntimeError):
    """The BPE file litellm should ship is missing or does not match tiktoken's hash."""


def litellm_tokenizer_dir() -> Path:
    """Where litellm keeps its tiktoken cache files; found without importing litellm."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise EncodingFileError("litellm is not installed; it ships the tokenizer files")
    return Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"


def _read_ranks(path: Path, sha256: str) -> dict[bytes, int]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EncodingFileError(f"cannot read tokenizer file {path}: {error.strerror}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EncodingFileError(f"tokenizer file {path} does not match tiktoken's SHA-256")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@dataclass(frozen=True, slots=True)
class _Loaded:
    encoding: tiktoken.Encoding
    max_token_bytes: int


@cache
def _load(name: str, directory: Path | None) -> _Loaded:
    """Build a tiktoken encoding from the local rank file (cached: the ranks are immutable)."""
    spec = _SPECS.get(name)
    if spec is None:
        raise EncodingFileError(f"unknown encoding {name!r}; known: {', '.join(_SPECS)}")
    file_name = hashlib.sha1(_URL.format(name).encode(), usedforsecurity=False).hexdigest()
    ranks = _read_ranks((directory or litellm_tokenizer_dir()) / file_name, spec.sha256)
    encoding = tiktoken.Encoding(
        name, pat_str=spec.pattern, mergeable_ranks=ranks, special_tokens=spec.special_tokens
    )
    loaded = _Loaded(encoding, max(map(len, ranks)))
    # tiktoken's Rust core keeps its own copy of the ranks; the Encoding's reference to this
    # dict only serves pickling, which we never do. Emptying it frees about 29 MiB of RSS.
    ranks.clear()
    return loaded


class TokenCounter:
    """Exact counts and cheap sound bounds for one encoding; build once at start-up."""

    __slots__ = ("_encode", "encoding", "max_token_bytes")

    def __init__(self, encoding: str = "o200k_base", *, directory: Path | None = None) -> None:
        loaded = _load(encoding, directory)
        self.encoding = loaded.encoding
        self.max_token_bytes = loaded.max_token_bytes
        self._encode = loaded.encoding.encode_ordinary

    @property
    def name(self) -> str:
        return str(self.encoding.name)

    def count_text(self, text: str) -> int:
        """Tokens in `text`, special-token strings counted as ordinary text."""
        return len(self._encode(text))

    def count_texts(self, texts: Sequence[str]) -> int:
        """Sum of each text counted on its own, as each message is tokenized upstream."""
        encode = self._encode
        return sum(len(encode(text)) for text in texts)

    def bounds(self, texts: Sequence[str]) -> tuple[int, int]:
        """Cheap (lower, upper) bounds of `count_texts(texts)`: a length per text, no scan."""
        size = 0
        for text in texts:
            size += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        return -(-size // self.max_token_bytes), size

    def word_bound(self, texts: Sequence[str], limit: int) -> int:
        """A lower bound of `count_texts(texts)` from word starts, in one pass over the bytes
        that stops once the bound passes `limit`: the result is exact if it is <= limit."""
        found = 0
        for text in texts:
            previous = _SPACE
            for start in range(0, len(text), _CHUNK):
                chunk = text[start : start + _CHUNK].encode("utf-8", "surrogatepass")
                classes = chunk.translate(_CLASSES)
                found += classes.count(_WORD_START) + (previous == _SPACE and classes[0] == _START)
                if found > limit:
                    return found
                previous = classes[-1]
        return found
