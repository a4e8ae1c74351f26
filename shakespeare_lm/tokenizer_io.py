"""What every tokenizer shares: JSON save/load (atomic) and checking the ids handed to `decode`.

The tokenizers follow the Zero-to-Hero lectures (GPT and "Let's build the GPT tokenizer").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch

from .utils import atomic_write


def read_json(path: str | os.PathLike) -> dict:
    """Read a tokenizer JSON file; a missing file or bad JSON gets a one-line error naming the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"tokenizer file {path} is not valid JSON: {e}") from None


def ids_to_list(ids: Iterable[int] | torch.Tensor, vocab_size: int) -> list[int]:
    """Token ids (a list or a 1-D tensor) -> list of ints; ValueError on ids outside [0, vocab_size)."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() > 1:
            raise ValueError(f"decode expects a 1-D sequence of ids, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    ids = [int(i) for i in ids]
    for i in ids:
        if not 0 <= i < vocab_size:
            raise ValueError(f"token id {i} is out of range for a vocabulary of {vocab_size}")
    return ids


class JSONFileMixin:
    """`save(path)` / `load(path)` for any class with `to_dict()` / `from_dict(d)`."""

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to a JSON file (atomically: a crash leaves any old file intact)."""
        with atomic_write(path) as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a tokenizer written by `save`."""
        d = read_json(path)
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
