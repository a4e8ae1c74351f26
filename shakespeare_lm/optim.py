"""The optimizer and its learning-rate schedule: AdamW with decay / no-decay groups, warmup + cosine or WSD.

Follows nanoGPT's `configure_optimizers` (weight decay on matrices and embeddings only) and its
`get_lr` (linear warmup, cosine decay to min_lr); "wsd" is warmup-stable-decay (Hägele et al. 2024).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, embedding_lr_mult: float = 1.0) -> list[dict]:
    """nanoGPT's split: weights with dim >= 2 (matmuls, embeddings) decay; biases and LayerNorm don't.

    Each group carries an "lr_mult" that `train` multiplies the scheduled LR by. With
    embedding_lr_mult != 1 the embedding tables (nn.Embedding weights; GPT's tied lm_head is the
    token embedding) get a third group of their own with that multiplier. Tied weights appear once.
    """
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() dedupes tied weights
    embedding_ids = set()
    if embedding_lr_mult != 1.0:
        embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay = [p for p in params if p.dim() >= 2 and id(p) not in embedding_ids]
    embeddings = [p for p in params if id(p) in embedding_ids]
    no_decay = [p for p in params if p.dim() < 2 and id(p) not in embedding_ids]
    groups = [{"params": decay, "weight_decay": weight_decay, "lr_mult": 1.0}]
    if embeddings:
        groups.append({"params": embeddings, "weight_decay": weight_decay, "lr_mult": embedding_lr_mult})
    groups.append({"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0})
    return [g for g in groups if g["params"]]


def configure_optimizer(
    model: nn.Module,
    learning_rate: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0.1,
    embedding_lr_mult: float = 1.0,
    *,
    device: torch.device | str = "cpu",
) -> torch.optim.AdamW:
    """AdamW over `param_groups`, using the fused kernel where this torch build has one for `device`."""
    groups = param_groups(model, weight_decay, embedding_lr_mult)
    kwargs: dict[str, Any] = {"lr": learning_rate, "betas": tuple(betas)}
    device = torch.device(device)
    if "fused" in inspect.signature(torch.optim.AdamW).parameters and device.type in ("cuda", "cpu"):
        kwargs["fused"] = True
    try:
        return torch.optim.AdamW(groups, **kwargs)
    except (RuntimeError, ValueError):  # fused not supported for this device/dtype
        kwargs.pop("fused", None)
        return torch.optim.AdamW(groups, **kwargs)


def get_lr(step: int, config: Any) -> float:
    """LR for optimizer step `step` (0-based) under a TrainConfig: linear warmup, then a cosine decay
    to min_lr ("cosine"), or the peak held and then a linear decay to min_lr over the last
    decay_fraction of the decay_iters steps ("wsd"). Past decay_iters the LR stays at min_lr."""
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


def steps_that_fit(step: int, seconds_left: float, seconds_per_step: float, max_iters: int) -> int:
    """The step a run at `step` reaches in `seconds_left` at `seconds_per_step`: at least step + 1
    (finish the step under way), at most max_iters. `train` ends a time-budgeted schedule there
    (TrainConfig.fit_schedule_to_time)."""
    fit = step + int(max(seconds_left, 0.0) / seconds_per_step) if seconds_per_step > 0 else max_iters
    return min(max_iters, max(step + 1, fit))
