"""Command line: `python -m shakespeare_lm train | generate | evaluate | sweep` (also `shakespeare-lm ...`).

Follows nanoGPT's train.py / sample.py entry points, with named presets instead of config files,
any tokenizer of the registry (char, bpe, word) and the models shipped with the package (--pretrained).
Under `torchrun --nproc_per_node=N -m shakespeare_lm train ...` training runs with DDP.
The arguments are declared in cli_parser.py; the sweep command is in cli_sweep.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from .bundled import pretrained
from .checkpoint import META_FILE, CheckpointError, find_resume_checkpoint, load_checkpoint, peek
from .cli_parser import DEFAULT_PRESET, PROG, build_parser
from .cli_sweep import cmd_sweep
from .data import DownloadError, load_shakespeare, load_text, train_val_split
from .distributed import dist_info_from_env
from .evaluation import evaluate
from .model import build_model, get_preset
from .runlock import RunDirLockedError, RunLock
from .sampling import default_prompt, sample_text, stream_text
from .tokenizer import TOKENIZERS, CharTokenizer, tokenizer_from_dict
from .training import TRAIN_PRESETS, TrainConfig, TrainingDivergedError, get_train_preset, train
from .utils import pick_device

# train's model flags -> the GPTConfig field each sets (the parser stores each under that field's name)
MODEL_FLAGS = {"--pos-encoding": "pos_encoding", "--activation": "activation", "--qk-norm": "qk_norm",
               "--untied": "tie_weights", "--attn-bias": "attn_bias"}


def _model_options(args) -> dict[str, object]:
    """The model flags given on the command line -> their values."""
    values = {flag: getattr(args, field) for flag, field in MODEL_FLAGS.items()}
    return {flag: value for flag, value in values.items() if value is not None}


class CLIError(Exception):
    """A user-facing problem: printed as one `error:` line, exit status 2."""


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


def _check_tokenizer_args(args) -> None:
    """A fresh run: --vocab-size goes with bpe and word, never with char (a resumed run: _saved_tokenizer)."""
    kind = args.tokenizer or "char"
    if args.resume:
        return
    if kind == "char" and args.vocab_size is not None:
        raise CLIError("--vocab-size is for --tokenizer bpe or word; a char vocabulary is the corpus's "
                       "characters")
    if kind != "char" and args.vocab_size is None:
        raise CLIError(f"--tokenizer {kind} needs --vocab-size N (e.g. 512)")


def _saved_tokenizer(saved: dict, args, out: Path):
    """The tokenizer a resumed run was trained with; --tokenizer/--vocab-size may only repeat it."""
    if saved.get("tokenizer") is None:
        raise CLIError(f"the checkpoint in {out} has no tokenizer; cannot resume it")
    tok = tokenizer_from_dict(saved["tokenizer"])
    if args.tokenizer and args.tokenizer != tok.kind:
        raise CLIError(f"{out} was trained with --tokenizer {tok.kind}, not {args.tokenizer}; "
                       "drop --tokenizer to resume it")
    if args.vocab_size is not None and args.vocab_size != tok.vocab_size:
        raise CLIError(f"{out} has a {tok.kind} vocabulary of {tok.vocab_size} tokens, not "
                       f"{args.vocab_size}; drop --vocab-size to resume it")
    return tok


def _new_tokenizer(args, text: str, train_text: str):
    """-> (tokenizer, where it came from). bpe and word learn from the train split only, so the val
    split stays unseen; a char vocabulary is every character of the corpus, so the val text encodes."""
    kind = args.tokenizer or "char"
    if kind == "char":
        return CharTokenizer.from_text(text), "the corpus's characters"
    t0 = time.perf_counter()
    try:
        tok = TOKENIZERS[kind].train(train_text, args.vocab_size)
    except ValueError as e:
        raise CLIError(f"--tokenizer {kind} --vocab-size {args.vocab_size}: {e}") from None
    return tok, f"trained on the train split in {time.perf_counter() - t0:.1f} s"


def _describe_tokenizer(tok, how: str, train_text, train_data, val_text, val_data) -> str:
    line = (f"tokenizer {tok.kind}: {tok.vocab_size:,} tokens ({how}); "
            f"{len(train_data) / len(train_text):.3f} tokens/char on train, "
            f"{len(val_data) / len(val_text):.3f} on val")
    if hasattr(tok, "unknown_rate"):  # a word vocabulary: what share of the val text it cannot name
        line += f"; {tok.unknown_rate(val_text):.1%} of val tokens are <unk>"
    return line


def cmd_train(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device:
        pick_device(args.device)  # an unknown or missing device fails now, not after loading the data
    out = Path(args.out).expanduser()
    _check_tokenizer_args(args)
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
        if given := _model_options(args):
            raise CLIError(f"{' '.join(given)} changes the model, and a resumed run keeps the checkpoint's; "
                           "drop it to resume, or start a new run in another --out")
        tokenizer = _saved_tokenizer(saved, args, out)
        max_iters = args.max_iters or (saved.get("train_config") or {}).get("max_iters")
        if max_iters is not None and saved["step"] >= max_iters:
            given = f"--max-iters is {args.max_iters}" if args.max_iters else f"its max_iters is {max_iters}"
            print(f"nothing to do: {out} is at step {saved['step']} and {given}; "
                  "pass a larger --max-iters to train further")
            return 0
    text, source = _load_corpus(args.data if args.data or saved is None else _saved_source(saved))
    train_text, val_text = train_val_split(text)  # by characters, so every tokenizer sees the same split
    base = dataclasses.asdict(get_train_preset(preset)) if preset in TRAIN_PRESETS else {}
    if saved is not None:
        how = "from the checkpoint"
        model = build_model(saved["model"]["type"], saved["model"]["config"])
        base.update(saved.get("train_config") or {})
    else:
        tokenizer, how = _new_tokenizer(args, text, train_text)
        overrides = {}
        if args.block_size:
            overrides["block_size"] = args.block_size
        if args.dropout is not None:
            overrides["dropout"] = args.dropout
        overrides.update({MODEL_FLAGS[flag]: value for flag, value in _model_options(args).items()})
        torch.manual_seed(args.seed if args.seed is not None else base["seed"])  # model init
        model = build_model("GPT", dataclasses.asdict(get_preset(preset, tokenizer=tokenizer, **overrides)))
    cli = {"max_iters": args.max_iters, "max_time": args.max_time, "batch_size": args.batch_size,
           "block_size": args.block_size, "learning_rate": args.learning_rate, "min_lr": args.min_lr,
           "lr_schedule": args.lr_schedule, "warmup_iters": args.warmup_iters,
           "grad_accum_steps": args.grad_accum_steps, "betas": args.betas,
           "embedding_lr_mult": args.embedding_lr_mult, "optimizer": args.optimizer, "muon_lr": args.muon_lr,
           "muon_momentum": args.muon_momentum, "muon_ns": args.muon_ns, "muon_ns_steps": args.muon_ns_steps,
           "depth_schedule": args.depth_schedule, "eval_interval": args.eval_interval,
           "eval_iters": args.eval_iters, "seed": args.seed,
           "device": args.device, "dtype": args.dtype, "compile": args.compile, "checkpoint": args.checkpoint,
           "patience": args.patience}
    base.update({k: v for k, v in cli.items() if v is not None})
    base.update(out_dir=str(out), progress=not args.no_progress)
    config = TrainConfig.from_dict(base)
    train_data = _encode(tokenizer, train_text, f"the corpus {source}")
    val_data = _encode(tokenizer, val_text, f"the corpus {source}")
    if info.is_main:
        print(_describe_tokenizer(tokenizer, how, train_text, train_data, val_text, val_data))
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
        r = _score(model, val_text, val_data, config.block_size, 64, next(model.parameters()).device)
        print(f"full val split: {_result_line(r)}")
    if history.stop_reason == "interrupted":
        print(f"interrupted; resume with: python -m shakespeare_lm train --out {out} --resume",
              file=sys.stderr)
        return 130
    return 0


def _score(model, val_text: str, val_data: torch.Tensor, block_size, batch_size: int, device) -> dict:
    """Loss over the whole val split, per token and per character (bits/char from evaluate's n_chars:
    a BPE token carries several characters, so only that unit compares tokenizers)."""
    r = evaluate(model, val_data.to(device), block_size, batch_size, n_chars=len(val_text))
    tokens_per_char = len(val_data) / len(val_text)
    return {**r.to_dict(), "chars": len(val_text), "tokens_per_char": tokens_per_char}


def _result_line(r: dict) -> str:
    return (f"val loss {r['loss']:.4f} nats/token ({r['tokens']:,} tokens) | "
            f"{r['bits_per_char']:.4f} bits/char | perplexity {r['perplexity']:.3f}")


def _load(args) -> tuple:
    """(model, tokenizer, meta, device) from --checkpoint or --pretrained; meta is {} for a bundled model."""
    device = pick_device(args.device)  # before loading: "CUDA is not available" beats a traceback
    if args.pretrained:
        model, tokenizer = pretrained(args.pretrained, device=device)
        return model, tokenizer, {}, device
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
    _, val_text = train_val_split(text)  # by characters, as training split it
    val_data = _encode(tokenizer, val_text, f"the corpus {source}")
    block_size = getattr(model, "block_size", None) or (meta.get("train_config") or {}).get("block_size")
    r = _score(model, val_text, val_data, block_size, args.batch_size, device)
    what = {"pretrained": args.pretrained} if args.pretrained else {"checkpoint": meta["path"]}
    if args.json:
        print(json.dumps({**r, **what, "step": meta.get("step"), "data": source,
                          "tokenizer": tokenizer.kind, "vocab_size": tokenizer.vocab_size}))
    else:
        model_name = (f"pretrained model {args.pretrained}" if args.pretrained
                      else f"checkpoint {meta['path']} (step {meta.get('step')})")
        print(f"{model_name}, {tokenizer.kind} tokenizer ({tokenizer.vocab_size:,} tokens), val split of "
              f"{source}: {r['chars']:,} characters, {r['tokens_per_char']:.3f} tokens/char")
        print(_result_line(r))
    return 0


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror and e.filename:  # not "[Errno 13] Permission denied: 'x'"
        return f"{e.strerror}: {e.filename}"
    return " ".join(str(e).split())


def run(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the command; user mistakes become one `error:` line. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate, "sweep": cmd_sweep}
    try:
        return commands[args.command](args)
    except TrainingDivergedError as e:
        print(f"{PROG} {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`generate ... | head`): stop quietly, as Unix tools do
        with contextlib.suppress(OSError, ValueError):  # give the interpreter's final flush somewhere to go
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe
    except (CLIError, CheckpointError, DownloadError, RunDirLockedError, ValueError, OSError) as e:
        print(f"{PROG} {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
