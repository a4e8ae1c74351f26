"""Position information without a learned table: the sinusoidal table and rotary position embeddings (RoPE).

Follows "Attention Is All You Need" (Vaswani et al. 2017, section 3.5) for the sinusoidal table and
RoFormer (Su et al. 2021, section 3.4) for rotary embeddings, which rotate each pair of channels
(2i, 2i+1) of a query or key by the angle position * base^(-2i/hs). The angles are computed in
float64 and rounded once, so a rotation at position 10,000 is as accurate as one at position 0.
Shapes: T time, C channels (n_embd), hs head size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

ROPE_BASE = 10000.0  # the base of both papers: wavelengths from 2*pi to 10000*2*pi positions


def sinusoidal_table(n_positions: int, n_embd: int) -> torch.Tensor:
    """The (n_positions, n_embd) float32 table of sinusoidal position encodings.

    PE[pos, 2i] = sin(pos / 10000^(2i/C)) and PE[pos, 2i+1] = cos(pos / 10000^(2i/C)).

    Fixed, not learned: every position gets a distinct pattern of sines and cosines whose
    wavelengths form a geometric progression from 2*pi to 10000*2*pi.
    """
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (T, 1)
    two_i = torch.arange(0, n_embd, 2, dtype=torch.float64)  # (ceil(C/2),) the even channel indices 2i
    angle = pos / ROPE_BASE ** (two_i / n_embd)  # (T, ceil(C/2))
    table = torch.empty(n_positions, n_embd, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : n_embd // 2])  # an odd C has one more sine than cosine
    return table.float()  # (T, C)


class SinusoidalPositions(nn.Module):
    """A fixed table of sinusoidal position encodings, looked up like the learned nn.Embedding table.

    The table is a non-persistent buffer: it has no parameters and stays out of the state_dict,
    because it is a function of (block_size, n_embd) alone, so checkpoints of a sinusoidal GPT
    hold exactly the trained weights and the strict checkpoint loader needs no special case.
    """

    def __init__(self, block_size: int, n_embd: int):
        super().__init__()
        self.register_buffer("table", sinusoidal_table(block_size, n_embd), persistent=False)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        """Positions pos (T,) -> their encodings (T, C)."""
        return self.table[pos]  # (T, C)


def rope_angles(positions: torch.Tensor, head_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (T, hs/2) float32, of the RoPE angles position * ROPE_BASE^(-2i/hs).

    Column i belongs to the channel pair (2i, 2i+1). Computed in float64 on the CPU (not every
    accelerator has float64) and moved to the device of `positions`.
    """
    pos = positions.detach().to("cpu", torch.float64)[:, None]  # (T, 1)
    inv_freq = ROPE_BASE ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)  # (hs/2,)
    angle = pos * inv_freq  # (T, hs/2)
    return torch.cos(angle).float().to(positions.device), torch.sin(angle).float().to(positions.device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each channel pair (x[2i], x[2i+1]) of x (..., T, hs) by the angles whose cos/sin are (T, hs/2).

    The same as multiplying the complex number x[2i] + j*x[2i+1] by exp(j*angle): a rotation keeps
    lengths, and rotating a query by angle(m) and a key by angle(n) makes their dot product depend
    on m - n only.
    """
    pairs = x.unflatten(-1, (-1, 2))  # (..., T, hs/2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]  # (..., T, hs/2) each
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # (T, hs/2) in x's dtype (e.g. under autocast)
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)  # (..., T, hs/2, 2)
    return out.flatten(-2)  # (..., T, hs)


class Rotary(nn.Module):
    """Rotates queries or keys by their positions (RoPE), with cos/sin of positions 0..block_size-1 cached.

    The tables are non-persistent buffers (no parameters, no state_dict entries); positions past
    the tables (a KV cache that slides, or a sequence longer than block_size) are computed on the fly.
    """

    def __init__(self, head_size: int, block_size: int):
        super().__init__()
        if head_size % 2:
            raise ValueError(f"rotary embeddings rotate pairs of channels: head size must be even, "
                             f"got {head_size}")
        self.head_size = head_size
        cos, sin = rope_angles(torch.arange(block_size), head_size)  # (block_size, hs/2) each
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x (..., T, hs) at positions start..start+T-1 -> rotated x (..., T, hs)."""
        T = x.size(-2)
        if start + T <= self.cos.size(0):
            cos, sin = self.cos[start : start + T], self.sin[start : start + T]  # (T, hs/2) each
        else:
            cos, sin = rope_angles(torch.arange(start, start + T, device=x.device), self.head_size)
        return apply_rope(x, cos, sin)


def sliding_causal_mask(n_queries: int, n_keys: int, window: int, device=None) -> torch.Tensor:
    """Boolean (n_queries, n_keys) mask, True where query i may attend to key j.

    The queries are the last n_queries of the n_keys positions; each sees itself and at most
    window - 1 positions before it. With window >= n_keys this is the ordinary causal mask (tril).
    """
    past = n_keys - n_queries  # keys before the first query
    mask = torch.ones(n_queries, n_keys, dtype=torch.bool, device=device)
    return mask.tril(diagonal=past).triu(diagonal=past - window + 1)  # (n_queries, n_keys)


__all__ = [
    "ROPE_BASE", "Rotary", "SinusoidalPositions", "apply_rope", "rope_angles", "sinusoidal_table",
    "sliding_causal_mask",
]
