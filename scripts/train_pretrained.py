"""Train the bundled `cpu-small` model, the one `shakespeare_lm.pretrained("cpu-small")` loads.

The reproducible recipe: nanoGPT's CPU model (4 layers, 4 heads, 128 channels, block 64, no
dropout) trained through the package's own `train()` with a fixed seed and a fixed number of
optimizer steps (not a time budget, so every machine runs the same schedule), evaluated on the
whole validation split, and saved without optimizer or RNG state as safetensors + meta.json. The
meta records the exact command line, seed, package and torch versions, device, thread count,
training seconds, val loss and bits per character (`pretrained_info("cpu-small")` shows them).

    python scripts/train_pretrained.py                    # writes shakespeare_lm/weights/cpu-small
    python scripts/train_pretrained.py --out /tmp/repro   # a reproduction check elsewhere
    python scripts/train_pretrained.py --max-iters 300    # a quick stand-in / smoke test

Reads Tiny Shakespeare like the rest of the package ($SHAKESPEARE_LM_DATA or the cached download).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from shakespeare_lm import (
    GPT,
    CharTokenizer,
    __version__,
    evaluate,
    get_preset,
    get_train_preset,
    load_shakespeare,
    save_checkpoint,
    train,
    train_val_split,
)
from shakespeare_lm.bundled import PROVENANCE_KEY
from shakespeare_lm.data import SHAKESPEARE_SHA256

NAME = "cpu-small"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "shakespeare_lm" / "weights" / NAME
MAX_ITERS = 6000  # the 10-minute cpu-small run reached val 1.535 at step ~5,000 with this schedule
SEED = 1337
LEARNING_RATE, MIN_LR, WARMUP = 2e-3, 2e-4, 50  # the cpu-small preset's cosine schedule


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="checkpoint directory to write (default: the package data, %(default)s)")
    p.add_argument("--max-iters", type=int, default=MAX_ITERS,
                   help="optimizer steps; the LR schedule ends at this step (default %(default)s)")
    p.add_argument("--seed", type=int, default=SEED,
                   help="model init, dropout and data order (default %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice); recorded in the meta")
    p.add_argument("--device", default="cpu", help="cpu (default, the recorded recipe), cuda or mps")
    args = p.parse_args(argv)
    if args.max_iters < 1:
        p.error(f"--max-iters must be at least 1, got {args.max_iters}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "scripts/train_pretrained.py", *(sys.argv[1:] if argv is None else argv)])
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)  # the 65 characters of Tiny Shakespeare
    train_data, val_data = train_val_split(torch.tensor(tokenizer.encode(text), dtype=torch.long))
    config = get_train_preset(
        NAME, max_iters=args.max_iters, learning_rate=LEARNING_RATE, min_lr=MIN_LR,
        warmup_iters=min(WARMUP, args.max_iters), lr_schedule="cosine",
        eval_interval=min(250, args.max_iters),
        seed=args.seed, device=args.device, dtype="float32", compile="off", out_dir=None, max_time=None,
    )
    torch.manual_seed(args.seed)  # the model's initial weights, as the CLI's train does
    model = GPT(get_preset(NAME, tokenizer))

    start = time.perf_counter()
    history = train(model, train_data, val_data, config, tokenizer=tokenizer)
    train_seconds = time.perf_counter() - start
    if history.stop_reason != "max_iters":
        print(f"error: training stopped early ({history.stop_reason}); nothing written", file=sys.stderr)
        return 1
    result = evaluate(model, val_data.to(next(model.parameters()).device))  # every val token once

    provenance = {
        "command": command, "seed": args.seed, "package_version": __version__,
        "torch_version": torch.__version__, "device": str(args.device), "threads": torch.get_num_threads(),
        "train_seconds": round(train_seconds, 1), "max_iters": args.max_iters,
        "val_loss": result.loss, "bits_per_char": result.bits_per_char, "perplexity": result.perplexity,
        "val_tokens": result.tokens, "corpus_sha256": SHAKESPEARE_SHA256,
    }
    extra = {"data": "tinyshakespeare", "preset": NAME, PROVENANCE_KEY: provenance,
             "history": {"records": history.records}}  # the loss estimates (not every step's loss)
    path = save_checkpoint(args.out, model.cpu(), None, tokenizer, config,
                           step=history.step, best_val_loss=result.loss, rng_state=None, extra=extra)
    for p in (path, *path.iterdir()):  # package data: readable by every user of an installed copy
        p.chmod(0o755 if p.is_dir() else 0o644)
    print(f"{NAME}: {history.step} steps in {train_seconds:.0f} s; full val split: loss {result.loss:.4f}, "
          f"{result.bits_per_char:.4f} bits/char ({result.tokens:,} tokens)")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
