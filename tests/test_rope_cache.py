"""The sliding KV cache of a RoPE GPT: cached generation equals uncached far past block_size.

A RoPE GPT attends over a sliding window of block_size positions, so its cache drops the oldest
key/value each step instead of re-encoding the window (learned positions re-prefill, test_kvcache.py).
"""

from __future__ import annotations

import pytest
import torch

from shakespeare_lm.kvcache import forward_cached, new_cache, sliding_context
from shakespeare_lm.model import GPT, get_preset
from shakespeare_lm.sampling import generate

V = 65
BLOCK = 8


def rope_gpt(n_layer: int = 2, **options) -> GPT:
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", pos_encoding="rope", block_size=BLOCK, n_layer=n_layer, **options))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)  # confident, varied predictions: a wrong key would change the tokens
    return model.eval()


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 1.0, "top_k": 20}])
@pytest.mark.parametrize("options", [{}, {"qk_norm": True, "attn_bias": True, "activation": "gelu"}])
def test_cached_equals_uncached_generation_past_five_block_sizes(sampling, options):
    model = rope_gpt(**options)
    prompt = torch.randint(0, V, (3, 3), generator=torch.Generator().manual_seed(2))  # batch of 3
    n = 6 * BLOCK
    cached = generate(model, prompt, n, generator=torch.Generator().manual_seed(1), **sampling)
    uncached = generate(model, prompt, n, use_cache=False, generator=torch.Generator().manual_seed(1),
                        **sampling)
    assert cached.shape == (3, 3 + n)
    assert torch.equal(cached, uncached)
    if sampling["temperature"] > 0:
        assert len(set(cached[0, -n:].tolist())) > 5  # sampled, varied text (greedy soon repeats)


def test_a_long_prompt_prefills_in_window_chunks():
    model = rope_gpt()
    prompt = torch.randint(0, V, (2, 5 * BLOCK + 3), generator=torch.Generator().manual_seed(3))
    cached = generate(model, prompt, 2 * BLOCK, temperature=0)
    assert torch.equal(cached, generate(model, prompt, 2 * BLOCK, temperature=0, use_cache=False))


def test_forward_cached_at_a_slid_position_matches_the_sliding_window_forward():
    model = rope_gpt(n_layer=3)
    idx = torch.randint(0, V, (2, 5 * BLOCK + 5), generator=torch.Generator().manual_seed(4))
    cache = new_cache(model)
    with torch.no_grad():
        steps = [forward_cached(model, idx[:, t : t + 1], cache) for t in range(idx.size(1))]
        full, _ = model(idx)  # each position attends to itself and the BLOCK - 1 before it
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    assert cache.position == idx.size(1) and cache.length == BLOCK  # slid by one token per step
    assert cache._k[0].size(2) == 2 * BLOCK  # the buffer never grows


def test_one_layer_sliding_cache_is_the_lecture_crop():
    # With one layer every cached key depends on its token and position only, so the slid cache
    # equals re-encoding the cropped window; deeper layers see further back (sliding_context).
    model = rope_gpt(n_layer=1)
    idx = torch.randint(0, V, (2, 4 * BLOCK + 3), generator=torch.Generator().manual_seed(5))
    cache = new_cache(model)
    with torch.no_grad():
        forward_cached(model, idx[:, :-1], cache)
        last = forward_cached(model, idx[:, -1:], cache)[:, 0]  # (B, V)
        window, _ = model(idx[:, -BLOCK:])  # the lecture: the last block_size tokens, positions 0..7
    torch.testing.assert_close(last, window[:, -1], atol=1e-5, rtol=0)
    assert sliding_context(model) == BLOCK and sliding_context(rope_gpt(n_layer=3)) == 3 * (BLOCK - 1) + 1


def test_sliding_context_is_all_the_uncached_step_needs():
    model = rope_gpt(n_layer=2)
    context = sliding_context(model)
    idx = torch.randint(0, V, (1, context + 11), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        everything, _ = model(idx)
        suffix, _ = model(idx[:, -context:])
    torch.testing.assert_close(suffix[:, -1], everything[:, -1], atol=1e-5, rtol=0)


def test_learned_positions_do_not_slide():
    model = GPT(get_preset("tiny", block_size=BLOCK)).eval()
    assert sliding_context(model) is None and new_cache(model).window is None
    cache = new_cache(model)
    with torch.no_grad():
        forward_cached(model, torch.zeros(1, BLOCK, dtype=torch.long), cache)
        with pytest.raises(ValueError, match="exceed block_size"):
            forward_cached(model, torch.zeros(1, 1, dtype=torch.long), cache)
