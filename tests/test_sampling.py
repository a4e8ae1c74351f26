"""Behaviour of generation: greedy and filtered sampling, the KV cache, seeds, text and streaming."""

from __future__ import annotations

import pytest
import torch

from shakespeare_lm.kvcache import forward_cached, new_cache
from shakespeare_lm.model import GPT, BigramLanguageModel, get_preset
from shakespeare_lm.sampling import (
    default_prompt,
    generate,
    sample_text,
    stream_text,
    top_k_filter,
    top_p_filter,
)
from shakespeare_lm.tokenizer import CharTokenizer

V = 65
CONFIG = get_preset("tiny", block_size=8)  # a short window so tests generate well past it
# 65 characters like Tiny Shakespeare's (id 0 is the newline).
TOKENIZER = CharTokenizer(sorted(set("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")))


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    m = GPT(CONFIG)
    # Sharpen the random model a little so that its choices are not uniform noise.
    with torch.no_grad():
        m.token_embedding_table.weight.mul_(3)
    return m


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_generate_shape_and_restores_mode(model):
    model.train()
    idx = torch.zeros(2, 3, dtype=torch.long)
    out = generate(model, idx, 20, generator=seeded())
    assert out.shape == (2, 23) and out.dtype == torch.long
    assert torch.equal(out[:, :3], idx)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    generate(model, idx, 2)
    assert not model.training
    assert generate(model, idx, 0).shape == (2, 3)


def test_greedy_is_argmax_and_top_k_1_is_greedy(model):
    idx = torch.zeros(1, 1, dtype=torch.long)
    greedy = generate(model, idx, 20, temperature=0)
    with torch.no_grad():
        expected = idx
        for _ in range(20):
            logits, _ = model.eval()(expected[:, -CONFIG.block_size :])
            expected = torch.cat([expected, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, expected)
    assert torch.equal(generate(model, idx, 20, top_k=1, generator=seeded(5)), greedy)
    assert torch.equal(generate(model, idx, 20, top_k=1, temperature=2.0, use_cache=False), greedy)


def test_temperature_one_samples_from_the_softmax(model):
    """Each step is torch.multinomial(softmax(logits)) as in the lecture, with the same random draws."""
    model.eval()
    idx = torch.randint(0, V, (3, 4), generator=seeded(3))
    out = generate(model, idx, 12, generator=seeded(8), use_cache=False)
    g, expected = seeded(8), idx
    with torch.no_grad():
        for _ in range(12):
            logits, _ = model(expected[:, -CONFIG.block_size :])
            probs = torch.softmax(logits[:, -1], dim=-1)  # (B, V)
            expected = torch.cat([expected, torch.multinomial(probs, 1, generator=g)], dim=1)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("temperature", [1e-40, 1e-300, 5e-324])
def test_a_tiny_temperature_is_greedy(model, temperature):
    """Dividing the logits by 1e-40 overflowed to inf and multinomial crashed on the nan probabilities."""
    idx = torch.randint(0, V, (2, 3), generator=seeded(6))
    greedy = generate(model, idx, 20, temperature=0)
    assert torch.equal(generate(model, idx, 20, temperature=temperature, generator=seeded(1)), greedy)
    text = sample_text(model, TOKENIZER, "ROMEO:", 20, temperature=temperature, seed=1)
    assert text == sample_text(model, TOKENIZER, "ROMEO:", 20, temperature=0)


@pytest.mark.parametrize("prompt_len", [1, 5, 20])
def test_cached_equals_uncached_past_block_size(model, prompt_len):
    """Same seed, same tokens, with and without the KV cache, for 4x the block size."""
    model.eval()
    idx = torch.randint(0, V, (2, prompt_len), generator=seeded(1))
    n = 4 * CONFIG.block_size
    cached = generate(model, idx, n, generator=seeded(7), use_cache=True)
    uncached = generate(model, idx, n, generator=seeded(7), use_cache=False)
    assert torch.equal(cached, uncached)
    assert len(set(cached[0, prompt_len:].tolist())) > 5  # really sampled, not stuck on one token
    # The logits behind every step agree too (window cropped to block_size, as generate does).
    cache = new_cache(model)
    with torch.no_grad():
        for t in range(prompt_len, cached.size(1)):
            context = cached[:, max(0, t - CONFIG.block_size) : t]
            reference, _ = model(context)
            if cache.length == 0 or cache.length >= CONFIG.block_size:
                cache.reset()
                step = forward_cached(model, context, cache, last_only=True)
            else:
                step = forward_cached(model, context[:, -1:], cache, last_only=True)
            torch.testing.assert_close(step[:, -1], reference[:, -1])


@pytest.mark.parametrize("stride", [2, 3, CONFIG.block_size])
def test_window_stride_cached_equals_uncached_and_windows_are_right(model, stride):
    """With window_stride=s the window jumps back to block_size - s + 1 tokens when it overflows."""
    model.eval()
    idx = torch.randint(0, V, (1, 3), generator=seeded(2))
    n = 5 * CONFIG.block_size
    cached = generate(model, idx, n, temperature=0, window_stride=stride, use_cache=True)
    uncached = generate(model, idx, n, temperature=0, window_stride=stride, use_cache=False)
    assert torch.equal(cached, uncached)
    keep = CONFIG.block_size - stride + 1
    expected, start = idx, 0
    with torch.no_grad():
        for _ in range(n):
            if expected.size(1) - start > CONFIG.block_size:
                start = expected.size(1) - keep
            assert keep <= expected.size(1) - start <= CONFIG.block_size or start == 0
            logits, _ = model(expected[:, start:])
            expected = torch.cat([expected, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, expected)


def test_window_stride_one_is_the_lecture_crop(model):
    idx = torch.randint(0, V, (1, 2), generator=seeded(4))
    a = generate(model, idx, 3 * CONFIG.block_size, generator=seeded(9))
    b = generate(model, idx, 3 * CONFIG.block_size, generator=seeded(9), window_stride=1)
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_window_stride_raises(model, bad):
    with pytest.raises(ValueError, match="window_stride"):
        generate(model, torch.zeros(1, 1, dtype=torch.long), 5, window_stride=bad)


def test_bigram_generates_without_a_context_limit():
    torch.manual_seed(0)
    bigram = BigramLanguageModel(V)
    idx = torch.zeros(1, 1, dtype=torch.long)
    out = generate(bigram, idx, 30, generator=seeded(3))
    assert out.shape == (1, 31)
    assert torch.equal(out, generate(bigram, idx, 30, generator=seeded(3), use_cache=False))


def test_top_k_filter_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0], [0.0, -1.0, 5.0, 5.0]])
    out = top_k_filter(logits, 2)
    assert torch.equal(
        torch.isfinite(out), torch.tensor([[False, True, True, False], [False, False, True, True]])
    )
    torch.testing.assert_close(out[0, 1:3], logits[0, 1:3])
    assert torch.equal(top_k_filter(logits, 10), logits)


def test_top_p_filter_keeps_smallest_set_reaching_p():
    probs = torch.tensor([[0.1, 0.5, 0.15, 0.25]])  # sorted: 0.5, 0.25, 0.15, 0.1
    logits = probs.log()

    def kept(p):
        return torch.isfinite(top_p_filter(logits, p))[0].tolist()

    assert kept(0.4) == [False, True, False, False]  # 0.5 alone reaches 0.4
    assert kept(0.5) == [False, True, False, False]  # exactly reaching p is enough
    assert kept(0.6) == [False, True, False, True]  # 0.5 + 0.25
    assert kept(0.8) == [False, True, True, True]  # 0.5 + 0.25 + 0.15 = 0.9
    assert kept(1.0) == [True, True, True, True]
    assert kept(1e-6) == [False, True, False, False]  # the most likely token always survives
    assert kept(1e-46) == [False, True, False, False]  # even when p rounds to 0 in float32
    # Renormalised, the kept tokens keep their relative probabilities.
    renorm = torch.softmax(top_p_filter(logits, 0.6), dim=-1)
    torch.testing.assert_close(renorm, torch.tensor([[0.0, 2 / 3, 0.0, 1 / 3]]))


@pytest.mark.parametrize("top_p", [1e-6, 1e-46, 5e-324])
def test_top_p_sampling_never_picks_filtered_tokens(model, top_p):
    idx = torch.zeros(1, 1, dtype=torch.long)
    out = generate(model, idx, 40, top_p=top_p, generator=seeded(2))
    assert torch.equal(out, generate(model, idx, 40, temperature=0))  # only the top token survives


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-0.5), "temperature"),
        (dict(temperature=float("nan")), "temperature must be a finite number"),
        (dict(temperature=float("inf")), "temperature must be a finite number"),
        (dict(top_p=float("nan")), "top_p"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=2.5), "top_k"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
    ],
)
def test_bad_sampling_args_raise(model, kwargs, message):
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, torch.zeros(1, 1, dtype=torch.long), **kwargs)
    with pytest.raises(ValueError, match=message):
        sample_text(model, TOKENIZER, "A", **kwargs)
    with pytest.raises(ValueError, match=message):
        stream_text(model, TOKENIZER, "A", **kwargs)  # checked before the first piece


def test_sample_text_is_reproducible_with_a_seed(model):
    a = sample_text(model, TOKENIZER, "ROMEO:", max_new_tokens=30, seed=11)
    b = sample_text(model, TOKENIZER, "ROMEO:", max_new_tokens=30, seed=11)
    c = sample_text(model, TOKENIZER, "ROMEO:", max_new_tokens=30, seed=12)
    assert a == b and a != c
    assert a.startswith("ROMEO:") and len(a) == 6 + 30
    assert sample_text(model, TOKENIZER, "ROMEO:", max_new_tokens=30, seed=11, use_cache=False) == a


def test_empty_prompt_starts_from_newline(model):
    text = sample_text(model, TOKENIZER, "", max_new_tokens=10, seed=0)
    assert text.startswith("\n") and len(text) == 11
    assert text == sample_text(model, TOKENIZER, default_prompt(TOKENIZER), max_new_tokens=10, seed=0)


@pytest.mark.parametrize("vocab, start", [("\tab c", " "), ("\t\nab", "\n"), ("xyz", "x")])
def test_empty_prompt_starts_from_the_default_prompt_of_any_vocabulary(vocab, start):
    """Token 0 is a tab here: an empty prompt used to start there; now a newline, else a space."""
    tok = CharTokenizer(sorted(vocab))
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", tok))
    assert default_prompt(tok) == start
    text = sample_text(model, tok, "", max_new_tokens=5, seed=0)
    assert text.startswith(start) and len(text) == 6
    assert list(stream_text(model, tok, "", max_new_tokens=2, seed=0))[0] == start


def test_stream_text_yields_the_same_text_piece_by_piece(model):
    pieces = list(
        stream_text(model, TOKENIZER, "To be", max_new_tokens=12, temperature=0.8, top_k=10, seed=4)
    )
    assert pieces[0] == "To be" and len(pieces) == 13
    assert "".join(pieces) == sample_text(
        model, TOKENIZER, "To be", max_new_tokens=12, temperature=0.8, top_k=10, seed=4
    )
    # Gradients stay on for the caller's code between pieces.
    stream = stream_text(model, TOKENIZER, "A", max_new_tokens=3)
    next(stream)
    next(stream)
    assert torch.is_grad_enabled()


def test_generate_rejects_ids_the_model_cannot_embed(model):
    with pytest.raises(ValueError, match="integer token ids .*torch.float32"):
        generate(model, torch.zeros(1, 3), 5)
    with pytest.raises(ValueError, match="token id 65, .*vocab_size is 65 \\(ids 0..64\\)"):
        generate(model, torch.tensor([[1, 65, 2]]), 5)
    with pytest.raises(ValueError, match="token id -1, .*start at 0"):
        generate(model, torch.tensor([[-1, 2]]), 5, use_cache=False)
    with pytest.raises(ValueError, match="token id 70"):
        generate(BigramLanguageModel(V), torch.tensor([[70]]), 5)
    out = generate(model, torch.tensor([[0, 64]], dtype=torch.int32), 3)  # int32 ids are fine
    assert out.shape == (1, 5) and out.dtype == torch.long


def test_unknown_prompt_characters_raise_value_error(model):
    with pytest.raises(ValueError, match="'é'"):
        sample_text(model, TOKENIZER, "café", max_new_tokens=5)


def test_device_argument(model):
    assert sample_text(model, TOKENIZER, "A", max_new_tokens=3, seed=0, device="cpu").startswith("A")
    with pytest.raises(ValueError, match="model.to"):
        sample_text(model, TOKENIZER, "A", max_new_tokens=3, device="meta")
