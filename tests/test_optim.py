"""Tests for the optimizer and its schedule: parameter groups, plain-argument AdamW, warmup + cosine / WSD,
and fitting a schedule to a time budget."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from shakespeare_lm.optim import clip_grad_norm, configure_optimizer, get_lr, param_groups, steps_that_fit
from shakespeare_lm.training import TrainConfig

PACKAGE = Path(__file__).resolve().parent.parent / "shakespeare_lm"


def test_decay_and_no_decay_groups(char_corpus, tiny_gpt):
    tok, *_ = char_corpus
    model = tiny_gpt(tok)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # tied weight once
    assert any(p is model.token_embedding_table.weight for p in decay["params"])
    opt = configure_optimizer(model, 3e-3, (0.8, 0.95), 0.2, device="cpu")
    assert [(g["lr"], g["betas"], g["weight_decay"]) for g in opt.param_groups] == [
        (3e-3, (0.8, 0.95), 0.2), (3e-3, (0.8, 0.95), 0.0)]


def test_lr_schedule_warmup_cosine_min_lr():
    c = TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    assert get_lr(0, c) == pytest.approx(1 / 11)
    assert get_lr(9, c) == pytest.approx(10 / 11)
    assert get_lr(10, c) == pytest.approx(1.0)  # peak after warmup
    assert get_lr(60, c) == pytest.approx(0.55)  # half-way down the cosine
    assert get_lr(110, c) == pytest.approx(0.1)
    assert get_lr(500, c) == pytest.approx(0.1)
    lrs = [get_lr(s, c) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    assert TrainConfig(learning_rate=3e-3).final_lr == pytest.approx(3e-4)


def test_lr_schedule_wsd_holds_peak_then_decays_linearly():
    c = TrainConfig(learning_rate=1.0, min_lr=0.0, warmup_iters=10, max_iters=100,
                    lr_schedule="wsd", decay_fraction=0.4)
    assert get_lr(0, c) == pytest.approx(1 / 11)  # same warmup as cosine
    assert get_lr(10, c) == pytest.approx(1.0)
    assert get_lr(59, c) == pytest.approx(1.0)  # stable until the last 40 steps
    assert get_lr(60, c) == pytest.approx(1.0)  # decay starts at 100 - 40
    assert get_lr(80, c) == pytest.approx(0.5)  # linear: half-way down
    assert get_lr(99, c) == pytest.approx(1 / 40)
    assert get_lr(100, c) == pytest.approx(0.0)
    assert get_lr(500, c) == pytest.approx(0.0)
    lrs = [get_lr(s, c) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    # decays to min_lr by lr_decay_iters; the decay never starts inside the warmup
    c = dataclasses.replace(c, min_lr=0.2, lr_decay_iters=50, decay_fraction=1.0)
    assert get_lr(10, c) == pytest.approx(1.0)
    assert get_lr(30, c) == pytest.approx(0.6)
    assert get_lr(50, c) == pytest.approx(0.2)
    assert get_lr(99, c) == pytest.approx(0.2)
    assert TrainConfig.from_dict(c.to_dict()) == c  # JSON-friendly


def test_lr_schedule_validation():
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="linear")
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="decay_fraction must be in"):
            TrainConfig(lr_schedule="wsd", decay_fraction=bad)


def test_steps_that_fit_the_budget():
    assert steps_that_fit(10, 90.0, 1.5, 1000) == 70  # 60 more steps of 1.5 s
    assert steps_that_fit(10, 9000.0, 1.5, 1000) == 1000  # never past max_iters
    assert steps_that_fit(10, -5.0, 1.5, 1000) == 11  # out of time: finish this step
    assert steps_that_fit(10, 90.0, 0.0, 1000) == 1000  # no measurement: keep max_iters
    assert steps_that_fit(1000, 90.0, 1.5, 1000) == 1000  # measured on the last step


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0])  # below max_norm (nothing to scale), around, above
def test_clip_grad_norm_is_torchs_exactly(scale):
    torch.manual_seed(0)
    shapes = [(32, 128), (32,), (128, 512), (512,), (65, 128), (7, 3, 5)]
    mine = [nn.Parameter(torch.randn(s)) for s in shapes]
    ref = [nn.Parameter(p.detach().clone()) for p in mine]
    for a, b in zip(mine, ref, strict=True):
        a.grad = torch.randn(a.shape) * scale / 20
        b.grad = a.grad.clone()
    mine.append(nn.Parameter(torch.ones(3)))  # no gradient: left out, as torch does
    total = clip_grad_norm(mine, max_norm=1.0)
    want = torch.nn.utils.clip_grad_norm_(ref, max_norm=1.0)
    assert torch.equal(total, want)
    for a, b in zip(mine, ref, strict=False):
        assert torch.equal(a.grad, b.grad)  # bit for bit
    if want > 1:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in mine[:-1]]))
        assert norm == pytest.approx(1.0, rel=1e-5)
    assert clip_grad_norm([nn.Parameter(torch.ones(2))], 1.0) == 0  # no gradients at all
