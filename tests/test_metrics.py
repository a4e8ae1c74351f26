"""Tests for evaluation beyond one number: loss by position, per-token losses, BLEU/chrF of continuations."""

from __future__ import annotations

import math

import pytest
import sacrebleu
import torch
import torch.nn.functional as F

from shakespeare_lm import BigramLanguageModel, CharTokenizer
from shakespeare_lm.evaluation import evaluate
from shakespeare_lm.metrics import bleu_chrf, continuation_scores, loss_by_position, per_token_losses
from shakespeare_lm.model import GPT, get_preset


@pytest.fixture
def tok_data(tiny_text):
    tok = CharTokenizer.from_text(tiny_text)
    return tok, torch.tensor(tok.encode(tiny_text))


def tiny_gpt(tok, seed=0):
    torch.manual_seed(seed)
    return GPT(get_preset("tiny", vocab_size=tok.vocab_size))  # block_size 16


# --- BLEU and chrF -----------------------------------------------------------------------------------

def test_bleu_chrf_agrees_with_sacrebleu():
    hyps = ["ROMEO: I will go to the tower.", "the king is dead, long live the king"]
    refs = ["ROMEO: I will not go to the tower!", "the king is gone; long live the queen"]
    for tokenize in ("char", "13a"):
        got = bleu_chrf(hyps, refs, tokenize=tokenize)
        assert got["bleu"] == sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize).score
        assert got["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score
        assert 0 < got["bleu"] < 100 and 0 < got["chrf"] < 100
    assert bleu_chrf(hyps, refs, tokenize="char")["bleu"] != bleu_chrf(hyps, refs, tokenize="13a")["bleu"]


def test_char_bleu_known_answer():
    # characters a b c d vs a b c e: n-gram precisions 3/4, 2/3, 1/2 and 0/1, which sacrebleu's default
    # 'exp' smoothing turns into 1/2; equal lengths, so no brevity penalty
    expected = 100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25
    assert bleu_chrf("abcd", "abce")["bleu"] == pytest.approx(expected, abs=1e-9)


def test_identical_strings_score_100_and_disjoint_score_0():
    same = bleu_chrf(["To be, or not to be"], ["To be, or not to be"])
    assert same["bleu"] == pytest.approx(100.0) and same["chrf"] == pytest.approx(100.0)
    other = bleu_chrf(["xyz"], ["abc"])
    assert other["bleu"] == 0.0 and other["chrf"] == 0.0


def test_bleu_chrf_rejects_bad_input():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu_chrf(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no hypotheses"):
        bleu_chrf([], [])
    with pytest.raises(TypeError, match="list of strings"):
        bleu_chrf([1, 2], ["a", "b"])


# --- losses --------------------------------------------------------------------------------------------

def test_loss_by_position_weighted_mean_equals_evaluate(tok_data):
    tok, data = tok_data
    model = tiny_gpt(tok)
    T, n = 16, 37
    split = data[: n * T + 1]  # exactly n full windows, no shorter last one
    by_pos = loss_by_position(model, split, batch_size=5)  # 5 does not divide 37: a short last batch
    assert by_pos.shape == (T,)
    # every position is averaged over the same n windows, so equal weights give the split's loss
    assert by_pos.mean().item() == pytest.approx(evaluate(model, split, batch_size=8).loss, abs=1e-5)
    assert model.training  # mode restored


def test_loss_by_position_skips_the_remainder_and_matches_a_direct_computation(tok_data):
    tok, data = tok_data
    model = tiny_gpt(tok).eval()
    T = 16
    split = data[: 20 * T + 1 + 7]  # 20 full windows and a 7-token remainder
    windows = split[: 20 * T + 1]
    x = torch.stack([windows[i * T : (i + 1) * T] for i in range(20)])  # (20, T)
    y = torch.stack([windows[i * T + 1 : (i + 1) * T + 1] for i in range(20)])  # (20, T)
    with torch.no_grad():
        logits, _ = model(x)  # (20, T, V)
    direct = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(dim=0)  # (T,)
    torch.testing.assert_close(loss_by_position(model, split, T, batch_size=3), direct)
    every_2nd = F.cross_entropy(logits[::2].transpose(1, 2), y[::2], reduction="none").mean(dim=0)
    torch.testing.assert_close(loss_by_position(model, split, T, every=2), every_2nd)


def test_loss_by_position_errors(tok_data):
    tok, data = tok_data
    bigram = BigramLanguageModel(tok.vocab_size)
    with pytest.raises(ValueError, match="no block_size"):
        loss_by_position(bigram, data)
    with pytest.raises(ValueError, match="too few for one window"):
        loss_by_position(tiny_gpt(tok), data[:10])


def test_per_token_losses_mean_equals_evaluate_and_keeps_order(tok_data):
    tok, data = tok_data
    model = tiny_gpt(tok)
    split = data[:1000]  # 999 targets: 62 windows of 16 and a remainder of 7
    losses = per_token_losses(model, split, batch_size=7)
    assert losses.shape == (len(split) - 1,)
    assert losses.mean().item() == pytest.approx(evaluate(model, split, batch_size=8).loss, abs=1e-5)

    torch.manual_seed(1)
    bigram = BigramLanguageModel(tok.vocab_size)
    # a bigram's loss for target i depends only on (data[i], data[i+1]): the order can be checked exactly
    log_probs = F.log_softmax(bigram.token_embedding_table.weight.detach(), dim=-1)  # (V, V)
    expected = -log_probs[split[:-1], split[1:]]  # (len - 1,)
    torch.testing.assert_close(per_token_losses(bigram, split, block_size=16, batch_size=4), expected)


# --- continuations -------------------------------------------------------------------------------------

def _cycle_bigram(tok):
    """A bigram that is sure the next letter of "abc" repeats the cycle a -> b -> c -> a."""
    model = BigramLanguageModel(tok.vocab_size)
    with torch.no_grad():
        model.token_embedding_table.weight.zero_()
        for ch, nxt in (("a", "b"), ("b", "c"), ("c", "a")):
            model.token_embedding_table.weight[tok.stoi[ch], tok.stoi[nxt]] = 20.0
    return model


def test_continuation_scores_a_perfect_model_scores_100():
    text = "abc" * 60
    tok = CharTokenizer.from_text(text)
    out = continuation_scores(_cycle_bigram(tok), tok, text, n_prompts=5, prompt_len=4, cont_len=12,
                              seed=3, temperature=0.0)
    assert out["hypotheses"] == out["references"]
    assert out["bleu"] == pytest.approx(100.0) and out["chrf"] == pytest.approx(100.0)


def test_continuation_scores_prompts_references_and_seed(tok_data, tiny_text):
    tok, _ = tok_data
    model = tiny_gpt(tok)
    kwargs = dict(n_prompts=6, prompt_len=10, cont_len=20, seed=7)
    a = continuation_scores(model, tok, tiny_text, **kwargs)
    b = continuation_scores(model, tok, tiny_text, **kwargs)
    assert a == b  # same seed, same prompts and samples
    assert len(a["hypotheses"]) == 6 and all(len(h) == 20 for h in a["hypotheses"])
    for s, p, r in zip(a["starts"], a["prompts"], a["references"], strict=True):
        assert p == tiny_text[s : s + 10] and r == tiny_text[s + 10 : s + 30]
    scores = bleu_chrf(a["hypotheses"], a["references"])
    assert (a["bleu"], a["chrf"]) == (scores["bleu"], scores["chrf"])
    c = continuation_scores(model, tok, tiny_text, **{**kwargs, "seed": 8})
    assert c["starts"] != a["starts"]
    assert math.isfinite(a["bleu"]) and 0 <= a["chrf"] <= 100


def test_continuation_scores_rejects_bad_arguments(tok_data):
    tok, _ = tok_data
    model = tiny_gpt(tok)
    with pytest.raises(ValueError, match="fewer than prompt_len"):
        continuation_scores(model, tok, "First", prompt_len=4, cont_len=4)
    with pytest.raises(ValueError, match="n_prompts must be a positive integer"):
        continuation_scores(model, tok, "First Citizen:\n" * 10, n_prompts=0)
