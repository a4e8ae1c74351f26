"""Checks `train` runs before its first step, so a mistake stops with one line instead of a traceback.

The data must be 1-D token ids that fit the model's vocabulary and context, one micro-batch must fit
in memory (a lower bound on the activations, counted like nanoGPT's MFU estimate counts FLOPs), and
a fresh run must not replace the model an earlier run left in its directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ckpt


def check_data(data: torch.Tensor, name: str, block_size: int) -> None:
    """`data` is a 1-D tensor of token ids with more than block_size tokens."""
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise TypeError(f"{name} must be a 1-D tensor of token ids, e.g. torch.tensor(tok.encode(text))")
    if data.is_floating_point() or data.is_complex():
        raise TypeError(f"{name} holds {data.dtype} values; token ids are integers: "
                        "torch.tensor(tok.encode(text)) gives torch.int64")
    if len(data) <= block_size:
        raise ValueError(f"{name} has {len(data)} tokens, too few for block_size={block_size}; "
                         "use a smaller block_size or more text")


def check_block_size(model: nn.Module, block_size: int) -> None:
    """Training windows are no longer than the model's context (its position embeddings)."""
    model_block = getattr(model, "block_size", None)
    if model_block is not None and block_size > model_block:
        raise ValueError(f"TrainConfig.block_size={block_size} exceeds the model's block_size="
                         f"{model_block}; lower it or build a model with a longer context")


def check_inputs(model: nn.Module, train_data: torch.Tensor, val_data: torch.Tensor, block_size: int) -> None:
    """Both splits are token-id tensors longer than block_size, with ids the model can embed."""
    check_data(train_data, "train_data", block_size)
    check_data(val_data, "val_data", block_size)
    check_block_size(model, block_size)
    check_vocab(model, {"train_data": train_data, "val_data": val_data})


def model_vocab_size(model: nn.Module) -> int | None:
    """model.config.vocab_size, else the rows of its token embedding table (None if neither exists)."""
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is None:
        table = getattr(model, "token_embedding_table", None)
        vocab = getattr(table, "num_embeddings", None)
    return vocab


def check_vocab(model: nn.Module, splits: dict[str, torch.Tensor]) -> None:
    """Every token id in the data is a row of the model's embedding table (0 <= id < vocab_size)."""
    vocab = model_vocab_size(model)
    if vocab is None:
        return
    for name, data in splits.items():
        if len(data) and int(data.min()) < 0:
            raise ValueError(f"{name} has negative token id {int(data.min())}; token ids start at 0")
    top = max(int(d.max()) for d in splits.values() if len(d))
    if top >= vocab:
        raise ValueError(
            f"the data has token ids up to {top} but the model's vocab_size is {vocab}; build the model "
            "with vocab_size=tokenizer.vocab_size (e.g. get_preset('cpu-small', vocab_size=tok.vocab_size))"
        )


def activation_bytes(model: nn.Module, batch_size: int, block_size: int, device: torch.device) -> int:
    """A lower bound on the memory one training micro-batch needs: weights, grads and AdamW moments
    (16 bytes a parameter), the float32 activations a GPT saves for backward (about 16 numbers per
    channel per layer; measured within 5% on CPU) and the logits. The (B, nh, T, T) attention
    weights count only where they are stored: with dropout on CPU (no fused kernel there), or
    when the model computes attention explicitly."""
    config = getattr(model, "config", None)
    n_layer, n_embd = getattr(config, "n_layer", 0), getattr(config, "n_embd", 0)
    n_head, dropout = getattr(config, "n_head", 0), getattr(config, "dropout", 0.0)
    vocab = model_vocab_size(model) or 0
    B, T = batch_size, block_size
    floats = B * T * (16 * n_layer * n_embd + 3 * vocab)
    explicit = any(getattr(m, "attn_impl", None) == "explicit" for m in model.modules())
    if explicit or (device.type == "cpu" and dropout > 0):
        floats += n_layer * B * n_head * T * T  # (B, nh, T, T) per layer
    n_params = sum(p.numel() for p in model.parameters())
    return 4 * floats + 16 * n_params


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory on `device`: the GPU's total, or the machine's physical RAM (None if unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):  # not POSIX
            return None
    return None


def check_memory(model: nn.Module, batch_size: int, block_size: int, device: torch.device) -> None:
    """Refuse a micro-batch that clearly cannot fit (its lower-bound need exceeds the device's memory)."""
    available = device_memory(device)
    if available is None:
        return
    need = activation_bytes(model, batch_size, block_size, device)
    if need > available:
        raise ValueError(
            f"training needs at least {need / 2**30:.1f} GiB for batch_size={batch_size} x block_size="
            f"{block_size} but this {device.type} has {available / 2**30:.1f} GiB; use a smaller "
            "block_size or batch_size (grad_accum_steps keeps the tokens per step)"
        )


class RunDirExistsError(FileExistsError):
    """A fresh run was pointed at a run directory that already holds a trained model."""


def check_run_dir(out_dir: Path, overwrite: bool, remove_old: bool) -> None:
    """A fresh run must not silently replace the model an earlier run left in out_dir."""
    held = [name for name in ("checkpoint", "interrupted") if (out_dir / name / ckpt.META_FILE).is_file()]
    if held and not overwrite:
        raise RunDirExistsError(
            f"{out_dir} already holds a trained model ({held[0]}/); continue it with "
            f"resume_from={str(out_dir)!r} (CLI: --resume), or replace it with overwrite=True (--overwrite)"
        )
    if held and remove_old:  # the old run's interrupted/ would otherwise win the next resume
        shutil.rmtree(out_dir / "interrupted", ignore_errors=True)
