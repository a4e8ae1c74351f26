"""Byte-level byte-pair encoding (BPE): start from the 256 bytes, repeatedly merge the most frequent pair.

Follows GPT-2's tokenizer (Radford et al. 2019) and Karpathy's minbpe / "Let's build the GPT Tokenizer":
token ids 0-255 are the raw bytes of the UTF-8 text, and merge k (counting from 0) creates id 256 + k.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

import torch

from .tokenizer_io import JSONFileMixin, ids_to_list

_FORMAT = "shakespeare_lm.BPETokenizer"

# GPT-2's pre-split pattern, written for the standard library's `re` (which has no \p{L}):
# [^\W\d_] stands for a letter, \d for a number, and [^\s\w]|_ for the rest. A chunk is an
# English contraction, a word with its leading space, a number, a run of punctuation, or whitespace.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

_CACHE_LIMIT = 100_000  # encoded chunks kept per tokenizer; whole corpora need far fewer


class _PairIndex:
    """Token sequences stored as one linked list, with the weighted count and positions of every pair.

    Merging a pair only touches the neighbours of each occurrence, so a merge costs the number of its
    occurrences instead of a pass over the whole text. Each sequence has a weight (how often that
    chunk occurs in the text); pairs never span two sequences.
    """

    def __init__(self, seqs: Iterable[bytes | list[int]], weights: Iterable[int]):
        self.tok: list[int] = []  # token at each position; -1 once merged into its left neighbour
        self.nxt: list[int] = []  # next live position of the same sequence, -1 at its end
        self.prv: list[int] = []
        self.weight: list[int] = []
        self.starts: list[int] = []
        self.counts: dict[tuple[int, int], int] = defaultdict(int)
        # Positions where each pair starts. Entries go stale when a neighbour merges; `merge` checks.
        self.where: dict[tuple[int, int], list[int]] = defaultdict(list)
        counts, where = self.counts, self.where
        for seq, w in zip(seqs, weights, strict=True):
            start, n = len(self.tok), len(seq)
            self.starts.append(start if n else -1)
            self.tok.extend(seq)
            self.prv.extend(range(start - 1, start + n - 1))
            self.nxt.extend(range(start + 1, start + n + 1))
            self.weight.extend([w] * n)
            if n:
                self.prv[start], self.nxt[-1] = -1, -1
            pairs = list(zip(seq, seq[1:], strict=False))
            for pair, c in Counter(pairs).items():
                counts[pair] += c * w
            for i, pair in enumerate(pairs, start):
                where[pair].append(i)

    def merge(self, pair: tuple[int, int], new_id: int) -> set[tuple[int, int]]:
        """Replace each occurrence of `pair`, left to right, by `new_id`; return pairs whose count changed."""
        a, b = pair
        tok, nxt, prv, weight = self.tok, self.nxt, self.prv, self.weight
        counts, where = self.counts, self.where
        changed: set[tuple[int, int]] = set()
        # Left to right, as a fresh scan would: in "aaa" the pair (a, a) merges once, at the start.
        for i in sorted(set(where.pop(pair, ()))):
            j = nxt[i]
            if tok[i] != a or j == -1 or tok[j] != b:
                continue  # stale: an earlier merge in this pass (or before) used one of the two tokens
            w, p, n = weight[i], prv[i], nxt[j]
            tok[i], tok[j], nxt[i] = new_id, -1, n
            if p != -1:  # (x, a) becomes (x, new_id)
                old, new = (tok[p], a), (tok[p], new_id)
                counts[old] -= w
                counts[new] += w
                where[new].append(p)
                changed.add(old)
                changed.add(new)
            if n != -1:  # (b, y) becomes (new_id, y)
                prv[n] = i
                old, new = (b, tok[n]), (new_id, tok[n])
                counts[old] -= w
                counts[new] += w
                where[new].append(i)
                changed.add(old)
                changed.add(new)
        counts.pop(pair, None)  # every occurrence is gone
        changed.discard(pair)
        for q in changed:
            if not counts[q]:
                del counts[q]
        return changed

    def sequences(self) -> list[list[int]]:
        """The current tokens of each sequence, in the order they were given."""
        out = []
        tok, nxt = self.tok, self.nxt
        for i in self.starts:
            seq = []
            while i != -1:
                seq.append(tok[i])
                i = nxt[i]
            out.append(seq)
        return out

    def apply(self, merges: dict[tuple[int, int], int]) -> list[list[int]]:
        """Apply `merges` in the order they were learned (lowest new id first) and return the sequences."""
        heap = [(merges[p], p) for p in self.counts if p in merges]
        heapq.heapify(heap)
        while heap:
            new_id, pair = heapq.heappop(heap)
            if pair not in self.counts:
                continue  # already merged, or its occurrences were used by an earlier merge
            # A merge only creates pairs that contain `new_id`, which can only be merged later on.
            for p in self.merge(pair, new_id):
                if p in merges and p in self.counts:
                    heapq.heappush(heap, (merges[p], p))
        return self.sequences()


class BPETokenizer(JSONFileMixin):
    """Byte-level BPE: any Unicode text round-trips exactly, so encoding never meets an unknown character.

    Training repeatedly merges the most frequent adjacent pair of tokens. Ties go to the smallest pair
    of ids, compared as (first id, second id) - deterministic and easy to reproduce by hand.
    `pre_split` cuts the text into chunks first (GPT-2's regex: words with their leading space, numbers,
    punctuation runs, whitespace) and never merges across chunks: otherwise "dog." "dog!" "dog?" would
    each become tokens, and the vocabulary would go on frequent word + punctuation combinations instead
    of words. Each distinct chunk is counted once with its frequency, which also makes training fast.
    """

    kind = "bpe"

    def __init__(self, merges: Iterable[Iterable[int]] = (), pattern: str | None = GPT2_SPLIT_PATTERN):
        self.merges: dict[tuple[int, int], int] = {}  # (id, id) -> new id, in the order learned
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}  # id -> the bytes it stands for
        for k, pair in enumerate(merges):
            pair = tuple(pair)
            new_id = 256 + k
            if len(pair) != 2 or not all(isinstance(t, int) and not isinstance(t, bool) for t in pair):
                raise ValueError(f"merge {k} must be a pair of integer ids, got {list(pair)!r}")
            if not all(0 <= t < new_id for t in pair):
                raise ValueError(f"merge {k} {list(pair)} refers to an id not defined before id {new_id}")
            if pair in self.merges:
                raise ValueError(f"merge {k} {list(pair)} repeats merge {self.merges[pair] - 256}")
            self.merges[pair] = new_id
            self.vocab[new_id] = self.vocab[pair[0]] + self.vocab[pair[1]]
        self.pattern = pattern
        try:
            self._split = re.compile(pattern).findall if pattern is not None else None
        except (re.error, TypeError) as e:
            raise ValueError(f"invalid pre-split pattern {pattern!r}: {e}") from None
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, *, pre_split: bool = True) -> BPETokenizer:
        """Learn `vocab_size - 256` merges from `text`.

        Stops early (with a smaller vocabulary) when no adjacent pair is left to merge.
        """
        if not isinstance(text, str):
            raise TypeError(f"train expects a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot train BPE on empty text")
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an integer >= 256 (the 256 bytes come first), "
                             f"got {vocab_size!r}")
        tok = cls(pattern=GPT2_SPLIT_PATTERN if pre_split else None)
        chunks = Counter(tok._chunks(text))
        index = _PairIndex((c.encode("utf-8") for c in chunks), chunks.values())
        heap = [(-c, a, b) for (a, b), c in index.counts.items()]
        heapq.heapify(heap)
        merges: dict[tuple[int, int], int] = {}
        while len(merges) < vocab_size - 256 and heap:
            neg, a, b = heapq.heappop(heap)
            if index.counts.get((a, b)) != -neg:
                continue  # a stale entry: this pair's count has changed since it was pushed
            merges[a, b] = new_id = 256 + len(merges)
            for pair in index.merge((a, b), new_id):
                if pair in index.counts:
                    heapq.heappush(heap, (-index.counts[pair], *pair))
        return cls(merges, tok.pattern)

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    @property
    def pre_split(self) -> bool:
        return self.pattern is not None

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, pre_split={self.pre_split})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPETokenizer) and (list(self.merges), self.pattern) == (
            list(other.merges), other.pattern)

    def token_bytes(self, i: int) -> bytes:
        """The bytes token `i` stands for."""
        return self.vocab[ids_to_list([i], self.vocab_size)[0]]

    def token_str(self, i: int) -> str:
        """Token `i` as text for display (a partial UTF-8 character shows as U+FFFD)."""
        return self.token_bytes(i).decode("utf-8", errors="replace")

    def _chunks(self, text: str) -> list[str]:
        return self._split(text) if self._split is not None else [text]

    def encode(self, text: str) -> list[int]:
        """Text -> list of token ids. Never raises on unusual characters: every byte has an id."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        chunks = self._chunks(text)
        if self._split is None:  # one chunk: nothing to reuse between calls
            return _PairIndex([text.encode("utf-8")], [1]).apply(self.merges)[0]
        cache = self._cache
        new = list(dict.fromkeys(c for c in chunks if c not in cache))
        if not new:
            return [t for c in chunks for t in cache[c]]
        # Each distinct chunk is encoded once (a corpus of 1.1M characters has ~25k distinct words).
        seqs = _PairIndex((c.encode("utf-8") for c in new), [1] * len(new)).apply(self.merges)
        fresh = dict(zip(new, seqs, strict=True))
        ids = [t for c in chunks for t in (fresh.get(c) or cache[c])]
        if len(cache) + len(fresh) > _CACHE_LIMIT:
            cache.clear()
        if len(fresh) <= _CACHE_LIMIT:
            cache.update(fresh)
        return ids

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Token ids (a list or a 1-D tensor) -> text. Raises ValueError on ids out of range.

        A model can emit ids whose bytes are not valid UTF-8 (half of a multi-byte character);
        those bytes decode to U+FFFD (errors="replace") instead of raising.
        """
        vocab = self.vocab
        return b"".join(vocab[i] for i in ids_to_list(ids, self.vocab_size)).decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "kind": self.kind, "pattern": self.pattern,
                "merges": [list(p) for p in self.merges]}

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        if not isinstance(d, dict) or d.get("format") != _FORMAT or not isinstance(d.get("merges"), list):
            raise ValueError("not a shakespeare_lm BPETokenizer description")
        if not all(isinstance(p, list) for p in d["merges"]):
            raise ValueError("BPETokenizer merges must be a list of [id, id] pairs")
        pattern = d.get("pattern")
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"BPETokenizer pattern must be a string or null, got {pattern!r}")
        return cls(d["merges"], pattern)
