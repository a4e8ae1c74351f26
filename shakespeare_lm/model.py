"""The language models of the series: a bigram table and a GPT built from the lecture's modules.

Follows the Zero-to-Hero GPT lecture ("Let's build GPT", gpt.py) for the class structure and names
(`Head`, `MultiHeadAttention`, `FeedForward`, `Block`, `token_embedding_table`, `tril`), and
nanoGPT (model.py) for GPT-2 initialisation, weight tying, `ln_f`, `lm_head` and parameter counts.
The models here know nothing of fast decoding: the KV cache lives in kvcache.py, which imports this
module (never the other way round) and drives these modules from the outside. GPTConfig, BigramConfig
and PRESETS live in model_config.py and are importable from here too.
Shapes: B batch, T time, C channels (n_embd), nh heads, hs head size, V vocab size.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
from torch.nn import functional as F

from .model_config import PRESETS, BigramConfig, GPTConfig, get_preset
from .utils import check_fields

AttnImpl = Literal["sdpa", "explicit"]
_ATTN_IMPLS = ("sdpa", "explicit")


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    if targets is None:
        return None
    B, T, V = logits.shape
    if targets.shape != (B, T):
        raise ValueError(f"targets must have shape {(B, T)} like idx, got {tuple(targets.shape)}")
    # Flatten to (B*T, V) as in the lecture; -1 marks positions to ignore (nanoGPT's convention).
    return F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T), ignore_index=-1)


def _check_idx(idx: torch.Tensor, block_size: int | None) -> None:
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
        shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"idx must be a (B, T) tensor of token ids, got {shape}")
    if idx.dtype not in (torch.long, torch.int):
        raise ValueError(f"idx must hold integer token ids (torch.long), got {idx.dtype}")
    if block_size is not None and idx.size(1) > block_size:
        raise ValueError(
            f"sequence length {idx.size(1)} exceeds block_size {block_size}; "
            f"crop the context to its last {block_size} tokens (generate() does this)"
        )


class BigramLanguageModel(nn.Module):
    """Predicts the next token from the current one by table look-up (notebook 02)."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.config = BigramConfig(vocab_size)
        self.block_size = None  # no context limit: each prediction sees one token
        # Row i holds the logits of the token that follows token i.
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        _check_idx(idx, None)
        logits = self.token_embedding_table(idx)  # (B, T, V)
        return logits, _cross_entropy(logits, targets)

    def num_parameters(self) -> int:
        """Number of parameters: the whole model is one vocab_size x vocab_size table."""
        return sum(p.numel() for p in self.parameters())


class Head(nn.Module):
    """One head of causal self-attention, written out step by step (notebook 03)."""

    def __init__(self, n_embd: int, head_size: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        # A buffer, not a parameter; non-persistent so it stays out of the state_dict.
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """x (B, T, C) -> out (B, T, hs); with return_attn=True -> (out, wei) with wei (B, T, T)."""
        B, T, C = x.shape
        k = self.key(x)  # (B, T, hs)
        q = self.query(x)  # (B, T, hs)
        # Scale by 1/sqrt(hs) so the softmax does not saturate into one-hot rows at init.
        wei = q @ k.transpose(-2, -1) * k.size(-1) ** -0.5  # (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # (B, T, T) no peeking ahead
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
    query/key/value weights and calls `F.scaled_dot_product_attention`, which is much faster.
    """

    def __init__(self, n_embd: int, num_heads: int, head_size: int, block_size: int, dropout: float = 0.0,
                 bias: bool = True):
        super().__init__()
        self.heads = nn.ModuleList([Head(n_embd, head_size, block_size, dropout) for _ in range(num_heads)])
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

    def qkv(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """x (B, T, C) -> q, k, v, each (B, nh, T, hs), in one matmul over the stacked head weights.

        `weight` is `qkv_weight()`, passed in by a caller that stacked it once (the KV cache).
        """
        B, T, C = x.shape
        nh, hs = self.num_heads, self.head_size
        qkv = F.linear(x, self.qkv_weight() if weight is None else weight)  # (B, T, 3*nh*hs)
        q, k, v = qkv.split(nh * hs, dim=2)  # each (B, T, nh*hs)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
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
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)  # (B, nh, T, hs)
        return self.project(y)


class FeedForward(nn.Module):
    """A per-position MLP: Linear, ReLU, Linear, Dropout (notebook 04).

    ReLU as in the lecture (nanoGPT and GPT-2 use GELU); the hidden layer is 4x wider.
    """

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd, bias=bias),
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd, bias=bias),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, T, C)


class Block(nn.Module):
    """A transformer block: communication (attention) then computation (feed-forward) (notebook 04).

    Pre-LayerNorm with residual connections: x + sa(ln1(x)), then x + ffwd(ln2(x)).
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        head_size = n_embd // n_head
        self.sa = MultiHeadAttention(n_embd, n_head, head_size, block_size, dropout, bias)
        self.ffwd = FeedForward(n_embd, dropout, bias)
        self.ln1 = nn.LayerNorm(n_embd, bias=bias)
        self.ln2 = nn.LayerNorm(n_embd, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x


class GPT(nn.Module):
    """A decoder-only transformer: embeddings, a stack of Blocks, ln_f and a tied lm_head (notebook 05)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.block_size = config.block_size
        C = config.n_embd
        self.token_embedding_table = nn.Embedding(config.vocab_size, C)
        self.position_embedding_table = nn.Embedding(config.block_size, C)
        block_args = (C, config.n_head, config.block_size, config.dropout, config.bias)
        self.blocks = nn.Sequential(*[Block(*block_args) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(C, bias=config.bias)
        # No bias so the weight can be shared with the token embedding (weight tying, as in GPT-2).
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding_table.weight

        self.apply(self._init_weights)
        # GPT-2: scale the init of projections into the residual stream by 1/sqrt(2 * n_layer),
        # since every block adds two of them to the stream.
        std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.sa.proj.weight, mean=0.0, std=std)
            nn.init.normal_(block.ffwd.net[2].weight, mean=0.0, std=std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Number of parameters; with non_embedding=True the position embeddings are not counted.

        Same as nanoGPT's get_num_params: the token embedding is counted because it is shared with
        lm_head, and shared tensors are counted once.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.position_embedding_table.weight.numel()
        return n

    def set_attn_impl(self, impl: AttnImpl) -> GPT:
        """Choose "sdpa" (fast, default) or "explicit" (the lecture's math) for every attention layer."""
        for m in self.modules():
            if isinstance(m, MultiHeadAttention):
                m.attn_impl = impl
        return self

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token plus position embeddings of idx (B, T) sitting at positions start..start+T-1."""
        T = idx.size(1)
        tok_emb = self.token_embedding_table(idx)  # (B, T, C)
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        pos_emb = self.position_embedding_table(pos)  # (T, C)
        return tok_emb + pos_emb  # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) token ids, T <= block_size -> (logits (B, T, V), loss or None)."""
        _check_idx(idx, self.block_size)
        x = self.embed(idx)  # (B, T, C)
        x = self.blocks(x)  # (B, T, C)
        x = self.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)
        return logits, _cross_entropy(logits, targets)

    def get_attention(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer for idx (B, T): a list of n_layer tensors (B, nh, T, T).

        Computed with the explicit path; call it in eval mode (and under torch.no_grad) for plots.
        """
        _check_idx(idx, self.block_size)
        x = self.embed(idx)  # (B, T, C)
        maps = []
        for block in self.blocks:
            att_out, wei = block.sa(block.ln1(x), return_attn=True)  # (B, T, C), (B, nh, T, T)
            maps.append(wei)
            x = x + att_out
            x = x + block.ffwd(block.ln2(x))  # (B, T, C)
        return maps


_MODEL_TYPES = {"GPT": (GPT, GPTConfig), "BigramLanguageModel": (BigramLanguageModel, BigramConfig)}


def build_model(model_type: str, config: dict) -> nn.Module:
    """Rebuild a model from `type(model).__name__` and `dataclasses.asdict(model.config)` (checkpoints)."""
    if model_type not in _MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; choose one of: {', '.join(_MODEL_TYPES)}")
    cls, config_cls = _MODEL_TYPES[model_type]
    check_fields(config_cls, config)
    cfg = config_cls(**config)
    if cls is BigramLanguageModel:
        return BigramLanguageModel(cfg.vocab_size)
    return cls(cfg)


__all__ = [
    "PRESETS", "GPT", "BigramConfig", "BigramLanguageModel", "Block", "FeedForward", "GPTConfig", "Head",
    "MultiHeadAttention", "build_model", "get_preset",
]
