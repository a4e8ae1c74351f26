"""The training loop: AdamW, warmup + cosine LR, mixed precision, accumulation, DDP, checkpoints.

Follows nanoGPT's train.py (and the Zero-to-Hero GPT lecture's `estimate_loss`), as one function
`train(model, train_data, val_data, config) -> History` that works for every model in the package.
Shapes: B batch, T time (block_size), V vocab.

Callbacks: any object with some of `on_step(state)` (after every optimizer step), `on_eval(state)`
(after every loss estimate) and `on_train_end(state)`, or a plain function (called as on_eval).
`state` is a TrainState; set `state.stop = True` to end training gracefully (with a final eval).
Under DDP they run on rank 0 only.

Several processes: launched by `torchrun`, `train` joins the process group (nccl on CUDA, gloo on
CPU), wraps the model in DistributedDataParallel, gives each rank its own data order
(seed + rank), skips the gradient all-reduce on accumulation micro-steps (`no_sync`), and lets
only rank 0 print, call callbacks and write files. batch_size and grad_accum_steps are per rank:
one optimizer step sees batch_size * grad_accum_steps * world_size sequences.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import get_batch
from .evaluation import estimate_loss
from .optim import configure_optimizer
from .precision import DTYPES, autocast_context, resolve_dtype
from .utils import atomic_write, pick_device

COMPILE_MODES = ("off", "auto", "on")
LR_SCHEDULES = ("cosine", "wsd")
CHECKPOINT_MODES = ("best", "last", "never")



class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint was left untouched."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything `train` needs besides the model and the data (nanoGPT's config variables)."""

    batch_size: int = 12  # sequences per micro-batch (per process under DDP)
    block_size: int = 64  # context length T of training windows; at most the model's block_size
    max_iters: int = 2000  # optimizer steps in total (a resumed run continues up to this)
    eval_interval: int = 250  # optimizer steps between loss estimates (and checkpoints)
    eval_iters: int = 200  # fixed batches per split in every loss estimate
    eval_batch_size: int | None = None  # batch size of estimate batches; None = batch_size
    learning_rate: float = 1e-3  # peak LR, reached at the end of warmup
    min_lr: float | None = None  # LR at the end of the cosine decay; None = learning_rate / 10
    warmup_iters: int = 100  # linear warmup steps
    lr_decay_iters: int | None = None  # step where the cosine reaches min_lr; None = max_iters
    # after warmup: "cosine" (decay from the peak to min_lr by lr_decay_iters) | "wsd"
    # (warmup-stable-decay: hold the peak, then decay linearly to min_lr over the last
    # decay_fraction of the lr_decay_iters steps; better for short runs, see benchmarks/train_speed.py)
    lr_schedule: str = "cosine"
    decay_fraction: float = 0.2  # "wsd" only: share of the schedule spent in the linear decay, in (0, 1]
    weight_decay: float = 0.1  # AdamW decay, applied only to weights with dim >= 2
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW betas (beta2 0.99: small batches, nanoGPT)
    embedding_lr_mult: float = 1.0  # LR multiplier for the embedding tables (and the lm_head tied to one)
    grad_clip: float | None = 1.0  # clip the global grad norm to this; None or 0 = off
    grad_accum_steps: int = 1  # micro-batches per optimizer step (per process under DDP)
    dtype: str = "auto"  # "auto" | "float32" | "bfloat16" | "float16" (autocast compute dtype)
    compile: str = "auto"  # "off" | "auto" (CUDA only, falls back with a warning) | "on"
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" | "mps"
    seed: int = 1337  # seeds dropout, the data order (seed + rank) and the fixed eval batches
    out_dir: str | None = None  # where checkpoints and history files go; None = write nothing
    checkpoint: str = "best"  # "best": when val improves | "last": every eval | "never"
    patience: int | None = None  # stop after this many evals without val improvement; None = off
    max_time: float | None = None  # stop (with a final eval) after this many seconds; None = off
    progress: bool = True  # show a tqdm bar (loss, tokens/s, ETA) and print each eval; False = silent

    def __post_init__(self) -> None:
        for name in ("batch_size", "block_size", "max_iters", "eval_interval", "eval_iters",
                     "grad_accum_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if self.eval_batch_size is not None and (
            not isinstance(self.eval_batch_size, int) or self.eval_batch_size < 1
        ):
            raise ValueError(f"TrainConfig.eval_batch_size must be a positive integer or None, "
                             f"got {self.eval_batch_size!r}")
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
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"TrainConfig.lr_schedule must be one of {', '.join(map(repr, LR_SCHEDULES))}, "
                             f"got {self.lr_schedule!r}")
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
        for name, allowed in (("dtype", DTYPES), ("compile", COMPILE_MODES), ("checkpoint", CHECKPOINT_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {', '.join(map(repr, allowed))}, "
                                 f"got {getattr(self, name)!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"TrainConfig.patience must be a positive integer or None, "
                             f"got {self.patience!r}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"TrainConfig.max_time must be > 0 seconds or None, got {self.max_time!r}")
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", str(self.out_dir))

    @property
    def final_lr(self) -> float:
        """The LR the cosine decays to (min_lr, or learning_rate / 10 when unset)."""
        return self.learning_rate / 10 if self.min_lr is None else self.min_lr

    @property
    def decay_iters(self) -> int:
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**d)


# Training recipes paired by name with model.PRESETS (the same keys).
TRAIN_PRESETS: dict[str, TrainConfig] = {
    # seconds on a CPU; for tests and smoke runs
    "tiny": TrainConfig(batch_size=8, block_size=16, max_iters=30, eval_interval=10, eval_iters=4,
                        learning_rate=3e-3, warmup_iters=5, dtype="float32", compile="off", progress=False),
    # nanoGPT's CPU recipe, retuned for speed on a 2-core CPU (see benchmarks/train_speed.py)
    "cpu-small": TrainConfig(batch_size=32, block_size=64, max_iters=2000, eval_interval=250,
                             eval_iters=20, eval_batch_size=64, learning_rate=2e-3, min_lr=2e-4,
                             warmup_iters=50, dtype="float32"),
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


def get_lr(step: int, config: TrainConfig) -> float:
    """LR for optimizer step `step` (0-based): linear warmup, then cosine decay to min_lr
    (lr_schedule "cosine"), or the peak held and then a linear decay to min_lr over the last
    decay_fraction of the decay_iters steps ("wsd")."""
    lr, min_lr = config.learning_rate, config.final_lr
    warmup, decay_iters = config.warmup_iters, config.decay_iters
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= decay_iters:
        return min_lr
    if config.lr_schedule == "wsd":
        decay_start = max(warmup, decay_iters - round(config.decay_fraction * decay_iters))
        if step < decay_start:
            return lr
        return lr + (min_lr - lr) * (step - decay_start) / (decay_iters - decay_start)
    ratio = (step - warmup) / (decay_iters - warmup)  # 0 -> 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return min_lr + coeff * (lr - min_lr)


@dataclass
class History:
    """Training curves: one record per evaluation, plus the train loss of every optimizer step."""

    records: list[dict] = field(default_factory=list)  # one dict per eval with the FIELDS below
    iter_losses: list[float] = field(default_factory=list)  # train loss of optimizer step i+1
    stop_reason: str | None = None  # "max_iters" | "max_time" | "patience" | "callback" | "interrupted"

    FIELDS = ("step", "train_loss", "val_loss", "lr", "tokens_per_sec", "elapsed")

    def __len__(self) -> int:
        return len(self.records)

    def column(self, name: str) -> list:
        return [r[name] for r in self.records]

    @property
    def steps(self) -> list[int]:
        return self.column("step")

    @property
    def train_loss(self) -> list[float]:
        return self.column("train_loss")

    @property
    def val_loss(self) -> list[float]:
        return self.column("val_loss")

    @property
    def lr(self) -> list[float]:
        return self.column("lr")

    @property
    def best_val_loss(self) -> float | None:
        vals = [v for v in self.val_loss if v is not None]
        return min(vals) if vals else None

    def to_dict(self) -> dict:
        return {"records": self.records, "iter_losses": self.iter_losses, "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(records=list(d.get("records", [])), iter_losses=list(d.get("iter_losses", [])),
                   stop_reason=d.get("stop_reason"))

    def to_csv(self, path: str | os.PathLike) -> None:
        """One line per evaluation, header first (written atomically)."""
        with atomic_write(path) as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.records)

    def to_jsonl(self, path: str | os.PathLike) -> None:
        """One JSON object per evaluation (written atomically)."""
        with atomic_write(path) as f:
            for r in self.records:
                f.write(json.dumps(r) + "\n")

    def save(self, out_dir: str | os.PathLike) -> None:
        """history.csv and history.jsonl (per eval) and iter_losses.json (per step) in out_dir."""
        out_dir = Path(out_dir)
        self.to_csv(out_dir / "history.csv")
        self.to_jsonl(out_dir / "history.jsonl")
        with atomic_write(out_dir / "iter_losses.json") as f:
            json.dump(self.iter_losses, f)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike) -> History:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls(records=[json.loads(line) for line in lines if line.strip()])


@dataclass
class TrainState:
    """What callbacks see. Set `stop = True` to end training after the current step."""

    config: TrainConfig  # the run's configuration
    model: nn.Module  # the bare model (not compiled, not DDP-wrapped)
    optimizer: torch.optim.Optimizer  # its AdamW
    history: History  # curves so far
    step: int = 0  # optimizer steps completed
    loss: float | None = None  # train loss of the last step
    lr: float = 0.0  # LR of the last step
    val_loss: float | None = None  # last estimated val loss
    best_val_loss: float | None = None  # best estimated val loss so far
    elapsed: float = 0.0  # seconds of training, including earlier runs when resumed
    tokens_per_sec: float = 0.0  # throughput since the previous eval
    stop: bool = False  # set by a callback to stop gracefully


def _call(callbacks: Iterable, hook: str, state: TrainState) -> None:
    """Callbacks are objects with any of on_step / on_eval / on_train_end, or plain callables (= on_eval)."""
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is None and hook == "on_eval" and callable(cb) and not hasattr(cb, "on_step"):
            fn = cb
        if fn is not None:
            fn(state)



def _check_data(data: torch.Tensor, name: str, block_size: int) -> None:
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise TypeError(f"{name} must be a 1-D tensor of token ids, e.g. torch.tensor(tok.encode(text))")
    if len(data) <= block_size:
        raise ValueError(f"{name} has {len(data)} tokens, too few for block_size={block_size}; "
                         "use a smaller block_size or more text")


def _maybe_compile(model: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """torch.compile per TrainConfig.compile. "auto" compiles on CUDA only: on CPU, compiling
    these small models costs more seconds than it saves in a short run."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return model
    if not hasattr(torch, "compile"):
        if mode == "on":
            raise RuntimeError("compile='on' but this torch has no torch.compile; use compile='off'")
        return model
    return torch.compile(model)


def train(
    model: nn.Module,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    config: TrainConfig | None = None,
    callbacks: Iterable = (),
    resume_from: str | os.PathLike | None = None,
    tokenizer=None,
    *,
    meta: dict | None = None,
) -> History:
    """Train `model` in place on token tensors and return its History.

    Evaluates (fixed batches, both splits) at step 0, every `eval_interval` steps and at the
    end; writes checkpoints and history files to `config.out_dir` if set (rank 0 only).
    `resume_from` (a checkpoint or run directory) continues the same LR schedule, data order and
    RNG. A NaN/inf loss raises TrainingDivergedError without touching the last good checkpoint;
    Ctrl-C saves a checkpoint and returns the history so far. `meta` is extra JSON stored in
    checkpoints (e.g. the data source). Under `torchrun` this runs DDP (see distributed.py).
    Seeds torch's global RNG (dropout) with `config.seed + rank`.
    """
    from .distributed import init_distributed

    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    _check_data(train_data, "train_data", config.block_size)
    _check_data(val_data, "val_data", config.block_size)
    model_block = getattr(model, "block_size", None)
    if model_block is not None and config.block_size > model_block:
        raise ValueError(f"TrainConfig.block_size={config.block_size} exceeds the model's block_size="
                         f"{model_block}; lower it or build a model with a longer context")
    device = pick_device(config.device)
    info, device, started = init_distributed(device)
    try:
        return _train(model, train_data, val_data, config, list(callbacks), resume_from, tokenizer,
                      dict(meta or {}), info, device)
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(model, train_data, val_data, config, callbacks, resume_from, tokenizer, meta, info, device):
    from tqdm.auto import tqdm

    from . import checkpoint as ckpt
    from .distributed import all_ranks_agree

    model.to(device)
    model.train()
    raw_model = model
    ptdtype = resolve_dtype(config.dtype, device, model)
    optimizer = configure_optimizer(model, config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=ptdtype == torch.float16)
    out_dir = Path(config.out_dir) if config.out_dir is not None and info.is_main else None
    meta = {**meta, "dtype": str(ptdtype).removeprefix("torch."), "world_size": info.world_size}

    data_gen = torch.Generator().manual_seed(config.seed + info.rank)  # per-rank data order
    eval_seed = config.seed + 1_000_003  # fixed eval batches, the same on every rank
    history, step, best = History(), 0, None
    if resume_from is not None:
        path = ckpt.find_resume_checkpoint(resume_from)
        saved = ckpt.load_training_state(path, model, optimizer, device=device)
        step, best = saved["step"], saved.get("best_val_loss")
        history = History.from_dict(saved.get("extra", {}).get("history", {}))
        history.stop_reason = None
        ckpt.restore_rng_state(saved["rng_state"], data_gen, rank=info.rank)
        if scaler.is_enabled() and saved.get("extra", {}).get("grad_scaler"):
            scaler.load_state_dict(saved["extra"]["grad_scaler"])
    else:
        torch.manual_seed(config.seed + info.rank)  # dropout

    compiled = _maybe_compile(model, config.compile, device)
    fwd_model = compiled
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd_model = DDP(compiled, device_ids=[device.index] if device.type == "cuda" else None)
    eval_model = compiled  # not DDP-wrapped: every rank estimates on the same fixed batches

    state = TrainState(config=config, model=raw_model, optimizer=optimizer, history=history, step=step,
                       best_val_loss=best)
    prev_elapsed = history.records[-1]["elapsed"] if history.records else 0.0
    tokens_per_step = config.batch_size * config.block_size * config.grad_accum_steps * info.world_size
    eval_batch = config.eval_batch_size or config.batch_size
    evals_since_best = 0
    t0 = time.perf_counter()
    clock = {"t": t0, "step": step, "eval_s": 0.0}  # throughput since the previous eval

    def save(name: str) -> None:
        # Collective (gathers every rank's RNG), so all ranks call it; only rank 0 writes.
        rng = ckpt.capture_rng_state(data_gen, info=info, device=device)
        if out_dir is None or config.checkpoint == "never":
            return
        extra = {**meta, "history": history.to_dict()}
        if scaler.is_enabled():
            extra["grad_scaler"] = scaler.state_dict()
        ckpt.save_checkpoint(out_dir / name, raw_model, optimizer, tokenizer, config, step=step,
                             best_val_loss=best, rng_state=rng, extra=extra)

    def do_eval() -> None:
        nonlocal best, evals_since_best
        t_eval = time.perf_counter()
        losses = estimate_loss(eval_model, {"train": train_data, "val": val_data}, eval_batch,
                               config.block_size, config.eval_iters, eval_seed, dtype=ptdtype)
        now = time.perf_counter()
        train_s = (t_eval - clock["t"]) - clock["eval_s"]
        done = step - clock["step"]
        tps = done * tokens_per_step / train_s if done and train_s > 0 else 0.0
        clock.update(t=now, step=step, eval_s=0.0)
        record = {"step": step, "train_loss": losses["train"], "val_loss": losses["val"],
                  "lr": get_lr(max(step - 1, 0), config), "tokens_per_sec": tps,
                  "elapsed": prev_elapsed + now - t0}
        history.records.append(record)
        improved = best is None or losses["val"] < best
        best = losses["val"] if improved else best
        evals_since_best = 0 if improved else evals_since_best + 1
        state.val_loss, state.best_val_loss, state.tokens_per_sec = losses["val"], best, tps
        state.elapsed = record["elapsed"]
        if config.checkpoint == "last" or (config.checkpoint == "best" and improved):
            save("checkpoint")
        if out_dir is not None:
            history.save(out_dir)
        if info.is_main:
            if config.progress:
                bar.write(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
            _call(callbacks, "on_eval", state)
        clock["eval_s"] += time.perf_counter() - now  # saving and callbacks are not training time

    bar = tqdm(total=config.max_iters, initial=step, disable=not (config.progress and info.is_main),
               desc="training", unit="step", dynamic_ncols=True)
    accum = config.grad_accum_steps
    compile_checked = compiled is raw_model or config.compile != "auto"  # "auto" falls back once
    try:
        if step == 0 and not history.records:
            do_eval()
        while step < config.max_iters:
            lr = get_lr(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
            loss_sum = torch.zeros((), device=device)
            for micro in range(accum):
                x, y = get_batch(train_data, config.batch_size, config.block_size, generator=data_gen,
                                 device=device)  # (B, T)
                # skip the gradient all-reduce on all but the last micro-step
                sync = fwd_model.no_sync() if info.enabled and micro < accum - 1 else contextlib.nullcontext()
                with sync:
                    try:
                        with autocast_context(device, ptdtype):
                            _, loss = fwd_model(x, y)
                    except Exception as e:
                        if compile_checked:
                            raise
                        warnings.warn(f"torch.compile failed ({type(e).__name__}); training uncompiled",
                                      stacklevel=2)
                        fwd_model = eval_model = raw_model
                        if info.enabled:
                            ids = [device.index] if device.type == "cuda" else None
                            fwd_model = DDP(raw_model, device_ids=ids)
                        with autocast_context(device, ptdtype):
                            _, loss = fwd_model(x, y)
                    compile_checked = True
                    loss_sum += loss.detach().float()
                    scaler.scale(loss / accum).backward()
            loss_value = (loss_sum / accum).item()
            if not math.isfinite(loss_value):
                raise TrainingDivergedError(
                    f"training loss became {loss_value} at step {step + 1}; the last good checkpoint "
                    f"(if any) was kept. Try a lower learning_rate (now {config.learning_rate:g}), "
                    "grad_clip=1.0, or dtype='float32'"
                )
            if config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            history.iter_losses.append(loss_value)
            state.step, state.loss, state.lr = step, loss_value, lr
            state.elapsed = prev_elapsed + time.perf_counter() - t0
            if info.is_main:
                _call(callbacks, "on_step", state)
            bar.update(1)
            if bar.disable is False and (step % 10 == 0 or step == config.max_iters):
                train_s = time.perf_counter() - clock["t"] - clock["eval_s"]
                tps = (step - clock["step"]) * tokens_per_step / train_s if train_s > 0 else 0.0
                bar.set_postfix(loss=f"{loss_value:.4f}", tok_s=f"{tps:,.0f}")
            reason = "callback" if state.stop else None
            if reason is None and config.max_time is not None and time.perf_counter() - t0 > config.max_time:
                reason = "max_time"
            if all_ranks_agree(reason is not None, info, device) and reason is None:
                reason = "callback"  # another rank decided to stop
            if step % config.eval_interval == 0 or step == config.max_iters or reason:
                do_eval()
                if reason is None and config.patience is not None and evals_since_best >= config.patience:
                    reason = "patience"
                if reason is None and state.stop:
                    reason = "callback"
                if all_ranks_agree(reason is not None, info, device) and reason is None:
                    reason = "callback"  # on_eval callbacks run on rank 0 only
            if reason is not None:
                history.stop_reason = reason
                break
        else:
            history.stop_reason = "max_iters"
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        if out_dir is not None and config.checkpoint != "never":
            extra = {**meta, "history": history.to_dict()}
            rng = ckpt.capture_rng_state(data_gen)  # no collectives while interrupted
            ckpt.save_checkpoint(out_dir / ("checkpoint" if config.checkpoint == "last" else "interrupted"),
                                 raw_model, optimizer, tokenizer, config, step=step, best_val_loss=best,
                                 rng_state=rng, extra=extra)
            bar.write(f"interrupted at step {step}; checkpoint saved to {out_dir}")
    finally:
        bar.close()
        if out_dir is not None:
            history.save(out_dir)
    if history.stop_reason != "interrupted" and out_dir is not None:
        stale = out_dir / "interrupted"  # superseded by this run's own checkpoints
        if stale.exists():
            import shutil

            shutil.rmtree(stale, ignore_errors=True)
    raw_model.eval()
    if info.is_main:
        _call(callbacks, "on_train_end", state)
    return history


__all__ = [
    "TRAIN_PRESETS", "History", "TrainConfig", "TrainState", "TrainingDivergedError", "get_lr",
    "get_train_preset", "train",
]
