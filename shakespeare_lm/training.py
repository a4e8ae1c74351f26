"""The training loop: AdamW (or Muon), warmup + cosine LR, mixed precision, accumulation, DDP, checkpoints.

Follows nanoGPT's train.py (and the Zero-to-Hero GPT lecture's `estimate_loss`), as one function
`train(model, train_data, val_data, config) -> History` that works for every model in the package.
Shapes: B batch, T time (block_size), V vocab.

Callbacks: objects with any of `on_step(state)`, `on_eval(state)`, `on_train_end(state)`, or plain
functions (called as on_eval); `state` is a TrainState, and `state.stop = True` ends training
after a final eval. Under `torchrun`, train joins the process group (nccl on CUDA, gloo on CPU),
wraps the model in DistributedDataParallel, gives each rank its own data order (seed + rank),
skips the all-reduce on accumulation micro-steps (`no_sync`), and lets only rank 0 print, call
callbacks and write files. batch_size and grad_accum_steps are per rank.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import growth, preflight
from .cpu_memory import keep_freed_memory
from .data import get_batch
from .distributed import all_ranks_agree, all_ranks_min, init_distributed
from .evaluation import estimate_loss
from .history import History, TrainState, call_callbacks
from .optim import build_optimizer, clip_grad_norm, get_lr, steps_that_fit
from .precision import autocast_context, compile_model, resolve_dtype
from .preflight import RunDirExistsError
from .runlock import RunDirLockedError, RunLock
from .train_config import (
    CHECKPOINT_MODES,
    COMPILE_MODES,
    LR_SCHEDULES,
    TRAIN_PRESETS,
    TrainConfig,
    get_train_preset,
)
from .utils import pick_device

FIT_MIN_STEPS = 3  # timed steps (after a call's first) before a time budget's schedule is fitted
FIT_BUDGET_SHARE = 0.05  # ... and the warmup is over or this share of max_time has passed


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint was left untouched."""


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
    overwrite: bool = False,
) -> History:
    """Train `model` in place on token tensors and return its History.

    Evaluates (fixed batches, both splits) at step 0, every `eval_interval` steps and at the end;
    writes checkpoints and history files to `config.out_dir` if set (rank 0 only, holding a lock
    on the directory so a second training into it fails at once with RunDirLockedError). Before
    the first step it checks that the data fits the model (token ids < vocab_size) and that a
    micro-batch fits in memory. A NaN/inf loss raises TrainingDivergedError without touching the
    last good checkpoint; Ctrl-C saves a checkpoint and returns the history so far. Under
    `torchrun` this runs DDP (see distributed.py). Seeds dropout with `config.seed + rank`. On a
    CPU it asks glibc's malloc to keep freed memory for reuse, for the rest of the process
    (cpu_memory.keep_freed_memory; SHAKESPEARE_LM_KEEP_FREED_MEMORY=0 opts out).

    callbacks: objects with on_step / on_eval / on_train_end, or functions (see the module docstring).
    resume_from: a checkpoint or run directory to continue: weights, optimizer, LR schedule, data
      order and RNG. If it already reached max_iters nothing is trained or written and the history
      comes back with stop_reason "already_done".
    tokenizer: saved in every checkpoint, so load_checkpoint returns a model that can decode.
    meta: extra JSON stored in the checkpoints (e.g. the data source).
    overwrite: a fresh run (no resume_from) into an out_dir that already holds a checkpoint raises
      RunDirExistsError unless this is True; then the old run's checkpoints are replaced.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    preflight.check_inputs(model, train_data, val_data, config.block_size)
    if config.depth_schedule is not None:
        growth.check_model(model, config.depth_schedule)
    device = pick_device(config.device)
    preflight.check_memory(model, config.batch_size, config.block_size, device)
    info, device, started = init_distributed(device)
    if device.type == "cpu":
        keep_freed_memory()  # glibc keeps freed activations for the next step (cpu_memory.py)
    lock = RunLock(config.out_dir) if config.out_dir is not None and info.is_main else None
    try:
        if lock is not None:
            lock.acquire()  # before anything is written; RunDirLockedError if another run holds it
        if config.out_dir is not None and resume_from is None:
            preflight.check_run_dir(Path(config.out_dir), overwrite, remove_old=info.is_main)
        return _train(model, train_data, val_data, config, list(callbacks), resume_from, tokenizer,
                      dict(meta or {}), info, device)
    finally:
        if lock is not None:
            lock.release()
        if started:
            dist.destroy_process_group()


def _drop_superseded_interrupted(out_dir: Path) -> None:
    """Delete interrupted/ only once checkpoint/ holds a step at least as far along."""
    try:
        newest = ckpt.read_meta(out_dir / "checkpoint")["step"]
        stale = ckpt.read_meta(out_dir / "interrupted")["step"]
    except ckpt.CheckpointError:
        return
    if newest >= stale:
        shutil.rmtree(out_dir / "interrupted", ignore_errors=True)


class _Run:
    """What the steps, estimates and saves of one train() call share (instead of closures)."""

    def __init__(self, model, train_data, val_data, config, callbacks, tokenizer, meta, info, device):
        self.model, self.config, self.callbacks, self.tokenizer = model, config, callbacks, tokenizer
        self.splits = {"train": train_data, "val": val_data}
        self.info, self.device = info, device
        self.dtype = resolve_dtype(config.dtype, device, model)
        self.optimizer = build_optimizer(model, config, device)  # AdamW, or Muon + AdamW
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.out_dir = Path(config.out_dir) if config.out_dir is not None and info.is_main else None
        self.meta = {**meta, "dtype": str(self.dtype).removeprefix("torch."), "world_size": info.world_size}
        self.data_gen = torch.Generator().manual_seed(config.seed + info.rank)  # per-rank data order
        self.eval_seed = config.seed + 1_000_003  # fixed eval batches, the same on every rank
        self.history = History()
        self.state = TrainState(config=config, model=model, optimizer=self.optimizer, history=self.history)
        self.step, self.best, self.evals_since_best = 0, None, 0
        self.schedule, self.end, self.fit = config, config.max_iters, None  # a time budget may end it early
        sequences = config.batch_size * config.grad_accum_steps * info.world_size
        self.tokens_per_step = sequences * config.block_size
        self.prev_elapsed, self.t0, self.first = 0.0, time.perf_counter(), None
        self.train_s, self.eval_s, self.mark = 0.0, 0.0, (0, 0.0)  # mark: (step, train_s) at the last eval
        self.eval_model = self.fwd_model = model
        self.bar, self.stacking = None, growth.Stacking(model, None, 0, fresh=False)

    def resume(self, path) -> None:
        saved = ckpt.load_training_state(ckpt.find_resume_checkpoint(path), self.model, self.optimizer,
                                         device=self.device)
        extra = saved.get("extra") or {}
        self.step, self.best = saved["step"], saved.get("best_val_loss")
        self.history = self.state.history = History.from_dict(extra.get("history", {}))
        self.history.stop_reason = None
        self.state.step, self.state.best_val_loss, self.mark = self.step, self.best, (self.step, 0.0)
        records = self.history.records
        self.prev_elapsed = extra.get("elapsed", records[-1]["elapsed"] if records else 0.0)
        ckpt.restore_rng_state(saved["rng_state"], self.data_gen, rank=self.info.rank)
        if self.scaler.is_enabled() and extra.get("grad_scaler"):
            self.scaler.load_state_dict(extra["grad_scaler"])
        fit, c = extra.get("time_fit") or {}, self.config
        same_budget = fit and fit["max_time"] == c.max_time and fit["max_iters"] == c.max_iters
        if same_budget and c.fit_schedule_to_time:  # keep the end fitted to this budget
            self.set_end(fit["end"])

    def elapsed(self) -> float:
        return self.prev_elapsed + time.perf_counter() - self.t0

    def tokens_per_sec(self) -> float:
        """Training throughput since the last estimate (steps timed without the estimates)."""
        seconds = self.train_s - self.mark[1]
        return (self.step - self.mark[0]) * self.tokens_per_step / seconds if seconds > 0 else 0.0

    def save(self, name: str, gather: bool = True) -> bool:
        # gather=True is collective (every rank's RNG), so all ranks call it; only rank 0 writes.
        rng = ckpt.capture_rng_state(self.data_gen, info=self.info if gather else None, device=self.device)
        if self.out_dir is None or self.config.checkpoint == "never":
            return False
        extra = {**self.meta, "history": self.history.to_dict(), "elapsed": self.elapsed(),
                 "time_fit": self.fit}
        if self.scaler.is_enabled():
            extra["grad_scaler"] = self.scaler.state_dict()
        ckpt.save_checkpoint(self.out_dir / name, self.model, self.optimizer, self.tokenizer, self.config,
                             step=self.step, best_val_loss=self.best, rng_state=rng, extra=extra)
        return True

    def step_once(self) -> float:
        """One optimizer step over grad_accum_steps micro-batches; returns the mean train loss."""
        c, t = self.config, time.perf_counter()
        lr = get_lr(self.step, self.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        self.stacking.before_step(self.step, self.optimizer)  # a depth schedule's growth (growth.py)
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(c.grad_accum_steps):
            x, y = get_batch(self.splits["train"], c.batch_size, c.block_size, generator=self.data_gen,
                             device=self.device)  # (B, T)
            # skip the gradient all-reduce on all but the last micro-step
            last = micro == c.grad_accum_steps - 1
            with self.fwd_model.no_sync() if self.info.enabled and not last else contextlib.nullcontext():
                with self.stacking.active(), autocast_context(self.device, self.dtype):
                    _, loss = self.fwd_model(x, y)
                loss_sum += loss.detach().float()
                self.scaler.scale(loss / c.grad_accum_steps).backward()
        loss_value = (loss_sum / c.grad_accum_steps).item()
        if not math.isfinite(loss_value):
            raise TrainingDivergedError(
                f"training loss became {loss_value} at step {self.step + 1}; the last good checkpoint "
                f"(if any) was kept. Try a lower learning_rate (now {c.learning_rate:g}), grad_clip=1.0, "
                "or dtype='float32'")
        if c.grad_clip:
            self.scaler.unscale_(self.optimizer)
            clip_grad_norm(self.model.parameters(), c.grad_clip)  # torch's, cheaper on a CPU
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.train_s += time.perf_counter() - t
        self.history.iter_losses.append(loss_value)
        s = self.state
        s.step, s.loss, s.lr, s.elapsed = self.step, loss_value, lr, self.elapsed()
        return loss_value

    def evaluate(self) -> None:
        """Estimate both losses, record them, checkpoint per config.checkpoint and call on_eval."""
        c, t = self.config, time.perf_counter()
        with self.stacking.active():  # the blocks not yet grown are identities: skip them
            losses = estimate_loss(self.eval_model, self.splits, c.eval_batch_size or c.batch_size,
                                   c.block_size, c.eval_iters, self.eval_seed, dtype=self.dtype)
        tps = self.tokens_per_sec()
        self.mark = (self.step, self.train_s)
        record = {"step": self.step, "train_loss": losses["train"], "val_loss": losses["val"],
                  "lr": get_lr(max(self.step - 1, 0), self.schedule), "tokens_per_sec": tps,
                  "elapsed": self.elapsed()}
        self.history.records.append(record)
        improved = self.best is None or losses["val"] < self.best
        self.best = losses["val"] if improved else self.best
        self.evals_since_best = 0 if improved else self.evals_since_best + 1
        s = self.state
        s.val_loss, s.best_val_loss, s.tokens_per_sec = losses["val"], self.best, tps
        s.elapsed = record["elapsed"]
        if c.checkpoint == "last" or (c.checkpoint == "best" and improved):
            self.save("checkpoint")
        if self.out_dir is not None:
            self.history.save(self.out_dir)
        if self.info.is_main:
            if c.progress:
                self.bar.write(f"step {self.step}: train loss {losses['train']:.4f}, "
                               f"val loss {losses['val']:.4f}")
            call_callbacks(self.callbacks, "on_eval", self.state)
        self.eval_s = time.perf_counter() - t

    def set_end(self, end: int) -> None:
        """End the run and its LR schedule at step `end`: the decay shrinks in proportion."""
        c = self.config
        decay = max(c.warmup_iters, min(end, round(c.decay_iters * end / c.max_iters)))
        self.schedule, self.end = dataclasses.replace(c, lr_decay_iters=decay), end
        self.fit = {"max_time": c.max_time, "max_iters": c.max_iters, "end": end}
        if self.bar is not None:
            self.bar.total = end
            self.bar.refresh()

    def maybe_fit_schedule(self) -> None:
        """Under a time budget, once the first steps are timed, end the schedule where time runs out."""
        c, now = self.config, time.perf_counter()
        if c.max_time is None or not c.fit_schedule_to_time or self.fit is not None:
            return
        if self.first is None:  # a call's first step pays for warm-up (allocations, compilation)
            self.first = (self.step, now)
            return
        timed = self.step - self.first[0]
        ready = timed >= FIT_MIN_STEPS and (
            self.step >= c.warmup_iters or now - self.t0 >= FIT_BUDGET_SHARE * c.max_time)
        if not all_ranks_agree(ready, self.info, self.device):
            return
        per_step = (now - self.first[1]) / max(timed, 1) + self.eval_s / c.eval_interval
        end = steps_that_fit(self.step, c.max_time - (now - self.t0), per_step, c.max_iters)
        self.set_end(all_ranks_min(end, self.info, self.device))  # every rank stops at the same step

    def stop_reason(self) -> str | None:
        """Why to stop after this step (agreed by all ranks), or None to go on."""
        c, reason = self.config, "callback" if self.state.stop else None
        out_of_time = c.max_time is not None and time.perf_counter() - self.t0 > c.max_time
        fitted_end = self.end < c.max_iters and self.step >= self.end  # where the time budget ends
        if reason is None and (out_of_time or fitted_end):
            reason = "max_time"
        if all_ranks_agree(reason is not None, self.info, self.device) and reason is None:
            reason = "callback"  # another rank decided to stop
        return reason


def _train(model, train_data, val_data, config, callbacks, resume_from, tokenizer, meta, info, device):
    model.to(device)
    model.train()
    run = _Run(model, train_data, val_data, config, callbacks, tokenizer, meta, info, device)
    if resume_from is not None:
        run.resume(resume_from)
    else:
        torch.manual_seed(config.seed + info.rank)  # dropout
    run.stacking = growth.Stacking(model, config.depth_schedule, run.step, fresh=resume_from is None)
    history = run.history
    if run.step >= run.end:  # nothing left to do: train nothing, write nothing, delete nothing
        history.stop_reason = "already_done"
        model.eval()
        return history
    gen = torch.Generator().manual_seed(config.seed)  # a trial batch that leaves the data order alone
    x, y = get_batch(train_data, config.batch_size, config.block_size, generator=gen, device=device)  # (B, T)
    compiled = compile_model(model, config.compile, device, run.dtype, (x, y))
    run.eval_model = compiled  # not DDP-wrapped: every rank estimates on the same fixed batches
    run.fwd_model = compiled
    if info.enabled:
        run.fwd_model = DDP(compiled, device_ids=[device.index] if device.type == "cuda" else None,
                            find_unused_parameters=config.depth_schedule is not None)  # blocks not grown
    run.bar = bar = tqdm(total=run.end, initial=run.step, disable=not (config.progress and info.is_main),
                         desc="training", unit="step", dynamic_ncols=True)
    run.t0 = time.perf_counter()
    try:
        if run.step == 0 and not history.records:
            run.evaluate()
        reason = None
        while reason is None:
            loss = run.step_once()
            if info.is_main:
                call_callbacks(callbacks, "on_step", run.state)
            bar.update(1)
            if not bar.disable and (run.step % 10 == 0 or run.step == run.end):
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{run.tokens_per_sec():,.0f}")
            run.maybe_fit_schedule()
            reason = run.stop_reason()
            if run.step % config.eval_interval == 0 or run.step >= run.end or reason:
                run.evaluate()
                if reason is None and run.evals_since_best >= (config.patience or math.inf):
                    reason = "patience"
                if reason is None and run.state.stop:
                    reason = "callback"
                if all_ranks_agree(reason is not None, info, device) and reason is None:
                    reason = "callback"  # on_eval callbacks run on rank 0 only
            if reason is None and run.step >= config.max_iters:
                reason = "max_iters"
        history.stop_reason = reason
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        # the normal save path, without collectives: the other ranks may not be interrupted
        if run.save("checkpoint" if config.checkpoint == "last" else "interrupted", gather=False):
            bar.write(f"interrupted at step {run.step}; checkpoint saved to {run.out_dir}")
    finally:
        bar.close()
        if run.out_dir is not None:
            history.save(run.out_dir)
    if history.stop_reason != "interrupted" and run.out_dir is not None:
        _drop_superseded_interrupted(run.out_dir)
    model.eval()
    if info.is_main:
        call_callbacks(callbacks, "on_train_end", run.state)
    return history


__all__ = [
    "CHECKPOINT_MODES", "COMPILE_MODES", "LR_SCHEDULES", "TRAIN_PRESETS", "History", "RunDirExistsError",
    "RunDirLockedError", "TrainConfig", "TrainState", "TrainingDivergedError", "get_lr", "get_train_preset",
    "train",
]
