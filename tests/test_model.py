"""Behaviour of the models: shapes, causality, loss at init, overfitting, attention paths, tying, configs.

The KV cache's agreement with these forwards is tested in test_kvcache.py.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn as nn

from shakespeare_lm.model import (
    GPT,
    PRESETS,
    BigramLanguageModel,
    Block,
    FeedForward,
    GPTConfig,
    Head,
    MultiHeadAttention,
    build_model,
    get_preset,
)
from shakespeare_lm.tokenizer import CharTokenizer

V = 65
TINY = PRESETS["tiny"]

def make_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "bigram": BigramLanguageModel(V),
        "gpt-sdpa": GPT(TINY),
        "gpt-explicit": GPT(TINY).set_attn_impl("explicit"),
        "gpt-nobias": GPT(dataclasses.replace(TINY, bias=False)),
    }


@pytest.mark.parametrize("name", list(make_models()))
def test_forward_shapes_and_loss(name):
    model = make_models()[name].eval()
    idx = torch.randint(0, V, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, V)
    assert loss is None
    logits, loss = model(idx, idx)
    assert loss.shape == () and torch.isfinite(loss)


@pytest.mark.parametrize("name", list(make_models()))
def test_causality(name):
    """Changing the tokens after position t leaves the logits at positions <= t unchanged."""
    model = make_models()[name].eval()
    torch.manual_seed(1)
    idx = torch.randint(0, V, (2, TINY.block_size))
    t = 6
    changed = idx.clone()
    changed[:, t + 1 :] = torch.randint(0, V, (2, TINY.block_size - t - 1))
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])  # the later positions do see the change


@pytest.mark.parametrize("name", list(make_models()))
def test_loss_at_init_is_about_ln_vocab(name):
    model = make_models()[name]
    if isinstance(model, BigramLanguageModel):
        # nn.Embedding's default N(0, 1) init gives ~ln(V) + 0.5; shrink it as a reader would.
        nn.init.normal_(model.token_embedding_table.weight, std=0.02)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, V, (16, TINY.block_size), generator=g)
    targets = torch.randint(0, V, (16, TINY.block_size), generator=g)
    with torch.no_grad():
        _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(V)) < 0.15


@pytest.mark.parametrize("name", ["bigram", "gpt-sdpa"])
def test_one_batch_overfits(name):
    model = make_models()[name].train()
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, V, (4, TINY.block_size), generator=g)
    targets = torch.roll(idx, -1, dims=1)  # deterministic next token given the whole prefix
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2 if name == "gpt-sdpa" else 1e-1)
    first = None
    for _ in range(100):
        _, loss = model(idx, targets)
        first = loss.item() if first is None else first
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    # The bigram can only learn each token's most frequent successor; the GPT memorises the batch.
    assert loss.item() < (0.3 if name == "gpt-sdpa" else 1.5) < first


def test_explicit_and_sdpa_attention_agree():
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_head=4)).eval()
    idx = torch.randint(0, V, (2, TINY.block_size))
    with torch.no_grad():
        fast, _ = model(idx)
        slow, _ = model.set_attn_impl("explicit")(idx)
    torch.testing.assert_close(fast, slow)
    assert all(m.attn_impl == "explicit" for m in model.modules() if isinstance(m, MultiHeadAttention))
    with pytest.raises(ValueError, match="attn_impl"):
        model.set_attn_impl("flash")
    assert all(m.attn_impl == "explicit" for m in model.modules() if isinstance(m, MultiHeadAttention))


def test_cpu_short_windows_use_the_batched_matmul_attention(monkeypatch):
    """On a CPU, T <= CPU_MATMUL_MAX_T without dropout: causal_attention_matmul (== SDPA, values and
    gradients); longer sequences and training with dropout still call SDPA."""
    from shakespeare_lm import attention

    torch.manual_seed(0)
    for shape in [(2, 4, 16, 8), (1, 1, 1, 4), (3, 2, 128, 16)]:
        q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
        got = attention.causal_attention_matmul(q, k, v)
        grads = torch.autograd.grad(got.square().sum(), (q, k, v))
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        for g, w in zip(grads, torch.autograd.grad(want.square().sum(), (q, k, v)), strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    calls = []
    sdpa = attention.F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(a[0].size(2)) or sdpa(*a, **kw))
    mha = MultiHeadAttention(32, 4, 8, block_size=256, dropout=0.1)
    x = torch.randn(2, 64, 32)
    mha.eval()(x)
    assert calls == []  # T = 64, no dropout at eval: the matmul path
    mha.eval()(torch.randn(1, 200, 32))
    assert calls == [200]  # past CPU_MATMUL_MAX_T: SDPA
    mha.train()(x)
    assert calls == [200, 64]  # dropout in training: SDPA's


def test_attn_impl_is_checked_when_set_not_at_forward():
    block = Block(32, 4, 16)
    block.sa.attn_impl = "explicit"  # notebook 04 switches a lone block's path this way
    assert block.sa.attn_impl == "explicit"
    with pytest.raises(ValueError, match="attn_impl must be one of"):
        block.sa.attn_impl = "flash"  # a typo fails at once, not at the next forward
    assert block.sa.attn_impl == "explicit"


def test_attention_weights_api():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    idx = torch.randint(0, V, (2, 9))
    with torch.no_grad():
        maps = model.get_attention(idx)
        x = torch.randn(2, 9, TINY.n_embd)
        out, wei = model.blocks[0].sa(x, return_attn=True)
        head_out, head_wei = model.blocks[0].sa.heads[1](x, return_attn=True)
    assert len(maps) == TINY.n_layer
    assert maps[0].shape == (2, TINY.n_head, 9, 9)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, TINY.n_head, 9))
    assert torch.all(maps[0].triu(diagonal=1) == 0)  # nothing attends to the future
    assert out.shape == (2, 9, TINY.n_embd) and wei.shape == (2, TINY.n_head, 9, 9)
    torch.testing.assert_close(wei[:, 1], head_wei)
    assert head_out.shape == (2, 9, TINY.n_embd // TINY.n_head)


def test_lecture_structure_loads_strictly():
    """A notebook's inline modules with the lecture's names load into the package classes."""
    torch.manual_seed(0)
    block = Block(32, 4, 16, dropout=0.1)
    assert isinstance(block.sa, MultiHeadAttention) and isinstance(block.ffwd, FeedForward)
    assert isinstance(block.sa.heads[0], Head) and len(block.sa.heads) == 4
    assert isinstance(block.ffwd.net[1], nn.ReLU)
    assert "tril" not in dict(block.state_dict()) and "sa.heads.0.tril" not in block.state_dict()
    names = {"sa.heads.3.value.weight", "sa.proj.weight", "ffwd.net.2.bias", "ln2.weight"}
    assert names <= set(block.state_dict())
    model = GPT(TINY)
    clone = GPT(TINY)
    clone.load_state_dict(model.state_dict(), strict=True)
    assert {"token_embedding_table.weight", "position_embedding_table.weight", "ln_f.weight"} <= set(
        model.state_dict()
    )


def test_weight_tying_survives_an_optimizer_step():
    torch.manual_seed(0)
    model = GPT(TINY)
    assert model.lm_head.weight is model.token_embedding_table.weight
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = model.lm_head.weight.detach().clone()
    idx = torch.randint(0, V, (2, 8))
    _, loss = model(idx, idx)
    loss.backward()
    opt.step()
    assert model.lm_head.weight is model.token_embedding_table.weight
    assert model.lm_head.weight.data_ptr() == model.token_embedding_table.weight.data_ptr()
    assert not torch.equal(before, model.lm_head.weight)


def test_parameter_counts_and_init():
    model = GPT(get_preset("cpu-small"))
    total = sum(p.numel() for p in model.parameters())  # shared tensors counted once
    assert model.num_parameters(non_embedding=False) == total
    assert model.num_parameters() == total - 64 * 128
    # 4 blocks of 12*C^2 weights + 10*C biases and LayerNorm parameters, the 65x128 token embedding, ln_f.
    assert model.num_parameters() == 4 * (12 * 128**2 + 10 * 128) + 65 * 128 + 2 * 128
    std = 0.02 / math.sqrt(2 * 4)
    assert abs(model.blocks[0].sa.proj.weight.std().item() - std) < 0.2 * std
    assert abs(model.blocks[0].ffwd.net[0].weight.std().item() - 0.02) < 0.002
    assert torch.all(model.blocks[0].ffwd.net[0].bias == 0)


def test_presets_and_get_preset():
    assert {"tiny", "cpu-small", "baby-gpt"} <= set(PRESETS)
    small = PRESETS["cpu-small"]
    assert (small.n_layer, small.n_head, small.n_embd, small.block_size, small.dropout) == (4, 4, 128, 64, 0)
    baby = PRESETS["baby-gpt"]
    assert (baby.n_layer, baby.n_head, baby.n_embd, baby.block_size, baby.dropout) == (6, 6, 384, 256, 0.2)
    assert get_preset("tiny", vocab_size=100).vocab_size == 100
    assert get_preset("tiny", n_layer=3) == GPTConfig(**{**dataclasses.asdict(TINY), "n_layer": 3})
    with pytest.raises(ValueError, match="cpu-small"):
        get_preset("huge")
    with pytest.raises(ValueError, match="n_layers"):
        get_preset("tiny", n_layers=3)
    with pytest.raises(ValueError, match="n_layer"):
        get_preset("tiny", n_layer=0)  # overrides are validated like a new config
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.n_layer = 3


def test_preset_takes_the_vocabulary_from_the_tokenizer():
    tok = CharTokenizer.from_text("to be or not to be")  # 7 characters, not Tiny Shakespeare's 65
    config = get_preset("tiny", tok)
    assert config.vocab_size == tok.vocab_size == 7
    assert get_preset("cpu-small", tokenizer=tok, dropout=0.1).vocab_size == 7
    assert get_preset("tiny", tok, vocab_size=7).vocab_size == 7  # agreeing is fine
    with pytest.raises(ValueError, match="vocab_size=65 disagrees with the tokenizer's 7 tokens"):
        get_preset("tiny", tok, vocab_size=65)
    model = GPT(config)
    idx = torch.tensor([tok.encode("not to be")])  # (1, T)
    assert model(idx)[0].shape == (1, 9, 7)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(n_embd=30, n_head=4), "divisible"),
        (dict(n_layer=0), "n_layer"),
        (dict(block_size=-1), "block_size"),
        (dict(vocab_size=2.5), "vocab_size"),
        (dict(dropout=1.0), "dropout"),
        (dict(dropout=-0.1), "dropout"),
        (dict(bias="yes"), "bias"),
    ],
)
def test_bad_configs_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**dataclasses.asdict(TINY), **bad})


def test_forward_longer_than_block_size_raises():
    model = GPT(TINY)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, TINY.block_size + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))
    assert BigramLanguageModel(V)(torch.zeros(1, 1000, dtype=torch.long))[0].shape == (1, 1000, V)


@pytest.mark.parametrize("name", ["bigram", "gpt-sdpa"])
def test_float_idx_is_a_clear_error(name):
    model = make_models()[name]
    with pytest.raises(ValueError, match="integer token ids .*torch.float32"):
        model(torch.zeros(1, 4))
    assert model(torch.zeros(1, 4, dtype=torch.int32))[0].shape == (1, 4, V)  # int32 ids embed too


def test_bigram_parameter_count():
    assert BigramLanguageModel(V).num_parameters() == V * V


@pytest.mark.parametrize("name", ["bigram", "gpt-nobias"])
def test_build_model_round_trip(name):
    model = make_models()[name]
    rebuilt = build_model(type(model).__name__, dataclasses.asdict(model.config))
    assert type(rebuilt) is type(model) and rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    idx = torch.randint(0, V, (1, 8))
    torch.testing.assert_close(rebuilt.eval()(idx)[0], model.eval()(idx)[0])
    assert model.block_size == (None if name == "bigram" else TINY.block_size)
    with pytest.raises(ValueError, match="GPT"):
        build_model("Transformer", {})
    with pytest.raises(ValueError, match="unknown .*field.*n_layers"):
        build_model(type(model).__name__, {**dataclasses.asdict(model.config), "n_layers": 2})
