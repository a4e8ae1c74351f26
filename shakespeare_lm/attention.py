"""Causal self-attention: one `Head` written out step by step, and `MultiHeadAttention` with two equal paths.

Follows the Zero-to-Hero GPT lecture ("Let's build GPT", gpt.py: `Head`, `MultiHeadAttention`, `tril`)
and nanoGPT's fused query/key/value projection for the fast path; the options of notebook 10 (bias in
the projections, QK-norm, rotary positions) follow nanoGPT, modded-nanogpt and RoFormer.
Shapes: B batch, T time, C channels (n_embd), nh heads, hs head size.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from torch.nn import functional as F

from .positional import Rotary, sliding_causal_mask

AttnImpl = Literal["sdpa", "explicit"]
_ATTN_IMPLS = ("sdpa", "explicit")


def rope_and_norm(q: torch.Tensor, k: torch.Tensor, rotary: Rotary | None, qk_norm: bool,
                  start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys (..., T, hs) at positions start.. -> RMS-normalised (qk_norm), then rotated (rope).

    Normalise before rotating, as modded-nanogpt does; a rotation keeps the norm either way.
    """
    if qk_norm:
        q = F.rms_norm(q, (q.size(-1),))  # (..., T, hs) unit root-mean-square, no learned gain
        k = F.rms_norm(k, (k.size(-1),))  # (..., T, hs)
    if rotary is not None:
        q, k = rotary(q, start), rotary(k, start)  # (..., T, hs) each
    return q, k


# On a CPU, for windows of up to this many tokens, three batched matmuls beat SDPA's fused kernel:
# ~0.55x its time at T = 64, ~0.85x at 128, but 1.05-1.2x at 256 (benchmarks/cpu_kernels.py).
CPU_MATMUL_MAX_T = 128
_CAUSAL_BIAS: dict[tuple[int, torch.dtype], torch.Tensor] = {}


def causal_attention_matmul(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax(q kᵀ / √hs) v as three batched matmuls: q, k, v (B, nh, T, hs) -> (B, nh, T, hs).

    The same function as `F.scaled_dot_product_attention(q, k, v, is_causal=True)` and as `Head`'s
    step-by-step math, with the heads batched and the causal mask added as a bias of 0 / -inf in
    the first matmul. MultiHeadAttention uses it on a CPU for short windows (CPU_MATMUL_MAX_T), where
    it is faster than SDPA's fused kernel; it materialises the (B*nh, T, T) weights.
    """
    B, nh, T, hs = q.shape
    key = (T, q.dtype)
    bias = _CAUSAL_BIAS.get(key)
    if bias is None:  # (T, T): 0 on and below the diagonal, -inf above it (the future)
        bias = _CAUSAL_BIAS[key] = torch.full((T, T), float("-inf"), dtype=q.dtype).triu(1)
    wei = torch.baddbmm(bias.expand(B * nh, T, T), q.reshape(B * nh, T, hs), k.reshape(B * nh, T, hs).mT,
                        alpha=hs ** -0.5)  # (B*nh, T, T)
    return torch.bmm(wei.softmax(dim=-1), v.reshape(B * nh, T, hs)).view(B, nh, T, hs)


class Head(nn.Module):
    """One head of causal self-attention, written out step by step (notebook 03).

    Options of notebook 10: `bias` in the query/key/value projections, `qk_norm` (RMS-normalise q
    and k), `rope` (rotate q and k by their positions). With rope a sequence may be longer than
    block_size: each position then attends to the last block_size positions (a sliding window).
    """

    def __init__(self, n_embd: int, head_size: int, block_size: int, dropout: float = 0.0, *,
                 bias: bool = False, qk_norm: bool = False, rope: bool = False):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=bias)
        self.query = nn.Linear(n_embd, head_size, bias=bias)
        self.value = nn.Linear(n_embd, head_size, bias=bias)
        # A buffer, not a parameter; non-persistent so it stays out of the state_dict.
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.block_size = block_size
        self.qk_norm = qk_norm
        self.rotary = Rotary(head_size, block_size) if rope else None

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """x (B, T, C) -> out (B, T, hs); with return_attn=True -> (out, wei) with wei (B, T, T)."""
        B, T, C = x.shape
        k = self.key(x)  # (B, T, hs)
        q = self.query(x)  # (B, T, hs)
        q, k = rope_and_norm(q, k, self.rotary, self.qk_norm)  # (B, T, hs) each
        # Scale by 1/sqrt(hs) so the softmax does not saturate into one-hot rows at init.
        wei = q @ k.transpose(-2, -1) * k.size(-1) ** -0.5  # (B, T, T)
        if self.block_size < T:  # only RoPE gets here (_check_idx): a sliding window of block_size positions
            future = ~sliding_causal_mask(T, T, self.block_size, x.device)  # (T, T)
        else:
            future = self.tril[:T, :T] == 0  # (T, T) True above the diagonal
        wei = wei.masked_fill(future, float("-inf"))  # (B, T, T) no peeking ahead
        wei = F.softmax(wei, dim=-1)  # (B, T, T)
        attn = wei
        wei = self.dropout(wei)
        v = self.value(x)  # (B, T, hs)
        out = wei @ v  # (B, T, hs)
        return (out, attn) if return_attn else out


class MultiHeadAttention(nn.Module):
    """Several heads of self-attention in parallel, then a projection (notebook 04).

    Two paths compute the same function: "explicit" loops over the `Head` modules (the lecture's
    code, and the one that can return attention weights); "sdpa" (the default) stacks the heads'
    query/key/value weights and calls `F.scaled_dot_product_attention`, which is much faster (on a
    CPU, for windows of up to CPU_MATMUL_MAX_T tokens without dropout, `causal_attention_matmul`:
    the same function, faster there).
    """

    def __init__(self, n_embd: int, num_heads: int, head_size: int, block_size: int, dropout: float = 0.0,
                 bias: bool = True, *, attn_bias: bool = False, qk_norm: bool = False, rope: bool = False):
        super().__init__()
        options = {"bias": attn_bias, "qk_norm": qk_norm, "rope": rope}
        self.heads = nn.ModuleList([Head(n_embd, head_size, block_size, dropout, **options)
                                    for _ in range(num_heads)])
        self.proj = nn.Linear(num_heads * head_size, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.num_heads = num_heads
        self.head_size = head_size
        self.attn_impl: AttnImpl = "sdpa"

    @property
    def attn_impl(self) -> AttnImpl:
        """"sdpa" (fast, the default) or "explicit" (the loop over `Head`s); checked when set."""
        return self._attn_impl

    @attn_impl.setter
    def attn_impl(self, impl: AttnImpl) -> None:
        if impl not in _ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {_ATTN_IMPLS}, got {impl!r}")
        self._attn_impl = impl

    def qkv_weight(self) -> torch.Tensor:
        """The heads' query, key and value weights stacked into one (3*nh*hs, C) matrix."""
        return torch.cat(
            [h.query.weight for h in self.heads]
            + [h.key.weight for h in self.heads]
            + [h.value.weight for h in self.heads]
        )  # (3*nh*hs, C); rows of head i sit at i*hs..(i+1)*hs within each third

    def qkv_bias(self) -> torch.Tensor | None:
        """The heads' query, key and value biases stacked like `qkv_weight()` -> (3*nh*hs,), or None."""
        if self.heads[0].query.bias is None:
            return None
        return torch.cat(
            [h.query.bias for h in self.heads]
            + [h.key.bias for h in self.heads]
            + [h.value.bias for h in self.heads]
        )  # (3*nh*hs,)

    def qkv(self, x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
            start: int = 0) -> tuple[torch.Tensor, ...]:
        """x (B, T, C) at positions start.. -> q, k, v, each (B, nh, T, hs), in one matmul over all heads.

        `weight` and `bias` are `qkv_weight()` and `qkv_bias()`, passed in by a caller that stacked
        them once (the KV cache). q and k come out normalised and rotated as the options say.
        """
        B, T, C = x.shape
        nh, hs = self.num_heads, self.head_size
        if weight is None:
            weight, bias = self.qkv_weight(), self.qkv_bias()
        qkv = F.linear(x, weight, bias)  # (B, T, 3*nh*hs)
        q, k, v = qkv.split(nh * hs, dim=2)  # each (B, T, nh*hs)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        q, k = rope_and_norm(q, k, self.heads[0].rotary, self.heads[0].qk_norm, start)  # (B, nh, T, hs) each
        return q, k, v

    def project(self, y: torch.Tensor) -> torch.Tensor:
        """The heads' outputs y (B, nh, T, hs) side by side, then the output projection -> (B, T, C)."""
        B, nh, T, hs = y.shape
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # (B, T, nh*hs) heads side by side, like torch.cat
        return self.dropout(self.proj(y))  # (B, T, C)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """x (B, T, C) -> (B, T, C); with return_attn=True -> (out, wei), wei (B, nh, T, T).

        return_attn always takes the explicit path (SDPA does not expose the weights).
        """
        if return_attn or self.attn_impl == "explicit":
            outs, weis = zip(*(h(x, return_attn=True) for h in self.heads), strict=True)
            out = torch.cat(outs, dim=-1)  # (B, T, nh*hs)
            out = self.dropout(self.proj(out))  # (B, T, C)
            return (out, torch.stack(weis, dim=1)) if return_attn else out
        q, k, v = self.qkv(x)  # each (B, nh, T, hs)
        dropout_p = self.heads[0].dropout.p if self.training else 0.0
        T, block_size = x.size(1), self.heads[0].block_size
        if x.device.type == "cpu" and x.size(1) <= min(block_size, CPU_MATMUL_MAX_T) and not dropout_p:
            y = causal_attention_matmul(q, k, v)  # (B, nh, T, hs)
        elif block_size < T:  # only RoPE gets here: a sliding window of block_size positions, as in Head
            mask = sliding_causal_mask(T, T, block_size, x.device)  # (T, T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, nh, T, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)  # (B, nh, T, hs)
        return self.project(y)


__all__ = ["CPU_MATMUL_MAX_T", "AttnImpl", "Head", "MultiHeadAttention", "causal_attention_matmul",
           "rope_and_norm"]
