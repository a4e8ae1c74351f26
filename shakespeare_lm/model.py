"""The language models of the series: a bigram table and a GPT built from the lecture's modules.

Follows the Zero-to-Hero GPT lecture ("Let's build GPT", gpt.py) for the class structure and names
(`Head`, `MultiHeadAttention` (in attention.py), `FeedForward`, `Block`, `token_embedding_table`), and
nanoGPT (model.py) for GPT-2 initialisation, weight tying, `ln_f`, `lm_head` and parameter counts.
The options of notebook 10 (GPTConfig's pos_encoding, activation, qk_norm, tie_weights, attn_bias)
default to the lecture's choices; sinusoidal and rotary positions live in positional.py.
The models here know nothing of fast decoding: the KV cache lives in kvcache.py, which imports this
module (never the other way round) and drives these modules from the outside. GPTConfig, BigramConfig
and PRESETS live in model_config.py, Head and MultiHeadAttention in attention.py; all are importable
from here too.
Shapes: B batch, T time, C channels (n_embd), nh heads, hs head size, V vocab size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from .attention import AttnImpl, Head, MultiHeadAttention, rope_and_norm
from .model_config import PRESETS, BigramConfig, GPTConfig, get_preset
from .positional import SinusoidalPositions
from .utils import check_fields


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


class ReLUSquared(nn.Module):
    """relu(x)**2, the feed-forward activation found by Primer (So et al. 2021), used by modded-nanogpt."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


# nn.GELU() is the exact (erf) GELU of nanoGPT and GPT-2's paper, not the tanh approximation.
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "relu2": ReLUSquared}


class FeedForward(nn.Module):
    """A per-position MLP: Linear, ReLU, Linear, Dropout (notebook 04).

    ReLU as in the lecture; activation="gelu" (nanoGPT, GPT-2) or "relu2" (Primer) swap it
    (notebook 10). The hidden layer is 4x wider.
    """

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True, activation: str = "relu"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            choices = ", ".join(map(repr, _ACTIVATIONS))
            raise ValueError(f"activation must be one of {choices}, got {activation!r}")
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd, bias=bias),
            _ACTIVATIONS[activation](),
            nn.Linear(4 * n_embd, n_embd, bias=bias),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, T, C)


class Block(nn.Module):
    """A transformer block: communication (attention) then computation (feed-forward) (notebook 04).

    Pre-LayerNorm with residual connections: x + sa(ln1(x)), then x + ffwd(ln2(x)).
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0, bias: bool = True,
                 *, activation: str = "relu", attn_bias: bool = False, qk_norm: bool = False,
                 rope: bool = False):
        super().__init__()
        head_size = n_embd // n_head
        self.sa = MultiHeadAttention(n_embd, n_head, head_size, block_size, dropout, bias,
                                     attn_bias=attn_bias, qk_norm=qk_norm, rope=rope)
        self.ffwd = FeedForward(n_embd, dropout, bias, activation)
        self.ln1 = nn.LayerNorm(n_embd, bias=bias)
        self.ln2 = nn.LayerNorm(n_embd, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x


class GPT(nn.Module):
    """A decoder-only transformer: embeddings, a stack of Blocks, ln_f and a tied lm_head (notebook 05).

    position_embedding_table is the learned nn.Embedding, a fixed SinusoidalPositions table, or None
    for RoPE (positions then enter each head by rotating q and k; see positional.py, notebook 10).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.block_size = config.block_size
        C = config.n_embd
        self.token_embedding_table = nn.Embedding(config.vocab_size, C)
        self.position_embedding_table: nn.Module | None = {
            "learned": lambda: nn.Embedding(config.block_size, C),
            "sinusoidal": lambda: SinusoidalPositions(config.block_size, C),
            "rope": lambda: None,
        }[config.pos_encoding]()
        block_args = (C, config.n_head, config.block_size, config.dropout, config.bias)
        options = {"activation": config.activation, "attn_bias": config.attn_bias, "qk_norm": config.qk_norm,
                   "rope": config.pos_encoding == "rope"}
        self.blocks = nn.Sequential(*[Block(*block_args, **options) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(C, bias=config.bias)
        # No bias so the weight can be shared with the token embedding (weight tying, as in GPT-2).
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.token_embedding_table.weight

        self.apply(self._init_weights)
        # GPT-2: scale the init of projections into the residual stream by 1/sqrt(2 * n_layer),
        # since every block adds two of them to the stream.
        std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.sa.proj.weight, mean=0.0, std=std)
            nn.init.normal_(block.ffwd.net[2].weight, mean=0.0, std=std)

    @property
    def rope(self) -> bool:
        """True when positions are rotary: then a sequence may be longer than block_size (sliding window)."""
        return self.config.pos_encoding == "rope"

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Number of parameters; with non_embedding=True the learned position embeddings are not counted.

        Same as nanoGPT's get_num_params: the token embedding is counted because it is shared with
        lm_head, and shared tensors are counted once (an untied lm_head adds vocab_size * n_embd).
        Sinusoidal and rotary positions have no parameters to leave out.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and isinstance(self.position_embedding_table, nn.Embedding):
            n -= self.position_embedding_table.weight.numel()
        return n

    def set_attn_impl(self, impl: AttnImpl) -> GPT:
        """Choose "sdpa" (fast, default) or "explicit" (the lecture's math) for every attention layer."""
        for m in self.modules():
            if isinstance(m, MultiHeadAttention):
                m.attn_impl = impl
        return self

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token plus position embeddings of idx (B, T) sitting at positions start..start+T-1.

        With RoPE only the token embeddings: the positions are applied inside attention.
        """
        T = idx.size(1)
        tok_emb = self.token_embedding_table(idx)  # (B, T, C)
        if self.position_embedding_table is None:
            return tok_emb  # (B, T, C)
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        pos_emb = self.position_embedding_table(pos)  # (T, C)
        return tok_emb + pos_emb  # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) token ids, T <= block_size -> (logits (B, T, V), loss or None).

        With RoPE T may exceed block_size: each position then attends to the last block_size
        positions (sliding-window attention, the function a sliding KV cache computes).
        """
        _check_idx(idx, None if self.rope else self.block_size)
        x = self.embed(idx)  # (B, T, C)
        x = self.blocks(x)  # (B, T, C)
        x = self.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)
        return logits, _cross_entropy(logits, targets)

    def get_attention(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer for idx (B, T): a list of n_layer tensors (B, nh, T, T).

        Computed with the explicit path; call it in eval mode (and under torch.no_grad) for plots.
        """
        _check_idx(idx, None if self.rope else self.block_size)
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
    "MultiHeadAttention", "ReLUSquared", "build_model", "get_preset", "rope_and_norm",
]
