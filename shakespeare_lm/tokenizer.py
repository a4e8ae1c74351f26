"""The tokenizer protocol shared by every tokenizer, its registry, and the character-level tokenizer.

Follows the Zero-to-Hero GPT lecture (`stoi`, `itos`, `encode`, `decode`): every distinct character
of the corpus is one token. `BPETokenizer` (bpe.py) and `WordTokenizer` (word_tokenizer.py) follow
the same protocol, so training, sampling and checkpoints work with any of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import ClassVar, Protocol, runtime_checkable

import torch

from .bpe import BPETokenizer
from .tokenizer_io import JSONFileMixin, ids_to_list, read_json
from .word_tokenizer import WordTokenizer

_FORMAT = "shakespeare_lm.CharTokenizer"


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer offers: text <-> ids, a vocabulary size, and a JSON form with a type name."""

    kind: ClassVar[str]  # "char", "bpe" or "word": recorded in to_dict() so the right class loads it

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str: ...

    def to_dict(self) -> dict: ...

    @classmethod
    def from_dict(cls, d: dict) -> Tokenizer: ...

    def save(self, path: str | os.PathLike) -> None: ...

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer: ...


class CharTokenizer(JSONFileMixin):
    """Maps each character of a fixed vocabulary to an integer id and back."""

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if not chars:
            raise ValueError("a tokenizer needs at least one character")
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"vocabulary entries must be single characters, got {bad[:5]!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary contains duplicate characters")
        self.itos: dict[int, str] = dict(enumerate(chars))
        self.stoi: dict[str, int] = {ch: i for i, ch in self.itos.items()}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from the sorted set of characters in `text`."""
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def chars(self) -> list[str]:
        return [self.itos[i] for i in range(self.vocab_size)]

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.itos == other.itos

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.stoi))

    def encode(self, text: str) -> list[int]:
        """Text -> list of token ids. Raises ValueError naming any unknown characters."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            unknown = self.unknown_chars(text)
            shown = ", ".join(repr(c) for c in unknown[:10])
            more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
            raise ValueError(
                f"text contains characters not in the vocabulary: {shown}{more}"
            ) from None

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Token ids (a list or a 1-D tensor) -> text. Raises ValueError on ids out of range."""
        itos = self.itos
        return "".join(itos[i] for i in ids_to_list(ids, self.vocab_size))

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "kind": self.kind, "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        if not isinstance(d, dict) or d.get("format") != _FORMAT or "chars" not in d:
            raise ValueError("not a shakespeare_lm CharTokenizer description")
        return cls(d["chars"])


TOKENIZERS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "bpe": BPETokenizer, "word": WordTokenizer}
_LEGACY_FORMATS = {_FORMAT: "char"}  # dicts written before tokenizers recorded their kind


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer of any kind from its `to_dict()` description (what checkpoints store)."""
    if not isinstance(d, dict):
        raise ValueError(f"a tokenizer description must be a dict, got {type(d).__name__}")
    kind = d.get("kind", _LEGACY_FORMATS.get(d.get("format")))
    if kind not in TOKENIZERS:
        known = ", ".join(sorted(TOKENIZERS))
        raise ValueError(f"unknown tokenizer kind {kind!r}: expected one of {known}")
    return TOKENIZERS[kind].from_dict(d)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read a tokenizer JSON file written by any tokenizer's `save`."""
    d = read_json(path)
    try:
        return tokenizer_from_dict(d)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
