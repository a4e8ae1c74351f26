"""The attention explorer's plain functions: the model's own attention weights, ranked positions,
next-character probabilities, embeddings in 2-D and per-head summaries."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from shakespeare_lm.explorer import (
    CHAR_CLASSES,
    attention_maps,
    char_class,
    embedding_pca,
    explained_variance,
    head_scores,
    next_char_probs,
    top_attended,
)
from shakespeare_lm.model import GPT, BigramLanguageModel, get_preset
from shakespeare_lm.tokenizer import CharTokenizer

VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # Tiny Shakespeare's 65
TEXT = "ROMEO:\nIs it so?"  # 16 characters: the tiny preset's block_size


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer(VOCAB)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    m = GPT(get_preset("tiny", tok))
    with torch.no_grad():  # sharper than the init's near-uniform attention, so rankings mean something
        for p in m.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return m.eval()


def test_maps_are_exactly_get_attention(model, tok):
    maps = attention_maps(model, tok, TEXT)
    cfg = model.config
    T = len(TEXT)
    assert maps.shape == (cfg.n_layer, cfg.n_head, T, T)
    with torch.no_grad():
        expected = model.get_attention(torch.tensor([tok.encode(TEXT)]))  # n_layer x (1, nh, T, T)
    assert torch.equal(maps, torch.cat(expected))
    assert torch.allclose(maps.sum(-1), torch.ones(cfg.n_layer, cfg.n_head, T))  # rows are distributions
    assert torch.equal(maps.triu(1), torch.zeros_like(maps))  # nothing from the future
    assert maps[..., 1:, :].std() > 0.01  # not all uniform: the test model attends selectively


def test_maps_are_taken_in_eval_mode_and_restore_training(tok):
    torch.manual_seed(1)
    m = GPT(get_preset("tiny", tok, dropout=0.5)).train()
    first = attention_maps(m, tok, TEXT)
    assert m.training  # the caller's mode is restored
    assert torch.equal(first, attention_maps(m, tok, TEXT))  # no dropout noise: eval mode inside


def test_bad_inputs_give_one_line_errors(model, tok):
    with pytest.raises(ValueError, match="block_size"):
        attention_maps(model, tok, "x" * 17)
    with pytest.raises(ValueError, match="empty"):
        attention_maps(model, tok, "")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        attention_maps(model, tok, "naïve")
    with pytest.raises(TypeError, match="needs a GPT"):
        attention_maps(BigramLanguageModel(65), tok, "ab")
    maps = attention_maps(model, tok, TEXT)
    with pytest.raises(ValueError, match="layer must be an integer from 0 to 1"):
        top_attended(maps, TEXT, 2, 0, 3)
    with pytest.raises(ValueError, match="position must be"):
        top_attended(maps, TEXT, 0, 0, 16)
    with pytest.raises(ValueError, match="15 tokens"):
        top_attended(maps, TEXT[:-1], 0, 0, 3)


def test_top_attended_ranks_a_hand_made_map():
    T = 5
    maps = torch.zeros(2, 3, T, T)
    maps[1, 2, 4] = torch.tensor([0.1, 0.4, 0.05, 0.3, 0.15])
    maps[1, 2, 2] = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0])  # a tie
    assert top_attended(maps, "abcde", 1, 2, 4, k=3) == [
        ("b", 1, pytest.approx(0.4)), ("d", 3, pytest.approx(0.3)), ("e", 4, pytest.approx(0.15))]
    assert [p for _, p, _ in top_attended(maps, "abcde", 1, 2, 4, k=10)] == [1, 3, 4, 0, 2]
    assert [p for _, p, _ in top_attended(maps, "abcde", 1, 2, 2, k=5)] == [0, 1, 2]  # causal; tie: earlier
    assert top_attended(maps, list("abcde"), 0, 0, 0, k=0) == []


def test_next_char_probs_are_the_softmax_of_the_last_logits(model, tok):
    probs = next_char_probs(model, tok, "ROMEO", k=10)
    assert len(probs) == 10
    with torch.no_grad():
        logits, _ = model(torch.tensor([tok.encode("ROMEO")]))
    expected = F.softmax(logits[0, -1], dim=-1)
    top = torch.topk(expected, 10)
    assert [c for c, _ in probs] == [tok.decode([int(i)]) for i in top.indices]
    assert [p for _, p in probs] == pytest.approx(top.values.tolist(), abs=1e-6)
    assert all(a >= b for (_, a), (_, b) in zip(probs, probs[1:], strict=False))
    assert sum(p for _, p in probs) <= 1.0 + 1e-6
    everything = next_char_probs(model, tok, "ROMEO", k=1000)  # k larger than V: the whole distribution
    assert len(everything) == 65 and sum(p for _, p in everything) == pytest.approx(1.0, abs=1e-5)


def test_next_char_probs_crops_a_long_prompt_like_generate(model, tok):
    long = "To be, or not to be: that is the question"
    assert next_char_probs(model, tok, long, k=5) == next_char_probs(model, tok, long[-16:], k=5)
    with pytest.raises(ValueError, match="empty"):
        next_char_probs(model, tok, "")


def test_embedding_pca_is_the_svd_of_the_centred_table(model, tok):
    coords, labels = embedding_pca(model, tok)
    assert coords.shape == (65, 2) and labels == list(VOCAB)
    W = model.token_embedding_table.weight.detach()
    Wc = W - W.mean(0)
    _, S, Vh = torch.linalg.svd(Wc, full_matrices=False)
    assert torch.allclose(coords.abs(), (Wc @ Vh[:2].T).abs(), atol=1e-5)  # projections on the 2 axes
    assert torch.allclose(coords.norm(dim=0), S[:2], atol=1e-5)
    assert (coords.gather(0, coords.abs().argmax(0, keepdim=True)) > 0).all()  # the sign convention
    ev = explained_variance(model)
    assert ev.sum() == pytest.approx(1.0) and ev[0] >= ev[1]


def test_char_classes():
    assert [char_class(c) for c in "aZb \n!3"] == ["vowel", "capital", "consonant", "space", "space",
                                                   "punctuation", "punctuation"]
    assert set(map(char_class, VOCAB)) == set(CHAR_CLASSES)


def test_head_scores_find_a_previous_token_head_and_a_newline_head():
    tokens = list("ab\ncd")
    T = len(tokens)
    maps = torch.zeros(1, 2, T, T)
    maps[0, 0, 0, 0] = 1.0
    for t in range(1, T):
        maps[0, 0, t, t - 1] = 1.0  # head 0 looks one back
    for t in range(T):
        maps[0, 1, t, 2 if t >= 2 else t] = 1.0  # head 1 looks at the newline once there is one
    s = head_scores(maps, tokens)
    assert s["previous"][0].tolist() == [1.0, 0.25]  # head 1 hits t-1 only at t=3
    assert s["newline"][0].tolist() == [pytest.approx(1 / 3), 1.0]
    assert s["self"][0].tolist() == [pytest.approx(0.2), pytest.approx(0.6)]
