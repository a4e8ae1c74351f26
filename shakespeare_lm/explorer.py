"""Looking inside a trained GPT: attention maps, the characters a position attends to, next-character
probabilities and the token embeddings in 2-D, as plain tensors and lists (notebook 08).

Follows the attention visualisations of the "Let's build GPT" lecture (the `wei` matrix) and the
head-by-head reading of "A Mathematical Framework for Transformer Circuits" (Elhage et al., 2021).
The widget in widgets.py and the figures in plotting.py are thin layers over these functions.
Shapes: T time, nh heads, C channels (n_embd), V vocab size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .model import GPT
from .utils import model_device

VOWELS = set("aeiou")
# The groups the embedding scatter is coloured by, in legend order.
CHAR_CLASSES = ("vowel", "consonant", "capital", "punctuation", "space")


def char_class(ch: str) -> str:
    """"vowel" / "consonant" (lower case), "capital", "space" (space and newline) or "punctuation"
    (every other symbol, digits included)."""
    if ch.isspace():
        return "space"
    if len(ch) == 1 and ch.isalpha():
        if ch.isupper():
            return "capital"
        return "vowel" if ch in VOWELS else "consonant"
    return "punctuation"


def show_char(ch: str) -> str:
    """A character as a label: newline as ⏎ and space as ␣ so they can be seen."""
    return {"\n": "⏎", " ": "␣"}.get(ch, ch)


def _check_gpt(model: nn.Module) -> GPT:
    if not isinstance(model, GPT):
        raise TypeError(f"this needs a GPT (it has attention layers); got a {type(model).__name__}")
    return model


def token_strings(tokenizer, ids) -> list[str]:
    """Each token id decoded on its own: the characters of the text, for a character tokenizer."""
    return [tokenizer.decode([int(i)]) for i in ids]


def encode_text(model: GPT, tokenizer, text: str) -> torch.Tensor:
    """`text` as a (1, T) tensor on the model's device; too long or empty is a one-line ValueError."""
    if not text:
        raise ValueError("the text is empty; type at least one character")
    ids = tokenizer.encode(text)  # a ValueError names characters outside the vocabulary
    if len(ids) > model.block_size:
        raise ValueError(f"the text is {len(ids)} tokens long but the model sees at most "
                         f"{model.block_size} (block_size); shorten it")
    return torch.tensor([ids], dtype=torch.long, device=model_device(model))  # (1, T)


@torch.no_grad()
def attention_maps(model: nn.Module, tokenizer, text: str) -> torch.Tensor:
    """Attention weights of every layer and head for `text` -> (n_layer, nh, T, T), on the CPU.

    Row t of a head's map says how much position t takes from each position 0..t (each row sums
    to 1). These are the weights of `GPT.get_attention` (the explicit path), computed in eval mode.
    """
    model = _check_gpt(model)
    idx = encode_text(model, tokenizer, text)  # (1, T)
    was_training = model.training
    model.eval()
    try:
        maps = model.get_attention(idx)  # n_layer x (1, nh, T, T)
    finally:
        model.train(was_training)
    return torch.cat(maps, dim=0).float().cpu()  # (n_layer, nh, T, T)


def _check_index(name: str, value: int, size: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise ValueError(f"{name} must be an integer from 0 to {size - 1}, got {value!r}")
    return value


def top_attended(maps: torch.Tensor, tokens, layer: int, head: int, position: int,
                 k: int = 5) -> list[tuple[str, int, float]]:
    """The k positions that `position` attends to most in one head -> [(char, position, weight)],
    highest weight first (ties: the earlier position first).

    `maps` is attention_maps' (n_layer, nh, T, T); `tokens` the T token strings (a string works
    for characters). Only positions 0..position can be attended to, so at most position + 1 come back.
    """
    n_layer, nh, T, _ = maps.shape
    if len(tokens) != T:
        raise ValueError(f"got {len(tokens)} tokens for attention maps over {T} positions")
    _check_index("layer", layer, n_layer)
    _check_index("head", head, nh)
    _check_index("position", position, T)
    row = maps[layer, head, position, : position + 1].double()  # (position+1,)
    # stable descending order so equal weights keep their left-to-right order
    order = sorted(range(position + 1), key=lambda j: -float(row[j]))[: max(0, int(k))]
    return [(tokens[j], j, float(row[j])) for j in order]


@torch.no_grad()
def next_token_logits(model: nn.Module, tokenizer, prompt: str) -> torch.Tensor:
    """The model's logits (V,) for the token after `prompt` (cropped to its last block_size tokens,
    as generate does)."""
    if not prompt:
        raise ValueError("the prompt is empty; type at least one character")
    ids = tokenizer.encode(prompt)
    block_size = getattr(model, "block_size", None)
    if block_size is not None:
        ids = ids[-block_size:]
    idx = torch.tensor([ids], dtype=torch.long, device=model_device(model))  # (1, T)
    was_training = model.training
    model.eval()
    try:
        logits, _ = model(idx)  # (1, T, V)
    finally:
        model.train(was_training)
    return logits[0, -1].float().cpu()  # (V,)


def next_char_probs(model: nn.Module, tokenizer, prompt: str, k: int = 10) -> list[tuple[str, float]]:
    """The k most likely next characters after `prompt` -> [(char, probability)], most likely first.

    The probabilities are softmax(logits) at the last position (temperature 1), so they are the
    top k of a distribution that sums to 1.
    """
    probs = F.softmax(next_token_logits(model, tokenizer, prompt), dim=-1)  # (V,)
    top = torch.topk(probs, min(max(1, int(k)), probs.numel()))
    return [(tokenizer.decode([int(i)]), float(p)) for p, i in zip(top.values, top.indices, strict=True)]


@torch.no_grad()
def embedding_pca(model: nn.Module, tokenizer) -> tuple[torch.Tensor, list[str]]:
    """The token embedding table projected on its two main directions -> (coords (V, 2), labels).

    Principal component analysis through an exact SVD of the centred table (deterministic, unlike
    torch.pca_lowrank's random projection); each axis's sign is fixed so that its largest
    coordinate is positive. labels[i] is token i decoded.
    """
    table = getattr(model, "token_embedding_table", None)
    if not isinstance(table, nn.Embedding):
        raise TypeError(f"a {type(model).__name__} has no token_embedding_table to project")
    W = table.weight.detach().float().cpu()  # (V, C)
    W = W - W.mean(dim=0, keepdim=True)  # (V, C) centred: PCA explains variance around the mean
    U, S, _ = torch.linalg.svd(W, full_matrices=False)  # U (V, r), S (r,)
    coords = U[:, :2] * S[:2]  # (V, 2)
    biggest = coords.gather(0, coords.abs().argmax(dim=0, keepdim=True))  # (1, 2)
    coords = coords * torch.sign(biggest)  # (V, 2)
    return coords, token_strings(tokenizer, range(W.size(0)))


def explained_variance(model: nn.Module) -> torch.Tensor:
    """Share of the embedding table's variance along each principal direction, largest first."""
    W = model.token_embedding_table.weight.detach().float().cpu()  # (V, C)
    S = torch.linalg.svdvals(W - W.mean(dim=0, keepdim=True))  # (r,)
    return S**2 / (S**2).sum()


def head_scores(maps: torch.Tensor, tokens) -> dict[str, torch.Tensor]:
    """Simple summaries of what each head does, each (n_layer, nh), averaged over query positions:

    previous: mean weight on the position just before (t - 1), over t >= 1
    self:     mean weight on the query's own position
    first:    mean weight on position 0, over t >= 1
    newline:  mean total weight on newline positions, over queries that have a newline before them
    """
    n_layer, nh, T, _ = maps.shape
    t = torch.arange(T)
    prev = maps[..., t[1:], t[1:] - 1].mean(-1) if T > 1 else torch.zeros(n_layer, nh)  # (L, nh)
    own = maps[..., t, t].mean(-1)  # (L, nh)
    first = maps[..., 1:, 0].mean(-1) if T > 1 else torch.zeros(n_layer, nh)  # (L, nh)
    is_nl = torch.tensor([tok == "\n" for tok in tokens], dtype=maps.dtype)  # (T,)
    seen = is_nl.cumsum(0) > 0  # (T,) queries with a newline at or before them
    on_nl = (maps * is_nl).sum(-1)  # (L, nh, T)
    newline = on_nl[..., seen].mean(-1) if bool(seen.any()) else torch.zeros(n_layer, nh)  # (L, nh)
    return {"previous": prev, "self": own, "first": first, "newline": newline}
