"""A word-level tokenizer: the N most frequent words, punctuation marks and spaces, plus `<unk>` for the rest.

The classic word vocabulary of pre-BPE language models (e.g. Bengio et al. 2003); it shows what
unknown words cost, which byte-level BPE avoids.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import torch

from .tokenizer_io import JSONFileMixin, ids_to_list
from .utils import check_positive_int

_FORMAT = "shakespeare_lm.WordTokenizer"
UNK = "<unk>"

# A word is letters with inner apostrophes ("banish'd", "o'er"), or a run of digits; a whitespace run
# is one token; every other character (punctuation, "_", a leading or closing quote) is its own token.
# Together the alternatives match every character, so the tokens always join back to the text.
WORD_SPLIT_PATTERN = r"[^\W\d_]+(?:'[^\W\d_]+)*|\d+|\s+|[^\w\s]|_"
_split = re.compile(WORD_SPLIT_PATTERN).findall
_is_word = re.compile(r"[^\W_]").match  # a token that starts with a letter or a digit


def split_words(text: str) -> list[str]:
    """Cut `text` into words, whitespace runs and single punctuation marks; "".join(result) == text."""
    return _split(text)


class WordTokenizer(JSONFileMixin):
    """Maps each known word (or punctuation mark, or whitespace run) to an id; everything else to `<unk>`.

    Id 0 is `<unk>`. Decoding is lossy for unknown words: each comes back as the text "<unk>".
    Round trips are exact only for text whose tokens are all in the vocabulary.
    """

    kind = "word"

    def __init__(self, tokens: Iterable[str]):
        """`tokens` are the known tokens, most frequent first; `<unk>` is added in front as id 0."""
        tokens = list(tokens)
        bad = [t for t in tokens if not isinstance(t, str) or not t or t == UNK]
        if bad:
            raise ValueError(f"vocabulary entries must be non-empty strings other than {UNK!r}, "
                             f"got {bad[:5]!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary contains duplicate tokens")
        self.itos: dict[int, str] = dict(enumerate([UNK, *tokens]))
        self.stoi: dict[str, int] = {t: i for i, t in self.itos.items()}
        self.unk_id = 0

    @classmethod
    def train(cls, text: str, vocab_size: int) -> WordTokenizer:
        """Keep the `vocab_size - 1` most frequent tokens of `text` (plus `<unk>`).

        Ties in frequency go to the token that sorts first, so the vocabulary does not depend on
        the order of the text. The vocabulary is smaller when `text` has fewer distinct tokens.
        """
        if not isinstance(text, str):
            raise TypeError(f"train expects a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        check_positive_int("vocab_size", vocab_size)
        counts = Counter(split_words(text))
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        return cls(ranked[: vocab_size - 1])

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def tokens(self) -> list[str]:
        """Every token of the vocabulary in id order, `<unk>` first."""
        return [self.itos[i] for i in range(self.vocab_size)]

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and self.itos == other.itos

    def encode(self, text: str) -> list[int]:
        """Text -> list of token ids; tokens outside the vocabulary become `<unk>` (never raises)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        stoi, unk = self.stoi, self.unk_id
        return [stoi.get(t, unk) for t in split_words(text)]

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Token ids (a list or a 1-D tensor) -> text; `<unk>` decodes to the text "<unk>"."""
        itos = self.itos
        return "".join(itos[i] for i in ids_to_list(ids, self.vocab_size))

    def unknown_words(self, text: str) -> list[str]:
        """Tokens of `text` that are not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(t for t in split_words(text) if t not in self.stoi))

    def unknown_rate(self, text: str, *, words_only: bool = False) -> float:
        """Share of the tokens of `text` that map to `<unk>` (0.0 for text without tokens).

        By default every token counts, as the model sees them; `words_only=True` counts only words
        (tokens of letters or digits), leaving out spaces and punctuation, which are rarely unknown.
        """
        tokens = split_words(text)
        if words_only:
            tokens = [t for t in tokens if _is_word(t)]
        if not tokens:
            return 0.0
        return sum(t not in self.stoi for t in tokens) / len(tokens)

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "kind": self.kind, "unk": UNK, "tokens": self.tokens[1:]}

    @classmethod
    def from_dict(cls, d: dict) -> WordTokenizer:
        if not isinstance(d, dict) or d.get("format") != _FORMAT or not isinstance(d.get("tokens"), list):
            raise ValueError("not a shakespeare_lm WordTokenizer description")
        return cls(d["tokens"])
