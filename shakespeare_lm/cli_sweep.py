"""The `sweep` command: `python -m shakespeare_lm sweep --grid learning_rate=1e-3,3e-3 --tokens N --out DIR`.

Turns the command line's NAME=VALUES arguments into a search space for tuning.sweep (values typed by
the field they set, as Optuna's categorical and float distributions) and prints the table of results.
The arguments are declared in cli_parser.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import torch

from .data import load_shakespeare, load_text, train_val_split
from .model_config import get_preset
from .tokenizer import CharTokenizer
from .train_config import TRAIN_PRESETS, TrainConfig
from .tuning import RESULTS_FILE, sweep
from .tuning_space import SET_BY_SWEEP, log_uniform, parse_value, uniform


def _split(arg: str, flag: str) -> tuple[str, str]:
    name, sep, values = arg.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ValueError(f"{flag} expects NAME=VALUES (e.g. {flag} learning_rate=1e-3,3e-3), got {arg!r}")
    return name.strip(), values


def _range(arg: str, flag: str, make):
    name, values = _split(arg, flag)
    ends = values.split(":")
    if len(ends) != 2:
        raise ValueError(f"{flag} expects NAME=LOW:HIGH (e.g. {flag} learning_rate=1e-4:1e-2), got {arg!r}")
    low, high = (parse_value(name, e) for e in ends)
    number = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not number or not low < high or (make is log_uniform and low <= 0):
        need = "0 < LOW < HIGH" if make is log_uniform else "LOW < HIGH"
        raise ValueError(f"{flag} {name}: expected two numbers with {need}, got {values!r}")
    return name, make(low, high)


def space_from_args(args) -> dict:
    """The search space of --grid, --log-uniform and --uniform (one field may appear once)."""
    space: dict = {}
    items = [(a, "--grid") for a in args.grid or []]
    items += [(a, "--log-uniform") for a in args.log_uniform or []]
    items += [(a, "--uniform") for a in args.uniform or []]
    for arg, flag in items:
        if flag == "--grid":
            name, values = _split(arg, flag)
            entry = [parse_value(name, v) for v in values.split(",")]
        else:
            name, entry = _range(arg, flag, log_uniform if flag == "--log-uniform" else uniform)
        if name in space:
            raise ValueError(f"{name} is given twice; put all its values in one {flag} {name}=...")
        space[name] = entry
    if not space:
        raise ValueError("nothing to sweep: give --grid NAME=V1,V2 (or --log-uniform/--uniform and --trials)")
    return space


def _fixed(args) -> dict:
    fixed = {}
    for arg in args.set or []:
        name, value = _split(arg, "--set")
        if name in SET_BY_SWEEP:
            raise ValueError(f"--set {name}: {SET_BY_SWEEP[name]}")
        fixed[name] = parse_value(name, value)
    return fixed


def cmd_sweep(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    space = space_from_args(args)
    ranges = [n for n, v in space.items() if not isinstance(v, list)]
    method = args.method or ("random" if args.trials else "grid")
    if ranges and method == "grid":
        raise ValueError(f"{', '.join(ranges)}: a range needs random search: add --trials N")
    if method != "grid" and not args.trials:
        raise ValueError(f"--method {method} needs --trials N (how many runs)")
    text = load_text(args.data) if args.data else load_shakespeare()
    tok = CharTokenizer.from_text(text)
    train_text, val_text = train_val_split(text)
    train_data = torch.tensor(tok.encode(train_text), dtype=torch.long)
    val_data = torch.tensor(tok.encode(val_text), dtype=torch.long)
    fixed = _fixed(args)
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_fields = set(fixed) - train_fields | ({"block_size"} & set(fixed))
    model_config = get_preset(args.preset, tokenizer=tok, **{k: fixed[k] for k in model_fields})
    train_config = dataclasses.replace(TRAIN_PRESETS[args.preset], **{k: v for k, v in fixed.items()
                                                                       if k in train_fields})
    out = Path(args.out).expanduser()
    result = sweep(space, train_data, val_data, model_config, train_config, tokens=args.tokens,
                   flops=args.flops, seconds=args.seconds, method=method, n_trials=args.trials,
                   seed=args.seed, out_dir=out, eval_every=args.eval_every,
                   pruner=optuna.pruners.MedianPruner(n_startup_trials=2) if args.prune else None,
                   max_runs=args.max_runs,
                   progress=not args.no_progress)
    print(result.table())
    best = result.best
    if best is not None:
        shown = " ".join(f"{k}={v}" for k, v in best["params"].items())
        print(f"best: {shown}, val loss {best['val_loss']:.4f}")
    print(f"{len(result)} runs recorded in {out / RESULTS_FILE}")
    if result.interrupted:
        print("interrupted; run the same command again to resume")
        return 130
    return 0

