"""Text generation: autoregressive sampling with temperature, top-k, top-p, a KV cache and streaming.

Follows `generate` of the Zero-to-Hero GPT lecture (crop to block_size, softmax, multinomial) and
nanoGPT's temperature/top-k; top-p (nucleus) sampling is from Holtzman et al. 2019. The KV cache
itself lives in kvcache.py.
Shapes: B batch, T time, V vocab size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn as nn
from torch.nn import functional as F

from .kvcache import forward_cached, new_cache, sliding_context, supports_cache
from .utils import model_device


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (ties with the k-th are kept); set the rest to -inf."""
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))  # (B, V)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose total probability reaches p; -inf the rest.

    A token is kept when the probability of the tokens ranked above it is still below p, so p=1
    keeps everything; the most likely token is always kept, even for a p that rounds to 0.
    """
    if p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = F.softmax(sorted_logits, dim=-1)  # (B, V)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V) probability of higher-ranked tokens
    remove_sorted = mass_before >= p  # (B, V)
    remove_sorted[..., 0] = False  # a p below float32's smallest number compares as 0 and would remove all
    remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)  # (B, V) back in vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def _check_args(
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    window_stride: int = 1,
) -> None:
    if not isinstance(window_stride, int) or isinstance(window_stride, bool) or window_stride < 1:
        raise ValueError(f"window_stride must be an integer >= 1, got {window_stride!r}")
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if (
        not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
        or not math.isfinite(temperature) or temperature < 0
    ):
        raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and (
        not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0.0 < top_p <= 1.0
    ):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


def _next_token(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """logits (B, V) of the last position -> next token ids (B, 1)."""
    if temperature == 0:
        return torch.argmax(logits, dim=-1, keepdim=True)  # (B, 1) greedy
    # Subtract the largest logit first (softmax does not change): then a tiny temperature sends the
    # other logits towards -inf instead of overflowing to inf (inf - inf is nan), which is greedy in the
    # limit. Below float32's smallest normal number the temperature is clamped, so it never rounds to 0.
    logits = logits.float()  # (B, V)
    logits = logits - logits.max(dim=-1, keepdim=True).values  # (B, V) the top logit is now 0
    logits = logits / max(temperature, torch.finfo(logits.dtype).tiny)  # (B, V)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = F.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


def _iter_tokens(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
    use_cache: bool,
    window_stride: int = 1,
) -> Iterator[torch.Tensor]:
    """Yield each new token (B, 1); puts the model in eval mode and restores its mode when done.

    The model sees the window idx[:, start:]. When the window outgrows block_size, `start` jumps
    so that block_size - window_stride + 1 tokens remain: window_stride=1 is the lecture's crop to
    the last block_size tokens at every step; a larger stride re-crops only every window_stride
    steps. Cached and uncached runs use the same windows, so they produce the same tokens.
    A RoPE GPT never crops: its attention is a sliding window of block_size positions, so its cache
    slides by one token per step, and uncached steps feed the last `sliding_context` tokens.
    Gradients are off only inside each step, so the caller's code between steps is unaffected.
    """
    block_size = getattr(model, "block_size", None)
    cached = use_cache and supports_cache(model)
    context = sliding_context(model)  # None unless RoPE
    keep = None if block_size is None or context else max(1, block_size - window_stride + 1)
    start = 0
    was_training = model.training
    model.eval()
    try:
        cache = new_cache(model) if cached else None
        for _ in range(max_new_tokens):
            cropped = keep is not None and idx.size(1) - start > block_size
            if cropped:
                start = idx.size(1) - keep
            with torch.no_grad():
                if cached:
                    if cache.length == 0 or cropped:
                        # (Re-)prefill with exactly the window an uncached step would see. With
                        # learned absolute positions, moving the window shifts every position, so
                        # nothing cached survives a crop: a larger window_stride crops less often.
                        cache.reset()
                        new_tokens = idx[:, -context:] if context else idx[:, start:]  # (B, <=block_size)
                    else:
                        new_tokens = idx[:, -1:]  # (B, 1) only the newest token is not cached yet
                    logits = forward_cached(model, new_tokens, cache, last_only=True)  # (B, 1, V)
                elif context:
                    logits, _ = model(idx[:, -context:])  # (B, T, V) sliding-window attention
                else:
                    logits, _ = model(idx[:, start:])  # (B, T, V) T <= block_size
                idx_next = _next_token(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
            yield idx_next
    finally:
        model.train(was_training)


def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    window_stride: int = 1,
) -> torch.Tensor:
    """Extend idx (B, T) by max_new_tokens sampled tokens; return (B, T + max_new_tokens).

    idx holds integer token ids in [0, vocab_size) (else a one-line ValueError). temperature=0 picks
    the most likely token (greedy), and so does a temperature too small to matter; top_k and top_p
    restrict sampling to the most likely tokens (the top token always survives). Each step
    conditions on the last block_size tokens, as in the lecture. `generator` (on the model's device)
    makes sampling reproducible. With use_cache=True a GPT reuses keys/values of earlier positions
    (KV cache, see kvcache.py); results equal use_cache=False.

    Past block_size the lecture's crop moves every position each step, which leaves a cache
    nothing to reuse. window_stride=s > 1 crops in jumps instead (the model then sees between
    block_size - s + 1 and block_size tokens), so the cache is rebuilt only every s steps:
    long generations get much faster. Cached and uncached still agree for any stride.
    A RoPE GPT (pos_encoding="rope") needs neither: its attention looks at most block_size - 1
    positions back (a sliding window), its cache slides by one token per step, and window_stride
    has no effect. Per layer that is the lecture's crop; across layers the view reaches further
    back (each layer's cached keys were computed with their own window), and use_cache=False
    computes exactly the same sliding-window model.
    Runs without gradients in eval mode and restores the model's train/eval mode afterwards.
    """
    _check_args(max_new_tokens, temperature, top_k, top_p, window_stride)
    _check_token_ids(model, idx)
    new = list(
        _iter_tokens(
            model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache, window_stride
        )
    )
    return torch.cat([idx, *new], dim=1)  # (B, T + max_new_tokens)


def _check_token_ids(model: nn.Module, idx: torch.Tensor) -> None:
    """One-line ValueErrors for an idx the model cannot embed (instead of an IndexError deep inside)."""
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError("idx must be a (B, T) tensor of token ids with T >= 1")
    if idx.dtype not in (torch.long, torch.int):
        raise ValueError(f"idx must hold integer token ids (torch.long), got {idx.dtype}")
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    lo, hi = int(idx.min()), int(idx.max())  # one sync per call, not per step
    if lo < 0:
        raise ValueError(f"idx holds token id {lo}, outside the vocabulary: token ids start at 0")
    if vocab_size is not None and hi >= vocab_size:
        raise ValueError(
            f"idx holds token id {hi}, outside the vocabulary: the model's vocab_size is {vocab_size} "
            f"(ids 0..{vocab_size - 1}); encode the prompt with the model's tokenizer"
        )


def default_prompt(tokenizer) -> str:
    """A prompt that works for any vocabulary: a newline when the tokenizer has one (the start of a
    speech in a play), else a space, else the tokenizer's first token."""
    for candidate in ("\n", " "):
        try:
            if tokenizer.decode(tokenizer.encode(candidate)) == candidate:
                return candidate
        except ValueError:
            continue
    return tokenizer.decode([0])


def _encode_prompt(model: nn.Module, tokenizer, prompt: str, device) -> torch.Tensor:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    ids = tokenizer.encode(prompt or default_prompt(tokenizer))  # ValueError names unknown characters
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab_size is not None and tokenizer.vocab_size > vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens but the model only {vocab_size}; "
            "use the tokenizer the model was trained with"
        )
    return torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)


def _resolve_device(model: nn.Module, device) -> torch.device:
    here = model_device(model)
    if device is None:
        return here
    device = torch.device(device)
    if device.type != here.type or (
        device.index is not None and here.index is not None and device.index != here.index
    ):
        raise ValueError(
            f"the model is on {here} but device={device}; call model.to({str(device)!r}) first"
        )
    return here


def _make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    if seed is None:
        return None  # torch's global RNG, so set_seed() also makes runs repeatable
    return torch.Generator(device=device).manual_seed(seed)


def stream_text(
    model: nn.Module,
    tokenizer,
    prompt: str = "",
    max_new_tokens: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    use_cache: bool = True,
    window_stride: int = 1,
) -> Iterator[str]:
    """Like `sample_text`, but yield the text piece by piece: first the prompt, then each new token.

    "".join(stream_text(...)) equals sample_text(...) with the same arguments.
    """
    _check_args(max_new_tokens, temperature, top_k, top_p, window_stride)
    device = _resolve_device(model, device)
    idx = _encode_prompt(model, tokenizer, prompt, device)  # (1, T)
    generator = _make_generator(seed, device)

    def pieces() -> Iterator[str]:
        yield tokenizer.decode(idx[0])
        tokens = _iter_tokens(
            model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache, window_stride
        )
        for tok in tokens:
            yield tokenizer.decode(tok[0])

    return pieces()  # arguments are checked now, not at the first next()


def sample_text(
    model: nn.Module,
    tokenizer,
    prompt: str = "",
    max_new_tokens: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    use_cache: bool = True,
    window_stride: int = 1,
) -> str:
    """Return the prompt followed by max_new_tokens sampled characters.

    An empty prompt starts from `default_prompt(tokenizer)`: a newline when the vocabulary has one
    (as in the lecture, whose token 0 is the newline), else a space, else the first token; that
    start is part of the returned text. A prompt with characters outside the vocabulary raises
    ValueError naming them. `seed` seeds a torch.Generator on the model's device,
    so the same seed gives the same text; seed=None uses torch's global RNG. `device` defaults to
    the model's device (a different one raises ValueError: move the model first). `window_stride`
    is explained in `generate`.
    """
    return "".join(
        stream_text(
            model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p, seed, device, use_cache,
            window_stride,
        )
    )
