"""Command line: `python -m shakespeare_lm train | generate | evaluate` (also `shakespeare-lm ...`).

Follows nanoGPT's train.py / sample.py entry points, with named presets instead of config files.
Under `torchrun --nproc_per_node=N -m shakespeare_lm train ...` training runs with DDP.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch

from .checkpoint import META_FILE, CheckpointError, find_resume_checkpoint, load_checkpoint, peek
from .data import DownloadError, load_shakespeare, load_text, train_val_split
from .distributed import dist_info_from_env
from .evaluation import evaluate
from .model import PRESETS, build_model, get_preset
from .precision import DTYPES
from .runlock import RunDirLockedError, RunLock
from .sampling import default_prompt, sample_text, stream_text
from .tokenizer import CharTokenizer, tokenizer_from_dict
from .train import (
    CHECKPOINT_MODES,
    COMPILE_MODES,
    LR_SCHEDULES,
    TRAIN_PRESETS,
    TrainConfig,
    TrainingDivergedError,
    get_train_preset,
    train,
)
from .utils import check_positive_int, pick_device

PROG = "shakespeare-lm"
DEFAULT_PRESET = "cpu-small"
_EPILOG = """examples:
  python -m shakespeare_lm train --preset cpu-small --out runs/cpu-small
  python -m shakespeare_lm train --out runs/cpu-small --resume --max-iters 4000
  python -m shakespeare_lm generate --checkpoint runs/cpu-small --prompt "ROMEO:" --stream
  python -m shakespeare_lm evaluate --checkpoint runs/cpu-small
  torchrun --nproc_per_node=4 -m shakespeare_lm train --preset baby-gpt --out runs/baby-gpt
"""


class CLIError(Exception):
    """A user-facing problem: printed as one `error:` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(s: str) -> int:
    try:
        value: object = int(s)
    except ValueError:
        value = s
    try:
        check_positive_int("value", value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value  # type: ignore[return-value]


def _float_type(ok, expected: str):
    """An argparse type: a finite float for which ok(value) holds, else 'expected <expected>'."""

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {s!r}")
        return v

    return parse


_non_negative_float = _float_type(lambda v: v >= 0, "a number >= 0")
_positive_float = _float_type(lambda v: v > 0, "a positive number")
_probability = _float_type(lambda v: 0 < v <= 1, "a number in (0, 1]")


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model from a preset (or resume a run)",
                       description="Train a GPT on Tiny Shakespeare (or --data) and write checkpoints, "
                       "history.csv and history.jsonl to --out.")
    t.add_argument("--preset", choices=[name for name in TRAIN_PRESETS if name in PRESETS],
                   help=f"model + training recipe (default: {DEFAULT_PRESET}; on --resume: the run's own)")
    t.add_argument("--out", required=True, metavar="DIR", help="run directory for checkpoints and history")
    t.add_argument("--data", metavar="FILE", help="UTF-8 text file to train on (default: Tiny Shakespeare)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that already holds a trained model, replacing it")
    t.add_argument("--max-iters", type=_positive_int, help="total optimizer steps")
    t.add_argument("--max-time", type=_positive_float, metavar="SECONDS",
                   help="stop gracefully (final eval + checkpoint) after this many seconds")
    t.add_argument("--batch-size", type=_positive_int, help="sequences per micro-batch")
    t.add_argument("--block-size", type=_positive_int, help="context length (model and training windows)")
    t.add_argument("--learning-rate", type=_positive_float, help="peak learning rate")
    t.add_argument("--min-lr", type=float, help="final learning rate of the decay")
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="shape of the decay after warmup")
    t.add_argument("--warmup-iters", type=int, help="linear warmup steps")
    t.add_argument("--betas", type=float, nargs=2, metavar=("BETA1", "BETA2"),
                   help="AdamW betas, e.g. 0.8 0.99")
    t.add_argument("--embedding-lr-mult", type=_positive_float, metavar="X",
                   help="learning-rate multiplier for the embeddings (and the lm_head tied to them)")
    t.add_argument("--grad-accum-steps", type=_positive_int, help="micro-batches per optimizer step")
    t.add_argument("--eval-interval", type=_positive_int, help="steps between loss estimates and checkpoints")
    t.add_argument("--eval-iters", type=_positive_int, help="batches per split in each loss estimate")
    t.add_argument("--dropout", type=float, help="dropout probability of the model")
    t.add_argument("--seed", type=int, help="random seed (init, dropout, data order)")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    t.add_argument("--dtype", choices=DTYPES,
                   help="autocast precision (default: auto = the faster one for this device and size)")
    t.add_argument("--compile", choices=COMPILE_MODES, help="torch.compile (auto: on CUDA only)")
    t.add_argument("--checkpoint", choices=CHECKPOINT_MODES,
                   help="save when val improves (best), at every eval (last), or never")
    t.add_argument("--patience", type=_positive_int, help="stop after this many evals without improvement")
    t.add_argument("--threads", type=_positive_int, help="CPU threads for torch (default: torch's choice)")
    t.add_argument("--final-eval", action="store_true",
                   help="after training, report the loss over the whole val split")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train, sample and evaluate character-level GPTs.",
                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{train,generate,evaluate}", parser_class=_Parser)
    sub.required = True
    _train_parser(sub)

    g = sub.add_parser("generate", help="sample text from a checkpoint",
                       description="Sample text from a trained checkpoint.")
    g.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint or run directory")
    g.add_argument("--prompt", help="text to continue (default: a newline, or a space if the vocabulary "
                                    "has no newline)")
    g.add_argument("--max-new-tokens", type=_positive_int, default=500, help="characters to generate")
    g.add_argument("--temperature", type=_non_negative_float, default=0.8,
                   help="<1 sharper, >1 more random, 0 = always the most likely character")
    g.add_argument("--top-k", type=_positive_int, help="sample only from the k most likely characters")
    g.add_argument("--top-p", type=_probability,
                   help="sample from the smallest set of characters with this total probability")
    g.add_argument("--seed", type=int, help="random seed, for repeatable samples")
    g.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N | mps (default: %(default)s)")
    g.add_argument("--window-stride", type=_positive_int, default=1,
                   help="past the context length, re-crop the window every N tokens instead of every "
                        "token, so the KV cache keeps working (faster; default 1 = the lecture's crop)")
    g.add_argument("--stream", action="store_true", help="print characters as they are generated")

    e = sub.add_parser("evaluate", help="loss, bits/char and perplexity on the whole val split",
                       description="Evaluate a checkpoint on the whole validation split of its corpus.")
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint or run directory")
    e.add_argument("--data", metavar="FILE", help="text file to evaluate on (default: the training corpus)")
    e.add_argument("--batch-size", type=_positive_int, default=64, help="windows per batch")
    e.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N | mps (default: %(default)s)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _load_corpus(data: str | None) -> tuple[str, str]:
    """(text, source) where source is what meta.json records: a path or 'tinyshakespeare'."""
    if data is not None:
        return load_text(data), str(Path(data).expanduser().resolve())
    return load_shakespeare(), "tinyshakespeare"


def _saved_source(meta: dict) -> str | None:
    source = (meta.get("extra") or {}).get("data")
    return None if source in (None, "tinyshakespeare") else source


def _encode(tokenizer, text: str, what: str) -> torch.Tensor:
    try:  # a character tokenizer names the characters its vocabulary lacks
        return torch.tensor(tokenizer.encode(text), dtype=torch.long)
    except ValueError as e:
        raise CLIError(f"{what} does not fit the checkpoint's tokenizer: {e}") from None


def _check_run_dir(out: Path, args) -> None:
    """Before any data is read: --out can be written, no other training holds it, and a fresh run
    does not replace a trained model unless asked to (--overwrite)."""
    lock = RunLock(out)
    try:
        lock.acquire()  # creates --out; RunDirLockedError if another training holds it
    except OSError as e:
        what = "write to" if out.is_dir() else "create"
        raise CLIError(f"cannot {what} run directory {out}: {e.strerror or e}") from None
    try:  # held only while checking: train() takes it again for the whole run
        found = [name for name in ("checkpoint", "interrupted") if (out / name / META_FILE).is_file()]
        if found and not (args.resume or args.overwrite):
            raise CLIError(f"{out} already holds a trained model ({', '.join(found)}/): pass --resume to "
                           "continue it, --overwrite to replace it, or choose another --out")
        if args.resume and args.overwrite:
            raise CLIError("--resume continues the run in --out and --overwrite replaces it: pass one")
    finally:
        lock.release()


def cmd_train(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device:
        pick_device(args.device)  # an unknown or missing device fails now, not after loading the data
    out = Path(args.out).expanduser()
    info = dist_info_from_env()
    if info.is_main:  # one lock per run: the other ranks write nothing
        _check_run_dir(out, args)
    resume_from, saved, preset = None, None, args.preset or DEFAULT_PRESET
    if args.resume:
        resume_from = find_resume_checkpoint(out)
        saved = peek(resume_from)  # sizes only; train() verifies the files when it loads them
        saved_preset = (saved.get("extra") or {}).get("preset")
        if args.preset and saved_preset and args.preset != saved_preset:
            raise CLIError(f"{out} was trained with --preset {saved_preset}, not {args.preset}; "
                           "drop --preset to resume it")
        preset = saved_preset or args.preset or "saved run"
        max_iters = args.max_iters or (saved.get("train_config") or {}).get("max_iters")
        if max_iters is not None and saved["step"] >= max_iters:
            given = f"--max-iters is {args.max_iters}" if args.max_iters else f"its max_iters is {max_iters}"
            print(f"nothing to do: {out} is at step {saved['step']} and {given}; "
                  "pass a larger --max-iters to train further")
            return 0
    text, source = _load_corpus(args.data if args.data or saved is None else _saved_source(saved))
    base = dataclasses.asdict(get_train_preset(preset)) if preset in TRAIN_PRESETS else {}
    if saved is not None:
        tokenizer = tokenizer_from_dict(saved["tokenizer"])
        model = build_model(saved["model"]["type"], saved["model"]["config"])
        base.update(saved.get("train_config") or {})
    else:
        tokenizer = CharTokenizer.from_text(text)
        overrides = {"vocab_size": tokenizer.vocab_size}
        if args.block_size:
            overrides["block_size"] = args.block_size
        if args.dropout is not None:
            overrides["dropout"] = args.dropout
        torch.manual_seed(args.seed if args.seed is not None else base["seed"])  # model init
        model = build_model("GPT", dataclasses.asdict(get_preset(preset, **overrides)))
    cli = {"max_iters": args.max_iters, "max_time": args.max_time, "batch_size": args.batch_size,
           "block_size": args.block_size, "learning_rate": args.learning_rate, "min_lr": args.min_lr,
           "lr_schedule": args.lr_schedule, "warmup_iters": args.warmup_iters,
           "grad_accum_steps": args.grad_accum_steps, "betas": args.betas,
           "embedding_lr_mult": args.embedding_lr_mult, "eval_interval": args.eval_interval,
           "eval_iters": args.eval_iters, "seed": args.seed, "device": args.device, "dtype": args.dtype,
           "compile": args.compile, "checkpoint": args.checkpoint, "patience": args.patience}
    base.update({k: v for k, v in cli.items() if v is not None})
    base.update(out_dir=str(out), progress=not args.no_progress)
    config = TrainConfig.from_dict(base)
    train_data, val_data = train_val_split(_encode(tokenizer, text, f"the corpus {source}"))
    if info.is_main:
        n = sum(p.numel() for p in model.parameters())
        print(f"{'resuming' if saved else 'training'} {preset}: {n / 1e6:.2f}M parameters, "
              f"{len(train_data):,} train / {len(val_data):,} val tokens, out_dir {out}", flush=True)
    t0 = time.perf_counter()
    history = train(model, train_data, val_data, config, resume_from=resume_from, tokenizer=tokenizer,
                    meta={"data": source, "preset": preset}, overwrite=args.overwrite)
    if not info.is_main:
        return 0
    step = history.step  # steps completed; the last evaluation may be older
    if history.stop_reason == "already_done":
        print(f"nothing to do: {out} is at step {step} and max_iters is {config.max_iters}; "
              "pass a larger --max-iters to train further")
        return 0
    line = f"done ({history.stop_reason}) at step {step} in {time.perf_counter() - t0:.1f} s"
    if history.records:
        last = history.records[-1]
        at = "" if last["step"] == step else f" (last eval at step {last['step']})"
        line += (f": train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}{at}, "
                 f"best val {history.best_val_loss:.4f}")
    print(line)
    if args.final_eval:
        r = evaluate(model, val_data.to(next(model.parameters()).device), config.block_size)
        print(f"full val split: loss {r.loss:.4f}, {r.bits_per_char:.4f} bits/char, "
              f"perplexity {r.perplexity:.3f}")
    if history.stop_reason == "interrupted":
        print(f"interrupted; resume with: python -m shakespeare_lm train --out {out} --resume",
              file=sys.stderr)
        return 130
    return 0


def _load(args) -> tuple:
    device = pick_device(args.device)  # before loading: "CUDA is not available" beats a traceback
    model, tokenizer, meta = load_checkpoint(args.checkpoint, device=device)
    if tokenizer is None:
        raise CLIError(f"checkpoint {meta['path']} has no tokenizer; cannot turn text into tokens")
    return model, tokenizer, meta, device


def cmd_generate(args) -> int:
    model, tokenizer, _, device = _load(args)
    prompt = default_prompt(tokenizer) if args.prompt is None else args.prompt
    _encode(tokenizer, prompt, "the prompt")
    kw = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
              top_p=args.top_p, seed=args.seed, device=device, window_stride=args.window_stride)
    if args.stream:
        for piece in stream_text(model, tokenizer, prompt, **kw):
            print(piece, end="", flush=True)
        print()
    else:
        print(sample_text(model, tokenizer, prompt, **kw))
    return 0


def cmd_evaluate(args) -> int:
    model, tokenizer, meta, device = _load(args)
    text, source = _load_corpus(args.data if args.data is not None else _saved_source(meta))
    _, val_data = train_val_split(_encode(tokenizer, text, f"the corpus {source}"))
    block_size = getattr(model, "block_size", None) or (meta.get("train_config") or {}).get("block_size")
    r = evaluate(model, val_data.to(device), block_size, args.batch_size)
    if args.json:
        print(json.dumps({**r.to_dict(), "step": meta.get("step"), "data": source}))
    else:
        print(f"checkpoint {meta['path']} (step {meta.get('step')}), val split of {source}: "
              f"{r.tokens:,} tokens")
        print(f"val loss {r.loss:.4f} | bits/char {r.bits_per_char:.4f} | perplexity {r.perplexity:.3f}")
    return 0


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror and e.filename:  # not "[Errno 13] Permission denied: 'x'"
        return f"{e.strerror}: {e.filename}"
    return " ".join(str(e).split())


def run(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the command; user mistakes become one `error:` line. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate}
    try:
        return commands[args.command](args)
    except TrainingDivergedError as e:
        print(f"{PROG} {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except (CLIError, CheckpointError, DownloadError, RunDirLockedError, ValueError, OSError) as e:
        print(f"{PROG} {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
