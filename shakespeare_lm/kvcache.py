"""A KV cache for fast generation: keep every layer's keys and values so each step feeds one new token.

The standard decoder inference trick (the lecture's `generate` recomputes the whole window instead).
It drives the modules of model.py from the outside, so model.py keeps reading like the lecture and
knows nothing of caches: this module imports model.py, never the other way round. `generate` in
sampling.py manages a cache for you; `forward_cached` is here for readers who want to step by hand.
Shapes: B batch, T time, C channels (n_embd), nh heads, hs head size, V vocab size.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .model import GPT, Block, MultiHeadAttention, _check_idx


class KVCache:
    """Keys and values of every layer for the positions decoded so far.

    Buffers of shape (B, nh, block_size, hs) per layer, allocated on the first update with the
    device and dtype of the keys. `length` is the number of positions filled; `reset()` empties it
    without freeing memory. Make one with `new_cache(model)` and fill it with `forward_cached`.
    """

    def __init__(self, n_layer: int, max_length: int):
        self.max_length = max_length
        self.length = 0
        self._k: list[torch.Tensor | None] = [None] * n_layer
        self._v: list[torch.Tensor | None] = [None] * n_layer
        self._w: list[tuple[torch.Tensor, torch.Tensor | None] | None] = [None] * n_layer

    def reset(self) -> None:
        """Forget the cached positions (keep the buffers and the stacked weights)."""
        self.length = 0

    def weight(self, layer: int, attn: MultiHeadAttention) -> tuple[torch.Tensor, torch.Tensor | None]:
        """attn's stacked (3*nh*hs, C) query/key/value weight and (3*nh*hs,) bias (or None), built once.

        A cache therefore belongs to one set of weights: make a new one after changing them.
        """
        if self._w[layer] is None:
            self._w[layer] = (attn.qkv_weight(), attn.qkv_bias())
        return self._w[layer]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nh, T, hs) at positions length..length+T; return all keys/values so far."""
        B, nh, T, hs = k.shape
        end = self.length + T
        buf_k = self._k[layer]
        if buf_k is None or buf_k.shape[0] != B or buf_k.dtype != k.dtype or buf_k.device != k.device:
            self._k[layer] = k.new_empty(B, nh, self.max_length, hs)
            self._v[layer] = v.new_empty(B, nh, self.max_length, hs)
        self._k[layer][:, :, self.length : end] = k
        self._v[layer][:, :, self.length : end] = v
        return self._k[layer][:, :, :end], self._v[layer][:, :, :end]  # (B, nh, end, hs)


def _bare(model):
    """The GPT inside torch.compile's wrapper (which forwards attribute access but is not a GPT)."""
    return getattr(model, "_orig_mod", model)


def supports_cache(model) -> bool:
    """True for a GPT (also compiled): the models `forward_cached` can run."""
    return isinstance(_bare(model), GPT)


def new_cache(model: GPT) -> KVCache:
    """An empty KV cache for `model` (buffers are allocated on first use)."""
    model = _bare(model)
    return KVCache(model.config.n_layer, model.block_size)


def _attention_cached(
    attn: MultiHeadAttention, x: torch.Tensor, cache: KVCache, layer: int, last_only: bool
) -> torch.Tensor:
    """Attention for new tokens x (B, T, C) given the cached keys/values of earlier positions.

    Returns (B, T, C), or (B, 1, C) for the last new position only if last_only=True.
    """
    start = cache.length
    T = x.size(1)
    q, k, v = attn.qkv(x, *cache.weight(layer, attn))  # each (B, nh, T, hs)
    k, v = cache.update(layer, k, v)  # each (B, nh, start+T, hs)
    if last_only:
        q = q[:, :, -1:]  # (B, nh, 1, hs)
    if q.size(2) == 1:
        # The newest query may look at every cached position: no mask needed.
        y = F.scaled_dot_product_attention(q, k, v)  # (B, nh, 1, hs)
    elif start == 0:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    else:
        # New query i sits at position start+i and may see keys 0..start+i.
        mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
    return attn.project(y)  # (B, T or 1, C)


def _block_cached(block: Block, x: torch.Tensor, cache: KVCache, layer: int, last_only: bool) -> torch.Tensor:
    """`Block.forward` for new tokens x (B, T, C), reading and extending the cache."""
    att = _attention_cached(block.sa, block.ln1(x), cache, layer, last_only)  # (B, T or 1, C)
    if last_only:
        x = x[:, -1:]  # (B, 1, C) the other positions only had to leave keys/values in the cache
    x = x + att  # (B, T or 1, C)
    x = x + block.ffwd(block.ln2(x))  # (B, T or 1, C)
    return x


def forward_cached(model: GPT, idx: torch.Tensor, cache: KVCache, last_only: bool = False) -> torch.Tensor:
    """Logits (B, T, V) for new tokens idx (B, T) that follow the cache's `length` positions.

    Equal to `model(full_context)[0][:, -T:]` where full_context is the cached tokens followed by
    idx; the new keys/values are appended to `cache`. The total may not exceed block_size.
    With last_only=True only the last position's logits (B, 1, V) are computed, which lets the
    final block skip the feed-forward and projections of the other positions (used by generate).
    Use it without gradients (no_grad / inference_mode): the cache keeps tensors between calls.
    """
    model = _bare(model)
    if not isinstance(model, GPT):
        raise TypeError(f"forward_cached needs a GPT, got {type(model).__name__}")
    _check_idx(idx, None)
    start, T = cache.length, idx.size(1)
    if start + T > model.block_size:
        raise ValueError(
            f"cache holds {start} positions; {T} more would exceed block_size {model.block_size}. "
            "Reset the cache and re-prefill with the last block_size tokens."
        )
    x = model.embed(idx, start)  # (B, T, C)
    last = len(model.blocks) - 1
    for layer, block in enumerate(model.blocks):
        x = _block_cached(block, x, cache, layer, last_only and layer == last)  # (B, T or 1, C)
    cache.length = start + T
    x = model.ln_f(x)  # (B, T or 1, C)
    return model.lm_head(x)  # (B, T or 1, V)
