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
from .positional import sliding_causal_mask


class KVCache:
    """Keys and values of every layer for the positions decoded so far.

    Per layer a buffer of shape (B, nh, max_length, hs), allocated on the first update with the
    device and dtype of the keys. `length` is the number of positions held and `position` the
    absolute position of the next token; `reset()` empties the cache without freeing memory. Make
    one with `new_cache(model)` and fill it with `forward_cached`.

    With window=None (learned or sinusoidal positions) it holds at most max_length = block_size
    positions. With a window (RoPE) it slides: before new tokens are stored, the positions that no
    new query can see any more (more than window - 1 back) are dropped. Rotated keys keep their
    absolute positions, and attention depends only on offsets, so nothing needs recomputing. The
    held positions start at buffer index `_offset`; the buffer is twice the window, and only when
    its end is reached are the held positions copied back to the front: once every ~window steps,
    so O(1) per token on average.
    """

    def __init__(self, n_layer: int, max_length: int, window: int | None = None):
        if window is not None and max_length < 2 * window:
            raise ValueError(f"a sliding cache needs max_length >= 2 * window, "
                             f"got {max_length} < 2 * {window}")
        self.max_length = max_length
        self.window = window
        self.length = 0
        self.position = 0
        self._offset = 0
        self._k: list[torch.Tensor | None] = [None] * n_layer
        self._v: list[torch.Tensor | None] = [None] * n_layer
        self._w: list[tuple[torch.Tensor, torch.Tensor | None] | None] = [None] * n_layer

    def reset(self) -> None:
        """Forget the cached positions (keep the buffers and the stacked weights)."""
        self.length = self.position = self._offset = 0

    def weight(self, layer: int, attn: MultiHeadAttention) -> tuple[torch.Tensor, torch.Tensor | None]:
        """attn's stacked (3*nh*hs, C) query/key/value weight and (3*nh*hs,) bias (or None), built once.

        A cache therefore belongs to one set of weights: make a new one after changing them.
        """
        if self._w[layer] is None:
            self._w[layer] = (attn.qkv_weight(), attn.qkv_bias())
        return self._w[layer]

    def make_room(self, T: int) -> None:
        """Before T new positions: drop what no new query can see, then compact if the buffer is full."""
        if self.window is None:
            return
        keep = min(self.length, self.window - 1)  # the first new query sees window - 1 positions back
        self._offset += self.length - keep
        self.length = keep
        if self._offset + keep + T > self.max_length:
            for buf in (*self._k, *self._v):
                if buf is not None:  # (B, nh, max_length, hs): move the held positions to the front
                    buf[:, :, :keep] = buf[:, :, self._offset : self._offset + keep].clone()
            self._offset = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nh, T, hs) after the held positions; return all held keys/values, new ones last."""
        B, nh, T, hs = k.shape
        lo, end = self._offset, self._offset + self.length + T
        buf_k = self._k[layer]
        if buf_k is None or buf_k.shape[0] != B or buf_k.dtype != k.dtype or buf_k.device != k.device:
            self._k[layer] = k.new_empty(B, nh, self.max_length, hs)
            self._v[layer] = v.new_empty(B, nh, self.max_length, hs)
        self._k[layer][:, :, end - T : end] = k
        self._v[layer][:, :, end - T : end] = v
        return self._k[layer][:, :, lo:end], self._v[layer][:, :, lo:end]  # (B, nh, length+T, hs)


def _bare(model):
    """The GPT inside torch.compile's wrapper (which forwards attribute access but is not a GPT)."""
    return getattr(model, "_orig_mod", model)


def supports_cache(model) -> bool:
    """True for a GPT (also compiled): the models `forward_cached` can run."""
    return isinstance(_bare(model), GPT)


def sliding_context(model) -> int | None:
    """For a RoPE GPT: how many last tokens determine the next one, else None.

    A RoPE GPT attends over a sliding window of block_size positions (a cache that slides by one
    token computes exactly that), and each of its n_layer layers reaches block_size - 1 positions
    further back, so the last n_layer * (block_size - 1) + 1 tokens decide the next token.
    """
    model = _bare(model)
    if not isinstance(model, GPT) or not model.rope:
        return None
    return model.config.n_layer * (model.block_size - 1) + 1


def new_cache(model: GPT) -> KVCache:
    """An empty KV cache for `model` (buffers are allocated on first use); it slides for a RoPE GPT."""
    model = _bare(model)
    if model.rope:
        return KVCache(model.config.n_layer, 2 * model.block_size, window=model.block_size)
    return KVCache(model.config.n_layer, model.block_size)


def _attention_cached(
    attn: MultiHeadAttention, x: torch.Tensor, cache: KVCache, layer: int, last_only: bool
) -> torch.Tensor:
    """Attention for new tokens x (B, T, C) given the cached keys/values of earlier positions.

    Returns (B, T, C), or (B, 1, C) for the last new position only if last_only=True.
    """
    T = x.size(1)
    window = cache.window or cache.max_length
    q, k, v = attn.qkv(x, *cache.weight(layer, attn), start=cache.position)  # each (B, nh, T, hs)
    k, v = cache.update(layer, k, v)  # each (B, nh, n_keys, hs), the new positions last
    if last_only:
        q = q[:, :, -1:]  # (B, nh, 1, hs)
    n_queries, n_keys = q.size(2), k.size(2)
    if n_queries == 1 and n_keys <= window:
        # The newest query may look at every cached position: no mask needed.
        y = F.scaled_dot_product_attention(q, k, v)  # (B, nh, 1, hs)
    elif n_keys == T <= window:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    else:
        # The queries are the last n_queries positions; each sees itself and window - 1 before it.
        mask = sliding_causal_mask(n_queries, n_keys, window, x.device)  # (n_queries, n_keys)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, n_queries, hs)
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
    idx; the new keys/values are appended to `cache`. With learned or sinusoidal positions the
    total may not exceed block_size. A RoPE GPT's cache slides instead, so any number of tokens may
    follow: the result then equals `model(all_tokens_so_far)`, whose attention is a sliding window.
    With last_only=True only the last position's logits (B, 1, V) are computed, which lets the
    final block skip the feed-forward and projections of the other positions (used by generate).
    Use it without gradients (no_grad / inference_mode): the cache keeps tensors between calls.
    """
    model = _bare(model)
    if not isinstance(model, GPT):
        raise TypeError(f"forward_cached needs a GPT, got {type(model).__name__}")
    _check_idx(idx, None)
    start, T = cache.length, idx.size(1)
    if cache.window is not None and cache.window < T:  # a long prefill: one window-sized chunk at a time
        chunks = idx.split(cache.window, dim=1)
        n = len(chunks)
        logits = [forward_cached(model, c, cache, last_only or i < n - 1) for i, c in enumerate(chunks)]
        return logits[-1] if last_only else torch.cat(logits, dim=1)  # (B, 1 or T, V)
    if cache.window is None and start + T > model.block_size:
        raise ValueError(
            f"cache holds {start} positions; {T} more would exceed block_size {model.block_size}. "
            "Reset the cache and re-prefill with the last block_size tokens."
        )
    cache.make_room(T)
    x = model.embed(idx, cache.position)  # (B, T, C) no position table past block_size: RoPE only
    last = len(model.blocks) - 1
    for layer, block in enumerate(model.blocks):
        x = _block_cached(block, x, cache, layer, last_only and layer == last)  # (B, T or 1, C)
    cache.length += T
    cache.position += T
    x = model.ln_f(x)  # (B, T or 1, C)
    return model.lm_head(x)  # (B, T or 1, V)
