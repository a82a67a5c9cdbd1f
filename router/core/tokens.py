"""Token counting with tiktoken, from the BPE rank files litellm ships inside its package.

The files are read from disk once, at start-up, and checked against tiktoken's published
SHA-256; nothing is ever downloaded and no environment variable is touched.

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
    encoding = tiktoken.Encoding(name, pat_str=spec.pattern, mergeable_ranks=ranks,
                                 special_tokens=spec.special_tokens)
    return _Loaded(encoding, max(map(len, ranks)))


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
            size += len(text) if text.isascii() else len(text.encode())
        return -(-size // self.max_token_bytes), size

    def word_bound(self, texts: Sequence[str]) -> int:
        """A lower bound of `count_texts(texts)` from word starts; one pass over the bytes."""
        if not texts:
            return 0
        joined = ("\n" + "\n".join(texts)).encode()
        return max(joined.translate(_CLASSES).count(_WORD_START),
                   -(-(len(joined) - len(texts)) // self.max_token_bytes))
