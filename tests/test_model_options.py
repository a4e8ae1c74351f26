"""The GPT options of notebook 10: positions (learned, sinusoidal, rope), activations, QK-norm, tying, biases.

Each option is checked against a reference written out here, from the paper's formula.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from shakespeare_lm.checkpoint import load_checkpoint, save_checkpoint
from shakespeare_lm.model import GPT, PRESETS, FeedForward, GPTConfig, Head, get_preset
from shakespeare_lm.model_config import ACTIVATIONS, POS_ENCODINGS
from shakespeare_lm.positional import Rotary, apply_rope, rope_angles, sinusoidal_table
from shakespeare_lm.tokenizer import CharTokenizer

V = 65
TINY = PRESETS["tiny"]


def randomised(model: nn.Module, std: float = 0.2) -> nn.Module:
    """Large random weights (biases too), so that every option visibly changes the function."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.eval()


def test_sinusoidal_table_is_the_formula_of_attention_is_all_you_need():
    T, C = 50, 10
    table = sinusoidal_table(T, C)
    expected = torch.tensor([
        [math.sin(pos / 10000 ** (i / C)) if i % 2 == 0 else math.cos(pos / 10000 ** ((i - 1) / C))
         for i in range(C)]
        for pos in range(T)
    ])  # PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))
    torch.testing.assert_close(table, expected.float(), atol=1e-6, rtol=0)


def test_sinusoidal_gpt_adds_the_fixed_table_and_has_no_position_parameters():
    model = GPT(get_preset("tiny", pos_encoding="sinusoidal"))
    idx = torch.randint(0, V, (2, 9))
    expected = model.token_embedding_table(idx) + sinusoidal_table(TINY.block_size, TINY.n_embd)[:9]
    torch.testing.assert_close(model.embed(idx), expected)
    assert not any("position" in k for k in model.state_dict())  # a non-persistent buffer
    learned = GPT(TINY)
    assert model.num_parameters(non_embedding=False) == learned.num_parameters(non_embedding=False) - 16 * 32
    assert model.num_parameters() == model.num_parameters(non_embedding=False)


def test_rope_equals_the_complex_rotation_of_roformer():
    torch.manual_seed(0)
    T, hs = 12, 8
    x = torch.randn(2, 3, T, hs)
    # RoFormer: channel pair (2i, 2i+1) is the complex number x_2i + j x_2i+1, multiplied by
    # exp(j * m * theta_i) at position m, with theta_i = 10000^(-2i/hs).
    theta = 10000.0 ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)  # (hs/2,)
    m = torch.arange(5, 5 + T, dtype=torch.float64)  # positions 5..16
    rotation = torch.polar(torch.ones(T, hs // 2, dtype=torch.float64), torch.outer(m, theta))  # (T, hs/2)
    z = torch.view_as_complex(x.double().reshape(2, 3, T, hs // 2, 2))  # (2, 3, T, hs/2)
    expected = torch.view_as_real(z * rotation).reshape(2, 3, T, hs).float()
    torch.testing.assert_close(Rotary(hs, block_size=8)(x, start=5), expected)  # past the cached table
    torch.testing.assert_close(apply_rope(x, *rope_angles(torch.arange(5, 5 + T), hs)), expected)
    torch.testing.assert_close(Rotary(hs, 32)(x, start=5), expected)  # from the cached table


def test_rope_makes_q_dot_k_depend_only_on_the_offset():
    torch.manual_seed(0)
    hs = 16
    q, k = torch.randn(hs), torch.randn(hs)

    def score(m: int, n: int) -> float:
        cos_m, sin_m = rope_angles(torch.tensor([m]), hs)
        cos_n, sin_n = rope_angles(torch.tensor([n]), hs)
        return (apply_rope(q[None], cos_m, sin_m) @ apply_rope(k[None], cos_n, sin_n).T).item()

    assert score(7, 3) == pytest.approx(score(4, 0), abs=1e-5)
    assert score(1003, 999) == pytest.approx(score(4, 0), abs=1e-4)
    assert score(5, 0) != pytest.approx(score(4, 0), abs=1e-3)


def test_rope_gpt_has_no_position_table_and_is_shift_invariant_within_a_window():
    model = randomised(GPT(get_preset("tiny", pos_encoding="rope")))
    assert model.position_embedding_table is None
    idx = torch.randint(0, V, (1, 6))
    torch.testing.assert_close(model.embed(idx), model.token_embedding_table(idx))
    assert model.num_parameters() == GPT(TINY).num_parameters()  # learned minus its table
    head = model.blocks[0].sa.heads[0]
    x = torch.randn(1, 6, TINY.n_embd)
    with torch.no_grad():
        plain, wei = head(x, return_attn=True)
        # the same tokens, preceded by nothing, rotated by positions 0.. or 10.. give the same weights
        q, k = head.query(x), head.key(x)  # (1, 6, hs)
        q, k = head.rotary(q, 10), head.rotary(k, 10)
        shifted = F.softmax((q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(
            head.tril[:6, :6] == 0, float("-inf")), dim=-1)
    torch.testing.assert_close(shifted, wei, atol=1e-5, rtol=0)
    assert plain.shape == (1, 6, q.size(-1))


def test_gelu_preset_feedforward_is_a_gelu_mlp():
    torch.manual_seed(0)
    ffwd = randomised(FeedForward(16, activation="gelu"))
    x = torch.randn(3, 5, 16)
    w1, b1, w2, b2 = ffwd.net[0].weight, ffwd.net[0].bias, ffwd.net[2].weight, ffwd.net[2].bias
    h = x @ w1.T + b1
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # exact GELU (Hendrycks & Gimpel), as nanoGPT's nn.GELU()
    torch.testing.assert_close(ffwd(x), h @ w2.T + b2)
    assert isinstance(GPT(PRESETS["nanogpt-cpu"]).blocks[0].ffwd.net[1], nn.GELU)


def test_relu2_feedforward_squares_the_relu():
    ffwd = randomised(FeedForward(16, activation="relu2"))
    x = torch.randn(3, 5, 16)
    h = (x @ ffwd.net[0].weight.T + ffwd.net[0].bias).clamp(min=0) ** 2
    torch.testing.assert_close(ffwd(x), h @ ffwd.net[2].weight.T + ffwd.net[2].bias)
    relu = FeedForward(16)
    relu.load_state_dict(ffwd.state_dict())  # same parameter names, only the activation differs
    assert not torch.allclose(relu(x), ffwd(x))


def test_qk_norm_matches_a_reference_and_changes_the_function():
    torch.manual_seed(0)
    head = randomised(Head(16, 8, 10, qk_norm=True))
    plain = Head(16, 8, 10)
    plain.load_state_dict(head.state_dict())
    x = torch.randn(2, 10, 16)
    q, k, v = x @ head.query.weight.T, x @ head.key.weight.T, x @ head.value.weight.T
    eps = torch.finfo(torch.float32).eps
    q = q / torch.sqrt(q.pow(2).mean(-1, keepdim=True) + eps)  # RMSNorm without a gain
    k = k / torch.sqrt(k.pow(2).mean(-1, keepdim=True) + eps)
    att = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(torch.ones(10, 10).tril() == 0, float("-inf"))
    torch.testing.assert_close(head(x), F.softmax(att, dim=-1) @ v)
    assert not torch.allclose(head(x), plain(x))


def test_untied_lm_head_is_its_own_parameter():
    tied, untied = GPT(TINY), GPT(get_preset("tiny", tie_weights=False))
    assert untied.lm_head.weight is not untied.token_embedding_table.weight
    assert untied.num_parameters() == tied.num_parameters() + V * TINY.n_embd
    assert {"lm_head.weight", "token_embedding_table.weight"} <= set(untied.state_dict())
    assert abs(untied.lm_head.weight.std().item() - 0.02) < 0.003  # GPT-2 init


def test_attn_bias_adds_three_biases_per_layer():
    plain, biased = GPT(TINY), GPT(get_preset("tiny", attn_bias=True))
    assert biased.num_parameters() == plain.num_parameters() + TINY.n_layer * 3 * TINY.n_embd
    attn = randomised(biased).blocks[0].sa
    assert attn.qkv_bias().shape == (3 * TINY.n_embd,) and plain.blocks[0].sa.qkv_bias() is None
    assert attn.qkv_bias().abs().sum() > 0


OPTIONS = list(itertools.product(POS_ENCODINGS, ACTIVATIONS, *[[False, True]] * 3))


@pytest.mark.parametrize("pos,activation,qk_norm,tie,attn_bias", OPTIONS)
def test_explicit_and_sdpa_attention_agree_for_every_option(pos, activation, qk_norm, tie, attn_bias):
    config = get_preset("tiny", n_head=4, pos_encoding=pos, activation=activation, qk_norm=qk_norm,
                        tie_weights=tie, attn_bias=attn_bias)
    model = randomised(GPT(config))
    T = 2 * config.block_size + 3 if pos == "rope" else config.block_size  # RoPE: a sliding window too
    idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fast, _ = model(idx)
        slow, _ = model.set_attn_impl("explicit")(idx)
    torch.testing.assert_close(fast, slow)


def test_nanogpt_cpu_has_nanogpts_parameter_count():
    # nanoGPT (model.py) with n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65, bias=True:
    #   per layer: ln_1 2*128 + c_attn 128*384+384 + attn c_proj 128*128+128 + ln_2 2*128
    #              + c_fc 128*512+512 + mlp c_proj 512*128+128 = 198,272; 4 layers = 793,088
    #   wte 65*128 = 8,320 (shared with lm_head), ln_f 2*128 = 256, wpe 64*128 = 8,192
    #   get_num_params() leaves out wpe: 793,088 + 8,320 + 256 = 801,664 (nanoGPT prints 0.80M)
    model = GPT(PRESETS["nanogpt-cpu"])
    assert model.num_parameters() == 801_664
    assert model.num_parameters(non_embedding=False) == 801_664 + 8_192
    config = PRESETS["nanogpt-cpu"]
    assert (config.activation, config.bias, config.attn_bias, config.pos_encoding, config.tie_weights) == (
        "gelu", True, True, "learned", True)


def test_checkpoint_round_trip_of_a_rope_untied_gelu_model(tmp_path):
    tok = CharTokenizer.from_text("abcdefgh \n")
    config = get_preset("tiny", tok, pos_encoding="rope", tie_weights=False, activation="gelu", qk_norm=True,
                        attn_bias=True)
    model = randomised(GPT(config))
    save_checkpoint(tmp_path / "ck", model, tokenizer=tok)
    loaded, _, _ = load_checkpoint(tmp_path / "ck")
    assert loaded.config == config
    assert loaded.lm_head.weight.data_ptr() != loaded.token_embedding_table.weight.data_ptr()
    idx = torch.randint(0, tok.vocab_size, (2, 20))  # longer than block_size: the sliding window
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx)[0], model(idx)[0])


def test_old_config_dicts_mean_the_lecture_model():
    old = {"vocab_size": 65, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32, "dropout": 0.0,
           "bias": True}  # a checkpoint's config from before these options
    config = GPTConfig(**old)
    assert (config.pos_encoding, config.activation, config.qk_norm, config.tie_weights, config.attn_bias) == (
        "learned", "relu", False, True, False)


@pytest.mark.parametrize("field,value,message", [
    ("pos_encoding", "alibi", "pos_encoding must be one of 'learned', 'sinusoidal', 'rope', got 'alibi'"),
    ("activation", "swish", "activation must be one of 'relu', 'gelu', 'relu2', got 'swish'"),
    ("qk_norm", "yes", "qk_norm must be True or False, got 'yes'"),
    ("tie_weights", 0, "tie_weights must be True or False, got 0"),
    ("attn_bias", None, "attn_bias must be True or False, got None"),
])
def test_bad_option_values_are_one_line_errors(field, value, message):
    with pytest.raises(ValueError) as e:
        get_preset("tiny", **{field: value})
    assert str(e.value) == message
    with pytest.raises(ValueError, match="head size n_embd // n_head must be even, got 3"):
        dataclasses.replace(TINY, n_embd=6, n_head=2, pos_encoding="rope")
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(8, activation="tanh")


def test_learned_positions_still_refuse_long_sequences():
    with pytest.raises(ValueError, match="exceeds block_size"):
        GPT(TINY)(torch.zeros(1, TINY.block_size + 1, dtype=torch.long))
