"""Hyperparameter sweeps: train a family of GPTs under one token, FLOP or time budget each; record results.

Follows the experiments of Kaplan et al. 2020 ("Scaling Laws for Neural Language Models": a fixed
budget per run, loss against non-embedding parameters), with Optuna's samplers (grid, random, TPE)
and pruners. Every finished run is one JSON line of <out_dir>/results.jsonl, so a sweep that is
interrupted and called again trains only the points it has not recorded.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from pathlib import Path

import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState
from tqdm.auto import tqdm

from .evaluation import evaluate
from .model import GPT
from .model_config import GPTConfig, get_preset
from .runlock import RunDirLockedError, RunLock
from .train_config import TRAIN_PRESETS, TrainConfig
from .training import TrainingDivergedError, train
from .tuning_results import RESULTS_FILE, SweepResult, check_setup, read_rows, write_rows
from .tuning_space import (
    canonical,
    check_space,
    configs_for,
    distributions,
    from_optuna,
    grid_points,
    log_uniform,
    quiet_optuna,
    random_points,
    to_optuna,
    uniform,
)

TIME_BUDGET_MAX_ITERS = 10**7  # under seconds= the time, not this cap, ends a run
MAX_LOSS_POINTS = 500  # per-step train losses kept per row (thinned evenly beyond this)


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the embedding tables and lm_head (Kaplan et al.'s N, ~12 * n_layer * n_embd^2)."""
    skip = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    head = getattr(model, "lm_head", None)
    if head is not None:
        skip |= {id(p) for p in head.parameters()}
    unique = {id(p): p for p in model.parameters()}
    return sum(p.numel() for i, p in unique.items() if i not in skip)


class _Watcher:
    """Keeps the last TrainState (its history survives a diverged run) and reports estimates to the pruner."""

    def __init__(self, trial):
        self.trial, self.state, self.pruned = trial, None, False

    def on_step(self, state) -> None:
        self.state = state

    def on_eval(self, state) -> None:
        self.state = state
        if self.trial is None or state.step == 0 or not math.isfinite(state.val_loss):
            return
        self.trial.report(state.val_loss, state.step)
        if self.trial.should_prune():
            self.pruned, state.stop = True, True


def _budget(tokens, flops, seconds) -> dict:
    given = {k: v for k, v in (("tokens", tokens), ("flops", flops), ("seconds", seconds)) if v is not None}
    if len(given) != 1:
        raise ValueError("give exactly one budget per run: tokens=, flops= (about 6 x non-embedding "
                         f"parameters x tokens) or seconds=; got {', '.join(given) or 'none'}")
    (kind, value), = given.items()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not value > 0 or not math.isfinite(value):
        raise ValueError(f"the budget {kind}= must be a positive number, got {value!r}")
    return {kind: value}


def _thin(losses: list[float]) -> list[list]:
    every = max(1, math.ceil(len(losses) / MAX_LOSS_POINTS))
    return [[i + 1, v if math.isfinite(v) else None] for i, v in enumerate(losses) if (i + 1) % every == 0
            or i + 1 == len(losses)]


def _train_point(params, m: GPTConfig, t: TrainConfig, budget: dict, train_data, val_data, eval_every: int,
                 trial, callbacks) -> dict:
    torch.manual_seed(t.seed)  # the init: runs that differ only in, say, the LR start from the same weights
    model = GPT(m)
    n_nonemb = non_embedding_parameters(model)
    tokens_per_step = t.batch_size * t.block_size * t.grad_accum_steps
    if "seconds" in budget:
        t = dataclasses.replace(t, max_time=float(budget["seconds"]), max_iters=TIME_BUDGET_MAX_ITERS)
    else:
        tokens = budget.get("tokens") or budget["flops"] / (6 * n_nonemb)
        t = dataclasses.replace(t, max_iters=max(1, round(tokens / tokens_per_step)))
    t = dataclasses.replace(t, out_dir=None, progress=False)
    watcher, status = _Watcher(trial), "ok"
    t0 = time.perf_counter()
    try:
        history = train(model, train_data, val_data, t, callbacks=[watcher, *callbacks])
    except TrainingDivergedError:
        history, status = watcher.state.history, "diverged"
    seconds = time.perf_counter() - t0
    if history.stop_reason == "interrupted":
        raise KeyboardInterrupt  # train() caught Ctrl-C; a half-trained run is not recorded
    status = "pruned" if watcher.pruned else status
    val_loss, t1 = None, time.perf_counter()
    if status == "ok":
        val_loss = evaluate(model, val_data, t.block_size, every=eval_every).loss
        start = history.records[0]["val_loss"] if history.records else math.inf
        if not math.isfinite(val_loss) or val_loss > start:  # worse than the untrained model
            val_loss, status = val_loss if math.isfinite(val_loss) else None, "diverged"
    last = history.records[-1] if history.records else {}
    finite = [v for v in history.iter_losses if math.isfinite(v)]
    return {
        "params": params, "status": status, "val_loss": val_loss,
        "val_estimate": last.get("val_loss"), "train_estimate": last.get("train_loss"),
        "n_params": model.num_parameters(non_embedding=False), "n_params_non_embedding": n_nonemb,
        "steps": history.step, "tokens": history.step * tokens_per_step, "seconds": round(seconds, 3),
        "eval_seconds": round(time.perf_counter() - t1, 3), "stop_reason": history.stop_reason,
        "final_train_loss": finite[-1] if finite else None,
        "curve": [[r["step"], r["train_loss"], r["val_loss"]] for r in history.records],
        "losses": _thin(history.iter_losses),
    }


def _extremes(space) -> list[dict]:
    """One-field points at every listed value and both ends of every range (checked before TPE starts)."""
    return [{name: v} for name, values in space.items()
            for v in ((values.low, values.high) if isinstance(values, BaseDistribution) else values)]


def _as_trial(row: dict, space, dists) -> optuna.trial.FrozenTrial:
    """A recorded row as a finished Optuna trial, so TPE and the pruner learn from earlier runs."""
    params = to_optuna(space, row["params"])
    state = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(row["status"], TrialState.FAIL)
    return optuna.trial.create_trial(
        state=state, value=row["val_loss"] if state == TrialState.COMPLETE else None,
        params=params or {}, distributions=dists if params else {},
        intermediate_values={s: v for s, _, v in row["curve"] if s > 0 and v is not None
                             and math.isfinite(v)})


def sweep(
    space: dict,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    model_config: GPTConfig | str = "cpu-small",
    train_config: TrainConfig | None = None,
    *,
    tokens: int | None = None,
    flops: float | None = None,
    seconds: float | None = None,
    method: str = "grid",
    n_trials: int | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    eval_every: int = 1,
    pruner: optuna.pruners.BasePruner | None = None,
    max_runs: int | None = None,
    callbacks: Iterable = (),
    progress: bool = True,
) -> SweepResult:
    """Train one GPT per point of `space`, each under the same budget, and return the table of results.

    space: {field: [values]} over any fields of GPTConfig and TrainConfig (block_size sets both), or
      for method "random"/"tpe" also ranges: log_uniform(1e-4, 1e-2), uniform(0.0, 0.3); or a list of
      points, [{"n_layer": 1, "n_embd": 128}, {"n_layer": 4, "n_embd": 64}], trained as given.
    model_config, train_config: the base every point changes (a preset name gives both; default TRAIN_PRESETS
      of that name, else TrainConfig()). Every run starts from the same init (train_config.seed).
    tokens / flops / seconds: the budget of every run, exactly one: training tokens (reproducible), FLOPs
      (tokens = flops / (6 x non-embedding parameters): a fixed compute), or seconds (max_time).
    method: "grid" (every combination), "random" (n_trials points from Optuna's RandomSampler(seed)) or
      "tpe" (n_trials points from Optuna's TPESampler, each chosen from the results so far).
    out_dir: results.jsonl (one JSON line per finished run, rewritten atomically) and sweep.json (the
      setup); points already recorded there are not trained again. None: keep nothing on disk.
    eval_every: val_loss is evaluate()'s loss over every window of the whole val split (1), or of every
      Nth window (N > 1, an unbiased estimate at 1/N of the cost).
    pruner: an Optuna pruner (e.g. optuna.pruners.MedianPruner()) that stops a run whose in-training val
      estimates fall behind the earlier runs' at the same step; its row gets status "pruned".
    max_runs: train at most this many new points in this call.

    Each row: params, status ("ok"; "diverged": the loss became NaN/inf, or ended above the untrained
    model's step-0 estimate; "pruned"), val_loss (None if pruned or not finite), val_estimate and
    train_estimate (the last in-training estimates), n_params, n_params_non_embedding, steps, tokens,
    seconds (training), eval_seconds, stop_reason, final_train_loss, curve ([step, train estimate, val
    estimate] per estimate) and losses ([step, train loss], thinned).
    """
    space = check_space(space, method)
    budget = _budget(tokens, flops, seconds)
    if method == "grid" and n_trials is not None:
        raise ValueError("n_trials is for method='random' or 'tpe'; a grid runs every combination")
    if method != "grid" and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise ValueError(f"method={method!r} needs n_trials, a positive number of runs, got {n_trials!r}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"eval_every must be a positive integer, got {eval_every!r}")
    if isinstance(model_config, str):
        name = model_config
        model_config = get_preset(name)
        train_config = train_config or TRAIN_PRESETS.get(name, TrainConfig())
    train_config = train_config or TrainConfig()
    if not isinstance(model_config, GPTConfig) or not isinstance(train_config, TrainConfig):
        raise TypeError("model_config must be a GPTConfig (or a preset name) and train_config a TrainConfig")
    model_config, train_config = configs_for({"block_size": train_config.block_size}, model_config,
                                             train_config)
    points = (grid_points(space) if method == "grid" else
              random_points(space, n_trials, seed) if method == "random" else None)
    for params in points or _extremes(space):  # every point is valid before anything trains
        configs_for(params, model_config, train_config)
    setup = {"model_config": dataclasses.asdict(model_config),
             "train_config": {k: v for k, v in dataclasses.asdict(train_config).items()
                              if k not in ("out_dir", "progress")},
             "budget": budget, "eval_every": eval_every,
             "data": {"train_tokens": len(train_data), "val_tokens": len(val_data)}}
    out = Path(out_dir).expanduser() if out_dir is not None else None
    lock = RunLock(out) if out is not None else None
    try:
        if lock is not None:
            lock.acquire()
        if out is not None:
            check_setup(out, setup)
        return _sweep(space, points, method, n_trials, seed, out, budget, model_config, train_config,
                      train_data, val_data, eval_every, pruner, max_runs, list(callbacks), progress)
    except RunDirLockedError:
        raise RunDirLockedError(f"another sweep or training is writing to {out}; wait for it or choose "
                                "another out_dir") from None
    finally:
        if lock is not None:
            lock.release()


def _sweep(space, points, method, n_trials, seed, out, budget, m0, t0, train_data, val_data, eval_every,
           pruner, max_runs, callbacks, progress) -> SweepResult:
    path = out / RESULTS_FILE if out is not None else None
    result = SweepResult(rows=read_rows(path) if path is not None else [], out_dir=out)
    done = {canonical(r["params"]) for r in result.rows}
    space = space if isinstance(space, dict) else {}  # a list of points: only the pruner uses the study
    dists = distributions(space)
    with quiet_optuna():
        sampler = optuna.samplers.TPESampler(seed=seed) if method == "tpe" else None
        study = optuna.create_study(direction="minimize", sampler=sampler,
                                    pruner=pruner or optuna.pruners.NopPruner())
        for row in result.rows:
            study.add_trial(_as_trial(row, space, dists))
        total = len(points) if points is not None else n_trials
        todo = [p for p in points if canonical(p) not in done] if points is not None else None
        left = len(todo) if todo is not None else max(0, n_trials - len(result.rows))
        bar = tqdm(total=total, initial=total - left, desc="sweep", unit="run", disable=not progress,
                   dynamic_ncols=True)
        trained = 0
        try:
            while left > 0 and (max_runs is None or trained < max_runs):
                trial = study.ask(dists if todo is None else None)
                params = from_optuna(space, trial.params) if todo is None else todo.pop(0)
                m, t = configs_for(params, m0, t0)
                row = {"run": len(result.rows), **_train_point(params, m, t, budget, train_data, val_data,
                                                               eval_every, trial, callbacks)}
                state = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(row["status"],
                                                                                     TrialState.FAIL)
                study.tell(trial, row["val_loss"] if state == TrialState.COMPLETE else None, state=state)
                result.rows.append(row)
                if path is not None:
                    write_rows(path, result.rows)
                trained, left = trained + 1, left - 1
                bar.update(1)
                best = result.best
                bar.set_postfix(best=f"{best['val_loss']:.4f}" if best else "-", last=row["status"] if
                                row["val_loss"] is None else f"{row['val_loss']:.4f}")
        except KeyboardInterrupt:
            result.interrupted = True
            where = f" in {path}" if path is not None else ""
            bar.write(f"interrupted: {len(result.rows)} runs recorded{where}; call the sweep again to resume")
        finally:
            bar.close()
    return result


__all__ = ["RESULTS_FILE", "SweepResult", "log_uniform", "non_embedding_parameters", "sweep", "uniform"]
