"""Measure byte-level BPE training and encoding on Tiny Shakespeare, with and without GPT-2's pre-split.

Pure Python (no tensor work, so torch's thread count does not matter). Each run trains a fresh
BPETokenizer per vocabulary size and mode, then encodes the whole corpus with it, starting from an
empty per-word cache, and checks the exact round trip. Every run is printed, then the medians and
tokens per character next to the character tokenizer's. Prints figures; asserts nothing about time.

    python benchmarks/bpe_speed.py --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from shakespeare_lm.bpe import BPETokenizer
from shakespeare_lm.data import load_shakespeare, load_text
from shakespeare_lm.tokenizer import CharTokenizer

MODES = {True: "pre-split", False: "whole-text"}


def label(vocab_size: int, tok: BPETokenizer) -> str:
    merges = len(tok.merges)
    early = "" if tok.vocab_size == vocab_size else f", stopped early at vocab {tok.vocab_size}"
    return f"vocab {vocab_size} ({merges} merges{early})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="path to a UTF-8 text file (default: SHAKESPEARE_LM_DATA / cache)")
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[512, 2048],
                        help="BPE vocabulary sizes, each >= 256 (256 bytes + the merges)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of every configuration")
    parser.add_argument("--block-size", type=int, default=256, help="for the characters a window covers")
    args = parser.parse_args(argv)
    if args.repeat < 1 or any(v < 256 for v in args.vocab_sizes):
        parser.error("--repeat must be >= 1 and every --vocab-sizes entry >= 256")

    # --data is any UTF-8 text (a tiny one for smoke tests); load_shakespeare checks the real corpus
    text = load_text(args.data) if args.data else load_shakespeare(progress=False)
    char = CharTokenizer.from_text(text)
    print(f"corpus: {len(text):,} characters, {len(text.encode('utf-8')):,} bytes; {args.repeat} runs; "
          f"python {sys.version.split()[0]}")

    configs = [(v, pre_split) for v in args.vocab_sizes for pre_split in MODES]
    train_s: dict[tuple, list[float]] = {c: [] for c in configs}
    encode_s: dict[tuple, list[float]] = {c: [] for c in configs}
    ratio, names = {}, {}
    for run in range(args.repeat):
        for vocab_size, pre_split in configs:
            t0 = time.perf_counter()
            tok = BPETokenizer.train(text, vocab_size, pre_split=pre_split)
            t1 = time.perf_counter()
            ids = tok.encode(text)
            t2 = time.perf_counter()
            if tok.decode(ids) != text:
                sys.exit(f"round trip failed for vocab {vocab_size}, {MODES[pre_split]}")
            c = (vocab_size, pre_split)
            train_s[c].append(t1 - t0)
            encode_s[c].append(t2 - t1)
            ratio[c], names[c] = len(ids) / len(text), label(vocab_size, tok)
            print(f"run {run + 1}: {names[c]}, {MODES[pre_split]}: train {t1 - t0:.2f} s, "
                  f"encode {t2 - t1:.2f} s, {ratio[c]:.3f} tokens/char")

    print(f"char: vocab {char.vocab_size}, 1.000 tokens/char, a block of {args.block_size} tokens "
          f"covers {args.block_size} characters")
    for c in configs:
        print(f"{names[c]}, {MODES[c[1]]}: median train {statistics.median(train_s[c]):.2f} s, "
              f"encode {statistics.median(encode_s[c]):.2f} s, {ratio[c]:.3f} tokens/char, "
              f"a block of {args.block_size} tokens covers ~{args.block_size / ratio[c]:.0f} characters")
    parts = [f"{names[v, True]} {statistics.median(train_s[v, True]):.2f} s pre-split, "
             f"{statistics.median(train_s[v, False]):.2f} s whole-text" for v in args.vocab_sizes]
    print(f"BPE training, median of {args.repeat}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
