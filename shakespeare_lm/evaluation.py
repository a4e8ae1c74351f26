"""Measuring a model: a quick estimate on fixed random batches, and the exact loss over a split.

Follows the lecture's `estimate_loss` (mean loss over `eval_iters` batches of each split); `evaluate`
covers every token of the split once and reports nats, bits per character and perplexity.
Shapes: B batch, T time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import get_batch, iter_eval_batches
from .precision import autocast_context
from .utils import model_device


@torch.no_grad()
def estimate_loss(
    model: nn.Module,
    splits: dict[str, torch.Tensor],
    batch_size: int,
    block_size: int,
    eval_iters: int,
    generator: torch.Generator | int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """Mean loss over `eval_iters` random batches of each split, the same batches at every call.

    The batches are drawn from a *copy* of `generator` (or a generator seeded with the int, 0 if
    None), so the caller's generator does not advance and successive estimates are comparable.
    The model is put in eval mode (no dropout) and restored to its previous mode afterwards.
    """
    device = model_device(model)
    if isinstance(generator, torch.Generator):
        state = generator.get_state()
    else:
        state = torch.Generator().manual_seed(0 if generator is None else int(generator)).get_state()
    was_training = model.training
    model.eval()
    out = {}
    try:
        for name, data in splits.items():
            g = torch.Generator()
            g.set_state(state)
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                x, y = get_batch(data, batch_size, block_size, generator=g, device=device)  # (B, T)
                with autocast_context(device, dtype):
                    _, loss = model(x, y)
                losses[k] = loss.float().item()
            out[name] = losses.mean().item()
    finally:
        model.train(was_training)
    return out


def token_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every target of a batch, in nats: (B, T)."""
    logits, _ = model(x)  # (B, T, V) every model returns logits for every position
    B, T, V = logits.shape
    losses = F.cross_entropy(logits.float().reshape(B * T, V), y.reshape(B * T), reduction="none")
    return losses.view(B, T)  # (B, T)


@torch.no_grad()
def iter_window_losses(
    model: nn.Module,
    data: torch.Tensor,
    block_size: int,
    batch_size: int,
    *,
    every: int = 1,
    dtype: torch.dtype = torch.float32,
) -> Iterator[torch.Tensor]:
    """Per-token losses (B, T) of each batch of `iter_eval_batches` windows, in order, in eval mode.

    The model's mode is restored when the iteration ends (or the generator is closed).
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        for x, y in iter_eval_batches(data, batch_size, block_size, every=every, device=device):
            with autocast_context(device, dtype):
                losses = token_losses(model, x, y)  # (B, T)
            yield losses  # outside autocast: the caller's code runs between yields
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class EvalResult:
    """Loss over a whole split, in three units, and how much text it covered."""

    loss: float  # mean cross-entropy, nats per token
    bits_per_char: float  # total bits over the text / its characters (= loss / ln 2 for characters)
    perplexity: float  # exp(loss), per token
    tokens: int  # number of predicted tokens averaged over
    characters: int  # characters of text those tokens spell (= tokens + 1 for a character tokenizer)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    val_data: torch.Tensor,
    block_size: int | None = None,
    batch_size: int = 64,
    *,
    dtype: torch.dtype = torch.float32,
    every: int = 1,
    n_chars: int | None = None,
) -> EvalResult:
    """Exact loss over the whole split: every token but the first is predicted once (iter_eval_batches).

    Each window starts fresh, so early positions see little context; this is the standard
    non-overlapping evaluation. block_size defaults to the model's. every=N > 1 evaluates only every
    Nth of those windows: an unbiased estimate of the same loss at ~1/N of the cost.

    Bits per character are total nats over the text / its characters / ln 2: the one unit that
    compares models across tokenizers. Pass n_chars=len(val_text) when a token is not one
    character (BPE, words); by default every token counts as one character.
    """
    if n_chars is not None and (not isinstance(n_chars, int) or n_chars < 1):
        raise ValueError(f"n_chars must be a positive integer (the characters of the text), got {n_chars!r}")
    block_size = block_size or getattr(model, "block_size", None)
    if block_size is None:
        raise ValueError("this model has no block_size of its own; pass evaluate(..., block_size=256)")
    total, count = 0.0, 0
    for losses in iter_window_losses(model, val_data, block_size, batch_size, every=every, dtype=dtype):
        total += losses.double().sum().item()  # (B, T) -> nats of the batch
        count += losses.numel()
    mean = total / count
    chars = len(val_data) if n_chars is None else n_chars
    # the mean loss per token times the text's tokens per character: loss / ln 2 for characters
    bits_per_char = mean * len(val_data) / chars / math.log(2)
    return EvalResult(loss=mean, bits_per_char=bits_per_char, perplexity=math.exp(mean), tokens=count,
                      characters=chars)
