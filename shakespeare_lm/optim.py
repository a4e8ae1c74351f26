"""The optimizer: AdamW with nanoGPT's decay / no-decay parameter groups.

Follows nanoGPT's `configure_optimizers` (weight decay on matrices and embeddings only).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .train import TrainConfig


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


def configure_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over `param_groups`, using the fused kernel where this torch build has one."""
    groups = param_groups(model, config.weight_decay, config.embedding_lr_mult)
    kwargs: dict[str, Any] = {"lr": config.learning_rate, "betas": config.betas}
    if "fused" in inspect.signature(torch.optim.AdamW).parameters and device.type in ("cuda", "cpu"):
        kwargs["fused"] = True
    try:
        return torch.optim.AdamW(groups, **kwargs)
    except (RuntimeError, ValueError):  # fused not supported for this device/dtype
        kwargs.pop("fused", None)
        return torch.optim.AdamW(groups, **kwargs)
