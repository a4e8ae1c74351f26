"""Text generation: autoregressive sampling with temperature, top-k, top-p, a KV cache and streaming.

Follows `generate` of the Zero-to-Hero GPT lecture (crop to block_size, softmax, multinomial) and
nanoGPT's temperature/top-k; top-p (nucleus) sampling is from Holtzman et al. 2019.
Shapes: B batch, T time, V vocab size.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn
from torch.nn import functional as F


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (ties with the k-th are kept); set the rest to -inf."""
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))  # (B, V)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose total probability reaches p; -inf the rest.

    A token is kept when the probability of the tokens ranked above it is still below p, so the
    most likely token is always kept and p=1 keeps everything.
    """
    if p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = F.softmax(sorted_logits, dim=-1)  # (B, V)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V) probability of higher-ranked tokens
    remove_sorted = mass_before >= p  # (B, V)
    remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)  # (B, V) back in vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def _check_args(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and (
        not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0.0 < top_p <= 1.0
    ):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


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
    logits = logits.float() / temperature  # (B, V)
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
) -> Iterator[torch.Tensor]:
    """Yield each new token (B, 1); puts the model in eval mode and restores its mode when done.

    Gradients are off only inside each step, so the caller's code between steps is unaffected.
    """
    block_size = getattr(model, "block_size", None)
    cached = use_cache and block_size is not None and hasattr(model, "forward_cached")
    was_training = model.training
    model.eval()
    try:
        cache = model.new_cache() if cached else None
        for _ in range(max_new_tokens):
            with torch.no_grad():
                if cached:
                    if cache.length == 0 or cache.length >= block_size:
                        # (Re-)prefill with exactly the tokens an uncached step would see: the last
                        # block_size. With learned absolute positions, sliding the window shifts every
                        # position, so nothing cached can be reused once the context is full.
                        cache.reset()
                        new_tokens = idx[:, -block_size:]  # (B, <=block_size)
                    else:
                        new_tokens = idx[:, -1:]  # (B, 1) only the newest token is not cached yet
                    logits = model.forward_cached(new_tokens, cache, last_only=True)  # (B, 1, V)
                else:
                    idx_cond = idx if block_size is None else idx[:, -block_size:]  # (B, <=block_size)
                    logits, _ = model(idx_cond)  # (B, T, V)
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
) -> torch.Tensor:
    """Extend idx (B, T) by max_new_tokens sampled tokens; return (B, T + max_new_tokens).

    temperature=0 picks the most likely token (greedy); top_k and top_p restrict sampling to the
    most likely tokens. Each step conditions on the last block_size tokens, as in the lecture.
    `generator` (on the model's device) makes sampling reproducible. With use_cache=True a GPT
    reuses keys/values of earlier positions (KV cache); results equal use_cache=False.
    Runs without gradients in eval mode and restores the model's train/eval mode afterwards.
    """
    _check_args(max_new_tokens, temperature, top_k, top_p)
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError("idx must be a (B, T) tensor of token ids with T >= 1")
    new = list(_iter_tokens(model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache))
    return torch.cat([idx, *new], dim=1)  # (B, T + max_new_tokens)


def _encode_prompt(model: nn.Module, tokenizer, prompt: str, device) -> torch.Tensor:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    ids = tokenizer.encode(prompt) if prompt else [0]  # ValueError names unknown characters
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab_size is not None and tokenizer.vocab_size > vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens but the model only {vocab_size}; "
            "use the tokenizer the model was trained with"
        )
    return torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)


def _resolve_device(model: nn.Module, device) -> torch.device:
    model_device = _model_device(model)
    if device is None:
        return model_device
    device = torch.device(device)
    if device.type != model_device.type or (
        device.index is not None and model_device.index is not None and device.index != model_device.index
    ):
        raise ValueError(
            f"the model is on {model_device} but device={device}; call model.to({str(device)!r}) first"
        )
    return model_device


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
) -> Iterator[str]:
    """Like `sample_text`, but yield the text piece by piece: first the prompt, then each new token.

    "".join(stream_text(...)) equals sample_text(...) with the same arguments.
    """
    _check_args(max_new_tokens, temperature, top_k, top_p)
    device = _resolve_device(model, device)
    idx = _encode_prompt(model, tokenizer, prompt, device)  # (1, T)
    generator = _make_generator(seed, device)

    def pieces() -> Iterator[str]:
        yield tokenizer.decode(idx[0])
        for tok in _iter_tokens(model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache):
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
) -> str:
    """Return the prompt followed by max_new_tokens sampled characters.

    An empty prompt starts from token id 0 (the newline in Tiny Shakespeare), as in the lecture,
    and that start character is part of the returned text. A prompt with characters outside the
    vocabulary raises ValueError naming them. `seed` seeds a torch.Generator on the model's device,
    so the same seed gives the same text; seed=None uses torch's global RNG. `device` defaults to
    the model's device (a different one raises ValueError: move the model first).
    """
    return "".join(
        stream_text(
            model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p, seed, device, use_cache
        )
    )
