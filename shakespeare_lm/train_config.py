"""What to train with: TrainConfig (every knob of `train`) and the named recipes in TRAIN_PRESETS.

Follows nanoGPT's config variables (config/train_shakespeare_char.py) as one frozen dataclass whose
docstring documents every field, and presets that pair by name with model.PRESETS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .growth import check_depth_schedule
from .precision import COMPILE_MODES, DTYPES
from .utils import check_fields, check_positive_int

LR_SCHEDULES = ("cosine", "wsd")
OPTIMIZERS = ("adamw", "muon")
MUON_NS = ("jordan", "polar-express")  # the Newton-Schulz schedules of optim.ns_coefficients
CHECKPOINT_MODES = ("best", "last", "never")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """Everything `train` needs besides the model and the data (nanoGPT's config variables).

    Batches and steps:
      batch_size         sequences per micro-batch (per process under DDP)
      block_size         context length T of the training windows; at most the model's block_size
      grad_accum_steps   micro-batches per optimizer step (per process under DDP); one step sees
                         batch_size * grad_accum_steps * world_size sequences
      max_iters          optimizer steps in total (a resumed run continues up to this)
    Learning rate (see get_lr):
      learning_rate      peak LR, reached at the end of the warmup
      min_lr             LR at the end of the decay; None = learning_rate / 10
      warmup_iters       steps of linear warmup from ~0 to learning_rate
      lr_decay_iters     step where the decay reaches min_lr (held after it); None = max_iters
      lr_schedule        after the warmup: "cosine" (decay from the peak to min_lr by lr_decay_iters)
                         or "wsd" (warmup-stable-decay: hold the peak, then decay linearly to min_lr
                         over the last decay_fraction of the lr_decay_iters steps; better for short runs)
      decay_fraction     "wsd" only: the share of the schedule spent in the linear decay, in (0, 1]
      embedding_lr_mult  LR multiplier for the embedding tables (and a lm_head tied to the token
                         embedding); 1 = the same LR as every other weight
    Optimizer (see optim.build_optimizer):
      optimizer          "adamw" (every parameter) or "muon": torch.optim.Muon (Jordan et al. 2024,
                         as in modded-nanogpt) for the weight matrices inside the transformer blocks,
                         AdamW for the embeddings, lm_head (tied or not), LayerNorm gains and biases
      muon_lr            "muon" only: the Muon matrices' peak LR; None = 0.02 (the Muon reference's).
                         The schedule scales it like learning_rate: at every step the matrices get
                         get_lr(step) * muon_lr / learning_rate (so the same warmup, decay and
                         min_lr / learning_rate ratio), while AdamW's groups get get_lr(step).
                         Muon's updates are orthogonalised (singular values ~1, scaled by
                         sqrt(max(1, fan_out / fan_in))), so its LR is ~10x an AdamW LR
      muon_momentum      "muon" only: Muon's (Nesterov) momentum; None = 0.95 (torch.optim.Muon's)
      muon_ns            "muon" only: how Newton-Schulz orthogonalises the update: "jordan" (Keller
                         Jordan's quintic, the same every step; torch.optim.Muon's) or "polar-express"
                         (Amsel et al. 2025: a minimax-best quintic for each step, so fewer steps
                         get closer to orthogonal)
      muon_ns_steps      "muon" only: Newton-Schulz steps per update (5 in torch.optim.Muon)
      weight_decay       decay of the weights with dim >= 2 (matrices, embeddings); biases and
                         LayerNorm never decay. Both optimizers decay decoupled: w -= lr * weight_decay * w
      betas              AdamW (beta1, beta2); beta2 0.99 suits small batches (nanoGPT)
      grad_clip          clip the global gradient norm to this; None or 0 = off
    Speed:
      dtype              autocast compute dtype: "auto" (CUDA: bf16 if supported, else fp16 with a
                         GradScaler; CPU: bf16 only for models of 2M+ parameters on CPUs with native
                         bf16), "float32", "bfloat16" or "float16" (CUDA only)
      depth_schedule     progressive stacking (growth.py): (step, blocks) pairs such as ((0, 2), (250, 4)),
                         from each step on train only the model's first `blocks` blocks, the others
                         being identities; where the depth grows, the new blocks start as copies of the
                         ones below (weights and optimizer state). Starts at step 0, ends at the model's
                         n_layer before max_iters. None = every block from the start. A time budget's
                         fitted end (fit_schedule_to_time) assumes every step costs what the first did
      compile            torch.compile: "off", "auto" (CUDA only; if the compiled model fails on a
                         first batch, training runs uncompiled with a warning) or "on" (errors raise)
      device             "auto" (cuda > mps > cpu), "cpu", "cuda", "cuda:1" or "mps"
      seed               seeds dropout and the data order (both seed + rank) and the fixed eval batches
    Evaluation and stopping:
      eval_interval      optimizer steps between loss estimates (and checkpoints)
      eval_iters         fixed batches per split in every loss estimate
      eval_batch_size    sequences per estimate batch; None = batch_size
      patience           stop after this many estimates without a better val loss; None = off
      max_time           time budget of this call in seconds: stop (with a final estimate) when it is
                         spent; None = off
      fit_schedule_to_time  with max_time: once the first steps are timed (the warmup or 5% of the
                         budget), end the run and its LR schedule at the step the budget reaches (at
                         most max_iters), so the decay completes as time runs out; a resumed run keeps
                         that end. False: the schedule follows max_iters and max_time cuts it short
    Output:
      out_dir            run directory for checkpoints and history files (main process only);
                         None = write nothing
      checkpoint         "best" (save checkpoint/ when the val loss improves), "last" (at every
                         estimate) or "never"; Ctrl-C saves interrupted/ ("best") or checkpoint/ ("last")
      progress           a tqdm bar (loss, tokens/s, ETA) and a line per estimate; False = silent
    """

    batch_size: int = 12
    block_size: int = 64
    max_iters: int = 2000
    eval_interval: int = 250
    eval_iters: int = 200
    eval_batch_size: int | None = None
    learning_rate: float = 1e-3
    min_lr: float | None = None
    warmup_iters: int = 100
    lr_decay_iters: int | None = None
    lr_schedule: str = "cosine"
    decay_fraction: float = 0.2
    optimizer: str = "adamw"
    muon_lr: float | None = None
    muon_momentum: float | None = None
    muon_ns: str = "jordan"
    muon_ns_steps: int = 5
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    embedding_lr_mult: float = 1.0
    grad_clip: float | None = 1.0
    grad_accum_steps: int = 1
    dtype: str = "auto"
    depth_schedule: tuple[tuple[int, int], ...] | None = None
    compile: str = "auto"
    device: str = "auto"
    seed: int = 1337
    out_dir: str | None = None
    checkpoint: str = "best"
    patience: int | None = None
    max_time: float | None = None
    fit_schedule_to_time: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "block_size", "max_iters", "eval_interval", "eval_iters",
                     "grad_accum_steps"):
            check_positive_int(f"TrainConfig.{name}", getattr(self, name))
        for name in ("eval_batch_size", "patience"):  # None = the default / off
            if getattr(self, name) is not None:
                check_positive_int(f"TrainConfig.{name}", getattr(self, name))
        if not isinstance(self.warmup_iters, int) or self.warmup_iters < 0:
            raise ValueError(f"TrainConfig.warmup_iters must be an integer >= 0, got {self.warmup_iters!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate!r}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.learning_rate:
            raise ValueError(f"TrainConfig.min_lr must be between 0 and learning_rate "
                             f"({self.learning_rate}), got {self.min_lr!r}")
        if self.lr_decay_iters is not None and self.lr_decay_iters < self.warmup_iters:
            raise ValueError(f"TrainConfig.lr_decay_iters ({self.lr_decay_iters}) must be >= "
                             f"warmup_iters ({self.warmup_iters})")
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"TrainConfig.decay_fraction must be in (0, 1], got {self.decay_fraction!r}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if not self.embedding_lr_mult > 0:
            raise ValueError(f"TrainConfig.embedding_lr_mult must be > 0, got {self.embedding_lr_mult!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))  # JSON gives lists
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ValueError(f"TrainConfig.grad_clip must be >= 0 or None, got {self.grad_clip!r}")
        for name, allowed in (("lr_schedule", LR_SCHEDULES), ("dtype", DTYPES), ("compile", COMPILE_MODES),
                              ("checkpoint", CHECKPOINT_MODES), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {', '.join(map(repr, allowed))}, "
                                 f"got {getattr(self, name)!r}")
        if self.muon_lr is not None:
            if not _is_number(self.muon_lr) or not self.muon_lr > 0:
                raise ValueError(f"TrainConfig.muon_lr must be a number > 0 or None, got {self.muon_lr!r}")
            if self.optimizer != "muon":
                raise ValueError(f"TrainConfig.muon_lr applies to optimizer='muon' only (optimizer is "
                                 f"{self.optimizer!r}); set optimizer='muon' or leave muon_lr None")
        momentum = self.muon_momentum
        if momentum is not None and not (_is_number(momentum) and 0 <= momentum < 1):
            raise ValueError(f"TrainConfig.muon_momentum must be a number in [0, 1) or None, "
                             f"got {self.muon_momentum!r}")
        if self.muon_ns not in MUON_NS:
            raise ValueError(f"TrainConfig.muon_ns must be one of {', '.join(map(repr, MUON_NS))}, "
                             f"got {self.muon_ns!r}")
        check_positive_int("TrainConfig.muon_ns_steps", self.muon_ns_steps)
        muon_only = ("muon_momentum", "muon_ns", "muon_ns_steps")
        changed = [f.name for f in dataclasses.fields(self)  # a Muon option away from its default
                   if f.name in muon_only and getattr(self, f.name) != f.default]
        if changed and self.optimizer != "muon":
            raise ValueError(f"TrainConfig.{changed[0]} applies to optimizer='muon' only (optimizer is "
                             f"{self.optimizer!r})")
        if self.depth_schedule is not None:  # JSON gives lists: stored as a tuple of int pairs
            pairs = check_depth_schedule(self.depth_schedule, self.max_iters)
            object.__setattr__(self, "depth_schedule", pairs)
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"TrainConfig.max_time must be > 0 seconds or None, got {self.max_time!r}")
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", str(self.out_dir))

    @property
    def final_lr(self) -> float:
        """The LR the decay ends at (min_lr, or learning_rate / 10 when unset)."""
        return self.learning_rate / 10 if self.min_lr is None else self.min_lr

    @property
    def decay_iters(self) -> int:
        """The step where the decay reaches final_lr (lr_decay_iters, or max_iters when unset)."""
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        check_fields(cls, d, "TrainConfig")
        return cls(**d)


# Training recipes paired by name with model.PRESETS (the same keys).
TRAIN_PRESETS: dict[str, TrainConfig] = {
    # seconds on a CPU; for tests and smoke runs
    "tiny": TrainConfig(batch_size=8, block_size=16, max_iters=30, eval_interval=10, eval_iters=4,
                        learning_rate=3e-3, warmup_iters=5, dtype="float32", compile="off", progress=False),
    # the CPU speed record (benchmarks/train_speed.py): Muon on the block's matrices, AdamW on the rest,
    # warmup-stable-decay; val 1.8810 on the full split at step 320
    "cpu-fast": TrainConfig(batch_size=16, block_size=64, max_iters=330, eval_interval=110, eval_iters=20,
                            learning_rate=4e-3, min_lr=0.0, warmup_iters=10, lr_schedule="wsd",
                            decay_fraction=0.7, embedding_lr_mult=5.0, betas=(0.8, 0.99), weight_decay=0.1,
                            grad_clip=1.0, optimizer="muon", muon_lr=0.015, dtype="float32"),
    # nanoGPT's CPU recipe, retuned for speed on a 2-core CPU (see benchmarks/train_speed.py)
    "cpu-small": TrainConfig(batch_size=32, block_size=64, max_iters=2000, eval_interval=250,
                             eval_iters=20, eval_batch_size=64, learning_rate=2e-3, min_lr=2e-4,
                             warmup_iters=50, dtype="float32"),
    # nanoGPT's CPU command (README "I only have a macbook"): the reference of benchmarks/train_speed.py
    "nanogpt-cpu": TrainConfig(batch_size=12, block_size=64, max_iters=2000, eval_interval=250,
                               eval_iters=20, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
                               lr_decay_iters=2000, betas=(0.9, 0.99), weight_decay=0.1, dtype="float32"),
    # nanoGPT config/train_shakespeare_char.py
    "baby-gpt": TrainConfig(batch_size=64, block_size=256, max_iters=5000, eval_interval=250,
                            eval_iters=200, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
                            lr_decay_iters=5000, betas=(0.9, 0.99), weight_decay=0.1),
}


def get_train_preset(name: str, **overrides: Any) -> TrainConfig:
    """TRAIN_PRESETS[name] with some fields replaced, e.g. get_train_preset("tiny", max_iters=5)."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}")
    return dataclasses.replace(TRAIN_PRESETS[name], **overrides)


__all__ = [
    "CHECKPOINT_MODES", "COMPILE_MODES", "LR_SCHEDULES", "MUON_NS", "OPTIMIZERS", "TRAIN_PRESETS",
    "TrainConfig", "get_train_preset",
]
