"""Tests for the checks before the first step: data vs model, memory need, run directory."""

from __future__ import annotations

import os

import pytest
import torch

from shakespeare_lm import preflight
from shakespeare_lm.model import GPT, BigramLanguageModel, get_preset
from shakespeare_lm.training import TrainConfig, train

CPU = torch.device("cpu")


def cfg(**overrides):
    base = dict(batch_size=4, block_size=16, max_iters=2, eval_interval=2, eval_iters=1, dtype="float32",
                compile="off", device="cpu", progress=False)
    return TrainConfig(**{**base, **overrides})


def test_data_with_more_tokens_than_the_model_knows_says_what_to_pass():
    # e.g. a 103-character text trained on a preset built with the default vocab_size=65
    data = torch.arange(2000) % 103
    model = GPT(get_preset("tiny"))
    with pytest.raises(ValueError, match=r"token ids up to 102 but the model's vocab_size is 65; build the "
                                         r"model with vocab_size=tokenizer.vocab_size"):
        train(model, data, data, cfg())
    assert model.training  # refused before anything ran (train() leaves a trained model in eval mode)
    with pytest.raises(ValueError, match="negative token id -1"):
        train(model, data - 1, data, cfg())
    assert preflight.model_vocab_size(BigramLanguageModel(7)) == 7


def test_float_data_is_refused_in_one_line():
    with pytest.raises(TypeError, match="token ids are integers"):
        train(GPT(get_preset("tiny")), torch.rand(500), torch.rand(500), cfg())


def test_memory_estimate_is_a_lower_bound_that_grows_with_the_batch():
    model = GPT(get_preset("cpu-small"))  # 4 layers, n_embd 128, no dropout
    one = preflight.activation_bytes(model, 1, 64, CPU)
    assert preflight.activation_bytes(model, 8, 64, CPU) - one == pytest.approx(7 * (one - 16 * sum(
        p.numel() for p in model.parameters())))
    # ~16 floats per channel per layer: B=16, T=1024 measured 538 MB on CPU
    big = GPT(get_preset("cpu-small", block_size=1024))
    assert 400e6 < preflight.activation_bytes(big, 16, 1024, CPU) - 16 * sum(
        p.numel() for p in big.parameters()) < 600e6
    dropout = GPT(get_preset("cpu-small", block_size=1024, dropout=0.1))
    assert preflight.activation_bytes(dropout, 16, 1024, CPU) > preflight.activation_bytes(big, 16, 1024, CPU)


def test_an_impossible_block_size_is_refused_up_front(monkeypatch):
    data = torch.randint(0, 65, (1_000_100,))
    # the (B, T, V) logits alone: 1024 * 1,000,000 * 65 floats = 248 GiB, stored three times over
    with pytest.raises(ValueError, match=r"needs at least 743.9 GiB for batch_size=1024 x block_size=1000000 "
                                         r"but this cpu has .* use a smaller block_size or batch_size"):
        train(BigramLanguageModel(65), data, data, cfg(batch_size=1024, block_size=1_000_000))
    monkeypatch.setattr(preflight, "device_memory", lambda device: 10_000)
    with pytest.raises(ValueError, match="use a smaller block_size"):
        train(GPT(get_preset("tiny")), data, data, cfg())


def test_device_memory_reports_the_machine():
    ram = preflight.device_memory(CPU)
    if os.name == "posix":  # physical RAM from sysconf; None only where that is missing
        assert ram is not None and ram > 2**28
    else:
        assert ram is None or ram > 2**28
    assert preflight.device_memory(torch.device("meta")) is None
