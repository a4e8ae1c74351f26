"""Evaluation beyond one number: loss at each context position, the loss of every token, and sampled
continuations scored against the true text with BLEU and chrF.

Losses follow `evaluation.evaluate` (the lecture's cross-entropy over non-overlapping windows of the
split, from `data.iter_eval_batches`); BLEU (Papineni et al. 2002) and chrF (Popović 2015) are computed
by sacrebleu, the standard implementation. Shapes: B batch, T time, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu
import torch
from torch import nn

from .evaluation import iter_window_losses
from .sampling import generate
from .utils import check_positive_int, model_device


def _block_size(model: nn.Module, block_size: int | None) -> int:
    block_size = block_size or getattr(model, "block_size", None)
    if block_size is None:
        raise ValueError("this model has no block_size of its own; pass block_size=..., e.g. block_size=8")
    check_positive_int("block_size", block_size)
    return block_size


@torch.no_grad()
def loss_by_position(
    model: nn.Module,
    data: torch.Tensor,
    block_size: int | None = None,
    batch_size: int = 64,
    *,
    every: int = 1,
) -> torch.Tensor:
    """Mean next-token loss at each position of the context window: a (T,) tensor, T = block_size.

    Position t predicts token t+1 of a window having seen t+1 tokens, so a model that uses its
    context has a loss falling with t, while a bigram's is flat. Averaged over the non-overlapping
    full windows of `data` (those `evaluate` uses, without the shorter last one); every=N > 1 takes
    every Nth window only. Runs in eval mode and restores the model's mode afterwards.
    """
    block_size = _block_size(model, block_size)
    check_positive_int("batch_size", batch_size)
    if (len(data) - 1) // block_size < 1:
        raise ValueError(f"data has {len(data)} tokens, too few for one window of block_size={block_size}")
    total, count = torch.zeros(block_size, dtype=torch.float64), 0
    for losses in iter_window_losses(model, data, block_size, batch_size, every=every):
        if losses.size(1) == block_size:  # not the shorter remainder window, which comes last
            total += losses.double().sum(dim=0).cpu()  # (T,)
            count += losses.size(0)
    return (total / count).float()  # (T,)


@torch.no_grad()
def per_token_losses(
    model: nn.Module,
    data: torch.Tensor,
    block_size: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Loss (nats) of every target of the split, in order: element i is the loss of predicting data[i+1].

    The windows are exactly `evaluate`'s (iter_eval_batches, shorter last window included), so the
    mean equals evaluate(...).loss. Group the result by data[1:] (the character predicted) or by
    data[:-1] (the one before it) to see which characters are hard. Shape (len(data) - 1,).
    """
    block_size = _block_size(model, block_size)
    check_positive_int("batch_size", batch_size)
    parts = [losses.reshape(-1).cpu()  # (B*T,) windows in order
             for losses in iter_window_losses(model, data, block_size, batch_size)]
    return torch.cat(parts)  # (len(data) - 1,)


def _as_list(name: str, value: str | Sequence[str]) -> list[str]:
    if isinstance(value, str):
        return [value]
    value = list(value)
    if not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a string or a list of strings")
    return value


def bleu_chrf(
    hypotheses: str | Sequence[str],
    references: str | Sequence[str],
    *,
    tokenize: str = "char",
) -> dict[str, float]:
    """Corpus BLEU and chrF (0-100) of `hypotheses` against one reference each, computed by sacrebleu.

    tokenize="char" (the default) makes BLEU count character 1- to 4-grams, which suits short
    continuations of a character model: with words ("13a", sacrebleu's default for BLEU) a 100-character
    continuation has about 20 words and almost never shares a 4-gram with the truth, so every model
    scores near 0. chrF counts character 1- to 6-grams (and ignores `tokenize`).
    """
    hyps, refs = _as_list("hypotheses", hypotheses), _as_list("references", references)
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} references; give one reference each")
    if not hyps:
        raise ValueError("no hypotheses to score")
    bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize)
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    return {"bleu": bleu.score, "chrf": chrf.score}


def continuation_scores(
    model: nn.Module,
    tokenizer,
    text: str,
    n_prompts: int = 50,
    prompt_len: int = 64,
    cont_len: int = 100,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    *,
    tokenize: str = "char",
) -> dict:
    """Continue `n_prompts` random passages of `text` and score them against what really follows.

    Each prompt is `prompt_len` characters of `text` at a random start (drawn with `seed`); the model
    samples (temperature=0: greedily) `cont_len` tokens after it, cut to `cont_len` characters, and the
    reference is the next `cont_len` characters of `text`. Returns bleu and chrf (`bleu_chrf`), and the
    starts, prompts, hypotheses and references. The same seed gives the same prompts for every model.
    """
    for name, value in (("n_prompts", n_prompts), ("prompt_len", prompt_len), ("cont_len", cont_len)):
        check_positive_int(name, value)
    if len(text) < prompt_len + cont_len:
        raise ValueError(f"text has {len(text)} characters, fewer than prompt_len + cont_len = "
                         f"{prompt_len + cont_len}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(text) - prompt_len - cont_len + 1, (n_prompts,), generator=g).tolist()
    prompts = [text[s : s + prompt_len] for s in starts]
    references = [text[s + prompt_len : s + prompt_len + cont_len] for s in starts]
    device = model_device(model)
    sample_gen = torch.Generator(device=device).manual_seed(seed)
    by_length: dict[int, list[int]] = {}  # prompts of equal token length are generated as one batch
    encoded = [tokenizer.encode(p) for p in prompts]
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    hypotheses = [""] * n_prompts
    for length, rows in by_length.items():
        idx = torch.tensor([encoded[i] for i in rows], dtype=torch.long, device=device)  # (B, T)
        out = generate(model, idx, cont_len, temperature=temperature, top_k=top_k, generator=sample_gen)
        for i, new in zip(rows, out[:, length:].tolist(), strict=True):  # (B, cont_len) new tokens
            hypotheses[i] = tokenizer.decode(new)[:cont_len]
    scores = bleu_chrf(hypotheses, references, tokenize=tokenize)
    return {**scores, "starts": starts, "prompts": prompts, "hypotheses": hypotheses,
            "references": references}
