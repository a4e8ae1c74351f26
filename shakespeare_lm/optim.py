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


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """nanoGPT's split: weights with dim >= 2 (matmuls, embeddings) decay; biases and LayerNorm don't.

    Tied weights (GPT's lm_head and token embedding) appear once.
    """
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() dedupes tied weights
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def configure_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over `param_groups`, using the fused kernel where this torch build has one."""
    groups = param_groups(model, config.weight_decay)
    kwargs: dict[str, Any] = {"lr": config.learning_rate, "betas": config.betas}
    if "fused" in inspect.signature(torch.optim.AdamW).parameters and device.type in ("cuda", "cpu"):
        kwargs["fused"] = True
    try:
        return torch.optim.AdamW(groups, **kwargs)
    except (RuntimeError, ValueError):  # fused not supported for this device/dtype
        kwargs.pop("fused", None)
        return torch.optim.AdamW(groups, **kwargs)
