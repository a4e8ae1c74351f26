"""What a model is made of: GPTConfig, BigramConfig and the named GPT sizes in PRESETS.

Follows the lecture's hyperparameters (gpt.py) and nanoGPT's GPTConfig (model.py); the presets pair
by name with train_config.TRAIN_PRESETS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .utils import check_fields, check_positive_int

POS_ENCODINGS = ("learned", "sinusoidal", "rope")
ACTIVATIONS = ("relu", "gelu", "relu2")


@dataclass(frozen=True)
class GPTConfig:
    """Hyperparameters of a GPT; the defaults are the lecture's scaled-up model (`baby-gpt`)."""

    vocab_size: int = 65  # number of distinct tokens (65 characters in Tiny Shakespeare)
    block_size: int = 256  # maximum context length; position embeddings exist for 0..block_size-1
    n_layer: int = 6  # number of transformer blocks
    n_head: int = 6  # attention heads per block; each has head size n_embd // n_head
    n_embd: int = 384  # embedding width C (channels of the residual stream)
    dropout: float = 0.2  # dropout probability in attention, projections and feed-forward (0 = off)
    bias: bool = True  # biases in Linear layers and LayerNorms (the lecture has them; nanoGPT can drop them)
    # Since 2017 (notebook 10); each default is the lecture's choice, so older configs mean the same model.
    pos_encoding: str = "learned"  # "learned" table, "sinusoidal" fixed table (Vaswani et al. 2017), "rope"
    activation: str = "relu"  # feed-forward nonlinearity: "relu" (lecture), "gelu" (GPT-2), "relu2" (Primer)
    qk_norm: bool = False  # RMS-normalise each head's queries and keys before the dot product (no gain)
    tie_weights: bool = True  # lm_head shares the token embedding's weight (GPT-2); False = its own weight
    attn_bias: bool = False  # biases in the query/key/value projections (nanoGPT's c_attn has them)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) so every head "
                f"gets the same head size; e.g. n_embd={self.n_head * max(1, self.n_embd // self.n_head)}"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (0 disables it), got {self.dropout!r}")
        for name in ("bias", "qk_norm", "tie_weights", "attn_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name, choices in (("pos_encoding", POS_ENCODINGS), ("activation", ACTIVATIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                                 f"got {getattr(self, name)!r}")
        if self.pos_encoding == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"pos_encoding='rope' rotates pairs of channels, so the head size n_embd // n_head must be "
                f"even, got {self.n_embd // self.n_head}"
            )


# Named configurations. The vocabulary is Tiny Shakespeare's 65 characters; for another text pass
# its tokenizer, get_preset(name, tokenizer), and the vocabulary size comes from it.
PRESETS: dict[str, GPTConfig] = {
    # A few thousand parameters: for tests and quick notebook runs.
    "tiny": GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0),
    # One block of cpu-small with notebook 10's changes: the CPU speed record's model, val 1.89 in ~15 s
    # on 2 cores (benchmarks/train_speed.py).
    "cpu-fast": GPTConfig(vocab_size=65, block_size=64, n_layer=1, n_head=4, n_embd=128, dropout=0.0,
                          pos_encoding="rope", activation="relu2", qk_norm=True, tie_weights=False),
    # nanoGPT's CPU recipe (README "I only have a macbook"): val ≈ 1.88 after 2000 iterations.
    "cpu-small": GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
    # nanoGPT's exact CPU architecture (GELU, biases everywhere, learned positions, tied lm_head).
    "nanogpt-cpu": GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                             activation="gelu", bias=True, attn_bias=True),
    # The lecture's final model (val 1.4873) and nanoGPT's shakespeare_char "baby GPT".
    "baby-gpt": GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
}


def get_preset(name: str, tokenizer=None, **overrides: object) -> GPTConfig:
    """Return the preset `name` with fields replaced by `overrides` (validated again).

    With a `tokenizer`, vocab_size is the tokenizer's, so a model for another text fits its data;
    an explicit vocab_size that disagrees with the tokenizer is an error.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    check_fields(GPTConfig, overrides)
    if tokenizer is not None:
        vocab_size = tokenizer.vocab_size
        if overrides.get("vocab_size", vocab_size) != vocab_size:
            raise ValueError(
                f"vocab_size={overrides['vocab_size']!r} disagrees with the tokenizer's {vocab_size} tokens; "
                "drop vocab_size= (the tokenizer sets it)"
            )
        overrides["vocab_size"] = vocab_size
    return dataclasses.replace(PRESETS[name], **overrides)


@dataclass(frozen=True)
class BigramConfig:
    """Hyperparameters of the bigram model: only the vocabulary size."""

    vocab_size: int = 65  # number of distinct tokens; the table is vocab_size x vocab_size

    def __post_init__(self) -> None:
        check_positive_int("vocab_size", self.vocab_size)


__all__ = ["ACTIVATIONS", "POS_ENCODINGS", "PRESETS", "BigramConfig", "GPTConfig", "get_preset"]
