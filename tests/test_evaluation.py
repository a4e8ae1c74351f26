"""Tests for measuring a model: the fixed-batch estimate and the exact loss over a split."""

from __future__ import annotations

import math

import pytest
import torch

from shakespeare_lm import BPETokenizer, train_val_split
from shakespeare_lm.evaluation import estimate_loss, evaluate, iter_window_losses
from shakespeare_lm.model import GPT, get_preset


def test_estimate_loss_uses_fixed_batches(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    model = tiny_gpt(tok)
    g = torch.Generator().manual_seed(5)
    first = estimate_loss(model, {"train": tr, "val": va}, 4, 16, 3, g)
    second = estimate_loss(model, {"train": tr, "val": va}, 4, 16, 3, g)
    assert first == second and set(first) == {"train", "val"}
    assert model.training  # mode restored


def test_evaluate_units(char_corpus, tiny_gpt):
    tok, _, va = char_corpus
    result = evaluate(tiny_gpt(tok), va, block_size=16, batch_size=8)
    assert result.bits_per_char == pytest.approx(result.loss / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    assert result.tokens == len(va) - 1
    assert result.loss == pytest.approx(math.log(tok.vocab_size), abs=0.5)  # untrained ~ ln V


def test_evaluate_equals_the_mean_of_model_losses_and_restores_the_mode(char_corpus, tiny_gpt):
    tok, _, va = char_corpus
    model = tiny_gpt(tok)
    with torch.no_grad():
        model.eval()
        x, y = va[:-1].view(1, -1)[:, :16], va[1:17].view(1, -1)  # the first window, (1, T)
        _, first = model(x, y)
        model.train()
    losses = next(iter(iter_window_losses(model, va, 16, 8)))  # (B, T) the first batch
    assert losses.shape == (8, 16)
    assert float(losses[0].mean()) == pytest.approx(float(first), rel=1e-6)
    assert model.training  # restored once the generator is dropped
    assert evaluate(model, va, block_size=16, batch_size=8, dtype=torch.bfloat16).tokens == len(va) - 1
    assert model.training


def test_window_losses_leave_autocast_off_between_batches(char_corpus, tiny_gpt):
    tok, _, va = char_corpus
    seen = [torch.is_autocast_enabled("cpu")
            for _ in iter_window_losses(tiny_gpt(tok), va, 16, 8, dtype=torch.bfloat16)]
    assert seen and not any(seen)


def test_evaluate_every_nth_window_is_the_mean_over_those_windows(char_corpus, tiny_gpt):
    tok, _, va = char_corpus
    model = tiny_gpt(tok).eval()
    sample = evaluate(model, va, block_size=16, batch_size=4, every=3)
    n_full = (len(va) - 1) // 16
    assert sample.tokens == len(range(0, n_full, 3)) * 16
    with torch.no_grad():
        losses = [model(va[i * 16 : i * 16 + 16][None], va[i * 16 + 1 : i * 16 + 17][None])[1].item()
                  for i in range(0, n_full, 3)]
    assert sample.loss == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    assert evaluate(model, va, block_size=16, batch_size=4, every=1) == evaluate(model, va, block_size=16,
                                                                                   batch_size=4)


def test_bits_per_char_with_a_bpe_tokenizer_counts_characters_not_tokens(tiny_text):
    tok = BPETokenizer.train(tiny_text, 300)
    train_text, val_text = train_val_split(tiny_text)
    val = torch.tensor(tok.encode(val_text))
    assert len(val) < len(val_text)  # tokens span several characters
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", tokenizer=tok)).eval()
    result = evaluate(model, val, block_size=16, batch_size=8, n_chars=len(val_text))
    # by hand: the summed loss of every predicted token, over the characters of the text, in bits
    total_nats = 0.0
    with torch.no_grad():
        for start in range(0, len(val) - 1, 16):
            x, y = val[start : start + 16][None], val[start + 1 : start + 17][None]
            x = x[:, : y.size(1)]
            total_nats += model(x, y)[1].item() * y.numel()
    assert result.tokens == len(val) - 1 and result.characters == len(val_text)
    # the mean loss of the predicted tokens, spread over all len(val) tokens of the text, per character
    tokens_per_char = len(val) / len(val_text)
    assert result.bits_per_char == pytest.approx(total_nats / (len(val) - 1) * tokens_per_char / math.log(2),
                                                 rel=1e-5)
    assert result.bits_per_char < result.loss / math.log(2)  # fewer bits per char than per token
    with pytest.raises(ValueError, match="n_chars must be a positive integer"):
        evaluate(model, val, block_size=16, n_chars=0)
