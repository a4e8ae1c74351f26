"""The command line's arguments: `build_parser()` for `python -m shakespeare_lm train|generate|evaluate|...`.

Follows nanoGPT's train.py / sample.py options, as argparse subcommands whose argument types reject a
bad value with one line naming what was expected. The commands themselves are in cli.py.
"""

from __future__ import annotations

import argparse
import math

from .bundled import PRETRAINED_MODELS
from .growth import parse_depth_schedule
from .model import PRESETS
from .model_config import ACTIVATIONS, POS_ENCODINGS
from .optim import MUON_LR, MUON_MOMENTUM
from .precision import DTYPES
from .tokenizer import TOKENIZERS
from .train_config import CHECKPOINT_MODES, COMPILE_MODES, LR_SCHEDULES, MUON_NS, OPTIMIZERS, TRAIN_PRESETS
from .utils import check_positive_int

PROG = "shakespeare-lm"
DEFAULT_PRESET = "cpu-small"
_EPILOG = """examples:
  python -m shakespeare_lm train --preset cpu-small --out runs/cpu-small
  python -m shakespeare_lm train --out runs/cpu-small --resume --max-iters 4000
  python -m shakespeare_lm train --tokenizer bpe --vocab-size 512 --out runs/bpe-512
  python -m shakespeare_lm generate --checkpoint runs/cpu-small --prompt "ROMEO:" --stream
  python -m shakespeare_lm evaluate --checkpoint runs/bpe-512
  python -m shakespeare_lm generate --pretrained cpu-small --prompt "ROMEO:"
  python -m shakespeare_lm evaluate --pretrained cpu-small
  torchrun --nproc_per_node=4 -m shakespeare_lm train --preset baby-gpt --out runs/baby-gpt
  python -m shakespeare_lm sweep --grid learning_rate=1e-3,3e-3 --grid n_layer=2,4 --tokens 200000 --out r1
  python -m shakespeare_lm sweep --log-uniform learning_rate=1e-4:1e-2 --trials 8 --tokens 200000 --out r2

evaluate reports the loss per token and bits per character: only the latter compares models
with different tokenizers (a BPE token holds several characters, so its loss per token is larger).
"""


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


def _depth_schedule(s: str) -> tuple[tuple[int, int], ...]:
    try:
        return parse_depth_schedule(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
    t.add_argument("--tokenizer", choices=list(TOKENIZERS),
                   help="char: one token per character (default); bpe: byte-level BPE; word: the most "
                        "frequent words + <unk>; bpe and word are trained on the train split only "
                        "(on --resume: the run's own)")
    t.add_argument("--vocab-size", type=_positive_int, metavar="N",
                   help="tokens in the vocabulary, for --tokenizer bpe (at least 256, the bytes) and word; "
                        "a char vocabulary is the corpus's characters")
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
    t.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="adamw (default), or muon: Muon on the blocks' weight matrices, AdamW on the rest")
    t.add_argument("--muon-lr", type=_positive_float, metavar="LR",
                   help=f"--optimizer muon: peak LR of the Muon matrices (default {MUON_LR:g})")
    t.add_argument("--muon-momentum", type=float, metavar="M",
                   help=f"--optimizer muon: momentum (default {MUON_MOMENTUM:g})")
    t.add_argument("--muon-ns", choices=MUON_NS,
                   help="--optimizer muon: Newton-Schulz coefficients, Jordan's (default) or Polar Express's")
    t.add_argument("--muon-ns-steps", type=_positive_int, metavar="N",
                   help="--optimizer muon: Newton-Schulz steps per update (default 5)")
    t.add_argument("--depth-schedule", type=_depth_schedule, metavar="STEP:BLOCKS,...",
                   help="progressive stacking: train the first BLOCKS blocks from each STEP on, copying them "
                        "on top where the depth grows, e.g. 0:2,250:4 (a 4-layer model)")
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
    m = t.add_argument_group("model options of notebook 10 (a new run; a resumed run keeps its own)")
    m.add_argument("--pos-encoding", choices=POS_ENCODINGS,
                   help="positions: a learned table (default), the 2017 sinusoidal table, or rotary (rope)")
    m.add_argument("--activation", choices=ACTIVATIONS,
                   help="feed-forward: relu (the lecture), gelu (GPT-2) or relu2 (default: the preset's)")
    m.add_argument("--qk-norm", action="store_true", default=None, help="RMS-normalise queries and keys")
    m.add_argument("--untied", dest="tie_weights", action="store_false", default=None,
                   help="give lm_head its own weights instead of the token embedding's")
    m.add_argument("--attn-bias", action="store_true", default=None,
                   help="biases in the query/key/value projections")


def _model_source(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="DIR", help="checkpoint or run directory")
    src.add_argument("--pretrained", choices=list(PRETRAINED_MODELS),
                     help="a model shipped with the package, trained on Tiny Shakespeare (loads offline)")


def _sweep_parser(sub) -> None:
    s = sub.add_parser("sweep", help="train one model per point of a search space, all with the same budget",
                       description="Train one GPT per point of a grid (or per random / TPE trial) under the "
                       "same budget and append each result as a JSON line to DIR/results.jsonl. Run the same "
                       "command again to resume: recorded points are not trained again. Values are typed "
                       "by the GPTConfig or TrainConfig field they set.")
    s.add_argument("--out", required=True, metavar="DIR", help="sweep directory (results.jsonl, sweep.json)")
    s.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                   help="values of one field, e.g. learning_rate=1e-3,3e-3 or n_layer=2,4 (repeatable; with "
                        "--trials, a random choice among them)")
    s.add_argument("--log-uniform", action="append", metavar="NAME=LOW:HIGH",
                   help="a range sampled on a log scale, e.g. learning_rate=1e-4:1e-2 (needs --trials)")
    s.add_argument("--uniform", action="append", metavar="NAME=LOW:HIGH",
                   help="a range sampled uniformly (integers for an integer field; needs --trials)")
    s.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="change one field of the preset for every run, e.g. eval_iters=10 (repeatable)")
    budget = s.add_mutually_exclusive_group(required=True)
    budget.add_argument("--tokens", type=_positive_int, help="training tokens per run (reproducible)")
    budget.add_argument("--flops", type=_positive_float,
                        help="compute per run: tokens = FLOPS / (6 x non-embedding parameters)")
    budget.add_argument("--seconds", type=_positive_float, help="training time per run")
    s.add_argument("--trials", type=_positive_int, metavar="N", help="random search: N runs")
    s.add_argument("--method", choices=("grid", "random", "tpe"),
                   help="grid (default), random (default with --trials) or tpe (Optuna's TPE sampler)")
    s.add_argument("--preset", choices=[name for name in TRAIN_PRESETS if name in PRESETS],
                   default=DEFAULT_PRESET, help="model + training recipe the points change (default: "
                   "%(default)s)")
    s.add_argument("--data", metavar="FILE", help="UTF-8 text file to train on (default: Tiny Shakespeare)")
    s.add_argument("--eval-every", type=_positive_int, default=1, metavar="N",
                   help="final val loss over every Nth window of the val split (default 1: all of it)")
    s.add_argument("--prune", action="store_true",
                   help="stop runs whose val estimates trail the earlier runs' median (Optuna MedianPruner)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random / TPE sampler (default 0)")
    s.add_argument("--max-runs", type=_positive_int, metavar="N", help="train at most N new points and stop")
    s.add_argument("--threads", type=_positive_int, help="CPU threads for torch (default: torch's choice)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train, sample and evaluate GPTs on Tiny Shakespeare: "
                     "character-level by default, or with a BPE or word tokenizer.",
                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{train,generate,evaluate,sweep}",
                                parser_class=_Parser)
    sub.required = True
    _train_parser(sub)

    g = sub.add_parser("generate", help="sample text from a checkpoint or a bundled model",
                       description="Sample text from a checkpoint or a model shipped with the package.")
    _model_source(g)
    g.add_argument("--prompt", help="text to continue (default: a newline, or a space if the vocabulary "
                                    "has no newline)")
    g.add_argument("--max-new-tokens", type=_positive_int, default=500,
                   help="tokens to generate (characters, for a char model)")
    g.add_argument("--temperature", type=_non_negative_float, default=0.8,
                   help="<1 sharper, >1 more random, 0 = always the most likely token")
    g.add_argument("--top-k", type=_positive_int, help="sample only from the k most likely tokens")
    g.add_argument("--top-p", type=_probability,
                   help="sample from the smallest set of tokens with this total probability")
    g.add_argument("--seed", type=int, help="random seed, for repeatable samples")
    g.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N | mps (default: %(default)s)")
    g.add_argument("--window-stride", type=_positive_int, default=1,
                   help="past the context length, re-crop the window every N tokens instead of every "
                        "token, so the KV cache keeps working (faster; default 1 = the lecture's crop)")
    g.add_argument("--stream", action="store_true", help="print the text as it is generated")

    e = sub.add_parser("evaluate", help="loss per token, bits per character and perplexity on the val split",
                       description="Evaluate a checkpoint (or a bundled model) on the whole validation split "
                       "(the last 10% of the characters) of its corpus.")
    _model_source(e)
    e.add_argument("--data", metavar="FILE",
                   help="text file to evaluate on (default: the training corpus; Tiny Shakespeare for "
                        "--pretrained)")
    e.add_argument("--batch-size", type=_positive_int, default=64, help="windows per batch")
    e.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N | mps (default: %(default)s)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    _sweep_parser(sub)
    return parser
