"""A character-level tokenizer: every distinct character of the corpus is one token.

Follows the Zero-to-Hero GPT lecture (`stoi`, `itos`, `encode`, `decode`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch

from .utils import atomic_write

_FORMAT = "shakespeare_lm.CharTokenizer"


class CharTokenizer:
    """Maps each character of a fixed vocabulary to an integer id and back."""

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
        if isinstance(ids, torch.Tensor):
            if ids.dim() > 1:
                raise ValueError(f"decode expects a 1-D sequence of ids, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        try:
            return "".join(self.itos[int(i)] for i in ids)
        except KeyError as e:
            raise ValueError(
                f"token id {e.args[0]} is out of range for a vocabulary of {self.vocab_size}"
            ) from None

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        if not isinstance(d, dict) or d.get("format") != _FORMAT or "chars" not in d:
            raise ValueError("not a shakespeare_lm CharTokenizer description")
        return cls(d["chars"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to a JSON file (atomically)."""
        with atomic_write(path) as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Read a vocabulary written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"tokenizer file {path} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def tokenizer_from_dict(d: dict) -> CharTokenizer:
    """Rebuild a tokenizer from its `to_dict()` description (what checkpoints store)."""
    return CharTokenizer.from_dict(d)
