"""Tests for TrainConfig(optimizer="muon"): the parameter split, the schedule, training, resume, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shakespeare_lm.checkpoint import CheckpointError, read_meta
from shakespeare_lm.model import BigramLanguageModel
from shakespeare_lm.optim import (
    JORDAN,
    MUON_LR,
    MUON_MOMENTUM,
    POLAR_EXPRESS,
    Muon,
    MuonAdamW,
    _newton_schulz,
    build_optimizer,
    muon_params,
    ns_coefficients,
)
from shakespeare_lm.training import TrainConfig, get_lr, train


def cfg(**overrides):
    base = dict(batch_size=4, block_size=16, max_iters=6, eval_interval=3, eval_iters=2, learning_rate=3e-3,
                warmup_iters=2, dtype="float32", compile="off", device="cpu", progress=False,
                optimizer="muon")
    return TrainConfig(**{**base, **overrides})


def _split(opt: MuonAdamW) -> tuple[list, list]:
    muon = [p for g in opt.parts["muon"].param_groups for p in g["params"]]
    adamw = [p for g in opt.parts["adamw"].param_groups for p in g["params"]]
    return muon, adamw


@pytest.mark.parametrize("tied", [True, False])
def test_every_parameter_is_in_exactly_one_optimizer(char_corpus, tiny_gpt, tied):
    tok, _, _ = char_corpus
    model = tiny_gpt(tok)
    if not tied:  # an untied lm_head: its own weight, which must stay with AdamW
        model.lm_head.weight = nn.Parameter(model.token_embedding_table.weight.detach().clone())
    opt = build_optimizer(model, cfg(), "cpu")
    assert isinstance(opt.parts["muon"], torch.optim.Muon)
    assert isinstance(opt.parts["adamw"], torch.optim.AdamW)
    muon, adamw = _split(opt)
    ids = [id(p) for p in muon + adamw]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # tied weights count once
    embeddings = {id(model.token_embedding_table.weight), id(model.position_embedding_table.weight),
                  id(model.lm_head.weight)}
    assert all(p.dim() == 2 and id(p) not in embeddings for p in muon)
    assert embeddings <= {id(p) for p in adamw}
    # exactly the blocks' matrices: per head query/key/value, the projection, the two feed-forward layers
    n_layer, n_head = model.config.n_layer, model.config.n_head
    assert len(muon) == n_layer * (3 * n_head + 3)
    block_matrices = {id(p) for name, p in model.blocks.named_parameters() if p.dim() == 2}
    assert {id(p) for p in muon} == block_matrices == {id(p) for p in muon_params(model)}


def test_muon_trains_a_tiny_model(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    history = train(tiny_gpt(tok), tr, va, cfg(max_iters=40, eval_interval=20, muon_lr=0.02))
    assert history.val_loss[-1] < history.val_loss[0] - 0.5
    assert history.stop_reason == "max_iters"


def test_the_schedule_drives_both_optimizers(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    config = cfg(max_iters=8, warmup_iters=3, muon_lr=0.05, embedding_lr_mult=2.0, min_lr=1e-4)
    seen = []

    class Record:
        def on_step(self, state):
            seen.append([g["lr"] for g in state.optimizer.param_groups])

    train(tiny_gpt(tok), tr, va, config, callbacks=[Record()])
    assert len(seen) == 8
    for step, groups in enumerate(seen):
        lr = get_lr(step, config)
        # Muon's group, then AdamW's: embeddings (with the tied lm_head; no other matrix is left), no-decay
        muon, embeddings, no_decay = groups
        assert muon == pytest.approx(lr * 0.05 / 3e-3)
        assert no_decay == lr and embeddings == pytest.approx(2 * lr)
    assert seen[0][0] < seen[2][0]  # warmup raises the Muon LR ...
    assert seen[-1][0] < seen[3][0]  # ... and the decay lowers it
    assert build_optimizer(tiny_gpt(tok), cfg(), "cpu").param_groups[0]["lr"] == MUON_LR  # muon_lr=None


@pytest.mark.parametrize("muon", [{}, dict(muon_momentum=0.9, muon_ns="polar-express", muon_ns_steps=4)])
def test_muon_resume_equals_uninterrupted(char_corpus, tiny_gpt, tmp_path, muon):
    tok, tr, va = char_corpus
    kw = dict(max_iters=8, eval_interval=4, lr_decay_iters=8, checkpoint="last", muon_lr=0.03, **muon)
    full = tiny_gpt(tok, dropout=0.1)
    h_full = train(full, tr, va, cfg(**kw))

    out = tmp_path / "run"
    train(tiny_gpt(tok, dropout=0.1), tr, va, cfg(**{**kw, "max_iters": 4}, out_dir=str(out)), tokenizer=tok)
    meta = read_meta(out / "checkpoint")
    assert meta["optimizer"]["type"] == "MuonAdamW"
    assert {g["optimizer"] for g in meta["optimizer"]["param_groups"]} == {"muon", "adamw"}
    assert meta["optimizer"]["param_groups"][0]["ns_schedule"] == muon.get("muon_ns", "jordan")
    torch.manual_seed(123)  # disturb the global RNG: resume must restore it
    resumed = tiny_gpt(tok, seed=99, dropout=0.1)  # different init: weights come from the checkpoint
    h_res = train(resumed, tr, va, cfg(**kw, out_dir=str(out)), resume_from=out, tokenizer=tok)

    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert h_res.steps == h_full.steps
    assert h_res.iter_losses == h_full.iter_losses  # exactly, not approximately


@pytest.mark.parametrize(("saved", "resumed"), [("muon", "adamw"), ("adamw", "muon")])
def test_resume_with_the_other_optimizer_is_a_clear_error(char_corpus, tiny_gpt, tmp_path, saved, resumed):
    tok, tr, va = char_corpus
    out = tmp_path / "run"
    train(tiny_gpt(tok), tr, va, cfg(max_iters=2, eval_interval=2, optimizer=saved, out_dir=str(out)),
          tokenizer=tok)
    before = read_meta(out / "checkpoint")["files"]
    with pytest.raises(CheckpointError) as e:
        train(tiny_gpt(tok), tr, va, cfg(max_iters=4, optimizer=resumed, out_dir=str(out)), resume_from=out)
    msg = str(e.value)
    assert "\n" not in msg and f"TrainConfig(optimizer={saved!r})" in msg
    assert read_meta(out / "checkpoint")["files"] == before  # the checkpoint is left as it was


def test_bigram_has_no_matrices_for_muon_and_still_trains(char_corpus):
    tok, tr, va = char_corpus
    torch.manual_seed(0)
    model = BigramLanguageModel(tok.vocab_size)
    opt = build_optimizer(model, cfg(), "cpu")
    assert list(opt.parts) == ["adamw"] and muon_params(model) == []
    history = train(model, tr, va, cfg(max_iters=20, eval_interval=10, learning_rate=1e-1))
    assert history.val_loss[-1] < history.val_loss[0]


def test_bad_optimizer_settings_are_one_line_errors():
    cases = [
        (dict(optimizer="sgd"), "TrainConfig.optimizer must be one of 'adamw', 'muon', got 'sgd'"),
        (dict(optimizer="muon", muon_lr=0.0), "TrainConfig.muon_lr must be a number > 0 or None, got 0.0"),
        (dict(optimizer="muon", muon_lr="0.02"), "TrainConfig.muon_lr must be a number > 0"),
        (dict(optimizer="muon", muon_lr=True), "TrainConfig.muon_lr must be a number > 0"),
        (dict(muon_lr=0.02), "TrainConfig.muon_lr applies to optimizer='muon' only"),
        (dict(optimizer="muon", muon_momentum=1.0), "TrainConfig.muon_momentum must be a number in [0, 1)"),
        (dict(optimizer="muon", muon_momentum="0.9"), "TrainConfig.muon_momentum must be a number in [0, 1)"),
        (dict(optimizer="muon", muon_ns="polar"),
         "TrainConfig.muon_ns must be one of 'jordan', 'polar-express', got 'polar'"),
        (dict(optimizer="muon", muon_ns_steps=0), "TrainConfig.muon_ns_steps must be a positive integer"),
        (dict(muon_momentum=0.9), "TrainConfig.muon_momentum applies to optimizer='muon' only"),
        (dict(muon_ns="polar-express"), "TrainConfig.muon_ns applies to optimizer='muon' only"),
        (dict(muon_ns_steps=3), "TrainConfig.muon_ns_steps applies to optimizer='muon' only"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as e:
            TrainConfig(**kwargs)
        assert message in str(e.value) and "\n" not in str(e.value), kwargs
    c = TrainConfig(optimizer="muon", muon_lr=0.05, muon_momentum=0.9, muon_ns="polar-express",
                    muon_ns_steps=3)
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert TrainConfig().optimizer == "adamw" and TrainConfig().muon_lr is None


def test_cpu_muon_step_is_torch_muons_update_in_float32(monkeypatch):
    torch.manual_seed(0)
    shapes = [(8, 32), (8, 32), (64, 16), (16, 16)]  # two of one shape: the batched path
    mine = [nn.Parameter(torch.randn(s) * 0.1) for s in shapes]
    ref = [nn.Parameter(p.detach().clone()) for p in mine]
    kw = dict(lr=0.05, weight_decay=0.1, momentum=0.9)
    opt_mine, opt_ref = Muon(mine, **kw), torch.optim.Muon(ref, **kw)
    # torch's own step, with its bfloat16 orthogonalisation swapped for a float32 one
    monkeypatch.setattr(torch.optim._muon, "_zeropower_via_newtonschulz",
                        lambda g, co, steps, eps: _newton_schulz(g.float()[None], co, steps, eps)[0])
    zeros, zeros_like = [], torch.zeros_like

    def counted_zeros_like(*args, **kwargs):
        zeros.append(args[0].shape)
        return zeros_like(*args, **kwargs)

    for step in range(3):
        for params, opt in ((mine, opt_mine), (ref, opt_ref)):
            for p in params:
                p.grad = torch.sin(p.detach() * 7 + 1)  # the same gradient function for both
            with monkeypatch.context() as m:
                if opt is opt_mine:
                    m.setattr(torch, "zeros_like", counted_zeros_like)
                opt.step()
        if step == 0:
            first_buffers = [opt_mine.state[p]["momentum_buffer"] for p in mine]
    # each momentum buffer is allocated at the first step only, then updated in place, as torch's is
    assert zeros == [p.shape for p in mine]
    for a, b, buf in zip(mine, ref, first_buffers, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert not torch.equal(a, torch.zeros_like(a))
        assert opt_mine.state[a]["momentum_buffer"] is buf
        torch.testing.assert_close(buf, opt_ref.state[b]["momentum_buffer"], rtol=1e-5, atol=1e-6)
    # and the float32 iteration is torch's bfloat16 one up to bfloat16 rounding
    g = torch.randn(64, 16)
    monkeypatch.undo()
    want = torch.optim._muon._zeropower_via_newtonschulz(g, (3.4445, -4.775, 2.0315), 5, 1e-7).float()
    got = _newton_schulz(g[None], (3.4445, -4.775, 2.0315), 5, 1e-7)[0]
    assert (got - want).pow(2).mean().sqrt() < 0.1 * want.pow(2).mean().sqrt()


@pytest.mark.parametrize("schedule", ["jordan", "polar-express"])
def test_newton_schulz_gram_form_is_the_plain_iteration(schedule):
    """Wide matrices iterate on their Gram matrix (fewer FLOPs): the same result as updating X each step."""

    def plain(g, coefficients, norm_scale):  # Keller Jordan's form, in float64
        x = g if g.size(-2) <= g.size(-1) else g.mT
        x = x / (x.norm(dim=(-2, -1), keepdim=True) * norm_scale)
        for a, b, c in coefficients:
            gram = x @ x.mT
            x = a * x + (b * gram + c * gram @ gram) @ x
        return x if g.size(-2) <= g.size(-1) else x.mT

    torch.manual_seed(0)
    atol = 2e-6 if schedule == "jordan" else 5e-6  # Polar Express's larger coefficients amplify rounding
    for shape in [(3, 16, 64), (3, 64, 16), (2, 128, 512), (2, 24, 32), (1, 8, 8)]:  # Gram form: the first 3
        g = torch.randn(*shape, dtype=torch.float64)
        for steps in (0, 1, 5):
            coefficients, norm_scale = ns_coefficients(schedule, steps)
            got = _newton_schulz(g.float(), coefficients, steps, 1e-7, norm_scale)
            assert got.shape == g.shape
            torch.testing.assert_close(got.double(), plain(g, coefficients, norm_scale), rtol=0, atol=atol)
    # five steps leave every singular value of the result near 1 (Muon's orthogonalisation); the Polar
    # Express steps closer than Jordan's
    coefficients, norm_scale = ns_coefficients(schedule, 5)
    sv = torch.linalg.svdvals(_newton_schulz(torch.randn(1, 128, 512), coefficients, 5, 1e-7, norm_scale))
    low, high = (0.5, 1.3) if schedule == "jordan" else (0.8, 1.2)
    assert sv.min() > low and sv.max() < high


def test_ns_coefficients():
    assert ns_coefficients("jordan", 3) == ([JORDAN] * 3, 1.0)
    coefficients, norm_scale = ns_coefficients("polar-express", 10)
    assert norm_scale == 1.01 and len(coefficients) == 10
    a, b, c = POLAR_EXPRESS[0]
    assert coefficients[0] == pytest.approx((a / 1.01, b / 1.01**3, c / 1.01**5))
    assert coefficients[7:] == [POLAR_EXPRESS[-1]] * 3  # the last polynomial, unscaled, from the 8th step
    assert ns_coefficients("polar-express", 4)[0] == coefficients[:4]
    with pytest.raises(ValueError, match="must be one of 'jordan', 'polar-express', got 'pe'"):
        ns_coefficients("pe", 5)
    with pytest.raises(ValueError, match="2 coefficient triples for 3 Newton-Schulz steps"):
        _newton_schulz(torch.randn(1, 4, 8), coefficients[:2], 3, 1e-7)


def test_build_optimizer_passes_the_muon_options(tiny_gpt, char_corpus):
    tok = char_corpus[0]
    default = build_optimizer(tiny_gpt(tok), cfg(), "cpu").parts["muon"].param_groups[0]
    assert (default["momentum"], default["ns_schedule"], default["ns_steps"]) == (MUON_MOMENTUM, "jordan", 5)
    group = build_optimizer(tiny_gpt(tok), cfg(muon_momentum=0.9, muon_ns="polar-express", muon_ns_steps=3),
                            "cpu").parts["muon"].param_groups[0]
    assert (group["momentum"], group["ns_schedule"], group["ns_steps"]) == (0.9, "polar-express", 3)


def test_polar_express_muon_step_orthogonalises_with_its_coefficients():
    """One step from zero momentum: the update is the Polar Express iteration of the Nesterov gradient."""
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(16, 48) * 0.1)
    start = w.detach().clone()
    opt = Muon([w], lr=0.1, weight_decay=0.0, momentum=0.9, ns_steps=3, ns_schedule="polar-express",
               adjust_lr_fn="original")
    w.grad = torch.randn(16, 48)
    nesterov = w.grad * (1 - 0.9) * 0.9 + w.grad * (1 - 0.9)  # lerp(grad, buf, 0.9) with buf = 0.1 grad
    opt.step()
    coefficients, norm_scale = ns_coefficients("polar-express", 3)
    want = _newton_schulz(nesterov[None], coefficients, 3, 1e-7, norm_scale)[0]
    torch.testing.assert_close(start - w.detach(), 0.1 * want, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="got 'fast'"):
        Muon([w], ns_schedule="fast")
