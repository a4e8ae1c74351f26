"""The KV cache: cached forwards equal the full forward, chunk by chunk and for the last position only."""

from __future__ import annotations

import pytest
import torch

from shakespeare_lm.kvcache import KVCache, forward_cached, new_cache, supports_cache
from shakespeare_lm.model import GPT, PRESETS, BigramLanguageModel

V = 65
TINY = PRESETS["tiny"]


def test_cached_forward_matches_full_forward():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    idx = torch.randint(0, V, (2, TINY.block_size))
    cache = new_cache(model)
    with torch.no_grad():
        full, _ = model(idx)
        parts = [forward_cached(model, idx[:, :5], cache)]  # prefill
        parts.append(forward_cached(model, idx[:, 5:9], cache))  # a chunk after a prefix
        parts += [forward_cached(model, idx[:, t : t + 1], cache) for t in range(9, TINY.block_size)]
        with pytest.raises(ValueError, match="block_size"):
            forward_cached(model, idx[:, :1], cache)
    torch.testing.assert_close(torch.cat(parts, dim=1), full)
    assert cache.length == TINY.block_size


def test_cached_prefill_last_only_matches_full_forward():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    idx = torch.randint(0, V, (2, 12))
    cache = new_cache(model)
    with torch.no_grad():
        full, _ = model(idx)
        last = forward_cached(model, idx[:, :11], cache, last_only=True)  # (B, 1, V)
        nxt = forward_cached(model, idx[:, 11:], cache, last_only=True)  # the cache stayed complete
    assert last.shape == (2, 1, V)
    torch.testing.assert_close(last[:, 0], full[:, 10])
    torch.testing.assert_close(nxt[:, 0], full[:, 11])


def test_reset_reuses_the_cache_for_a_new_sequence():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    a, b = torch.randint(0, V, (2, 1, 10))
    cache = new_cache(model)
    with torch.no_grad():
        forward_cached(model, a, cache)
        cache.reset()
        assert cache.length == 0
        again = forward_cached(model, b, cache)
        full, _ = model(b)
    torch.testing.assert_close(again, full)  # nothing of `a` leaked into `b`


def test_only_a_gpt_has_a_cache():
    bigram = BigramLanguageModel(V)
    assert supports_cache(GPT(TINY)) and not supports_cache(bigram)
    with pytest.raises(TypeError, match="needs a GPT, got BigramLanguageModel"):
        forward_cached(bigram, torch.zeros(1, 1, dtype=torch.long), KVCache(1, 8))
