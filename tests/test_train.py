"""Tests for the training loop: config, accumulation, divergence, interrupt, resume, time budget, compile."""

from __future__ import annotations

import csv
import dataclasses
import time

import pytest
import torch

from shakespeare_lm.checkpoint import load_checkpoint, read_meta
from shakespeare_lm.model import BigramLanguageModel
from shakespeare_lm.optim import param_groups
from shakespeare_lm.precision import resolve_dtype
from shakespeare_lm.training import (
    TRAIN_PRESETS,
    History,
    TrainConfig,
    TrainingDivergedError,
    get_lr,
    get_train_preset,
    train,
)


def cfg(**overrides):
    base = dict(batch_size=4, block_size=16, max_iters=6, eval_interval=3, eval_iters=2, learning_rate=3e-3,
                warmup_iters=2, dtype="float32", compile="off", device="cpu", progress=False)
    return TrainConfig(**{**base, **overrides})


def test_train_reduces_loss(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    model = tiny_gpt(tok)
    history = train(model, tr, va, get_train_preset("tiny", max_iters=40, device="cpu"))
    assert history.steps[0] == 0 and history.steps[-1] == 40
    assert history.val_loss[-1] < history.val_loss[0] - 0.5
    assert len(history.iter_losses) == 40
    assert history.stop_reason == "max_iters"
    assert not model.training  # left ready for generation


def test_train_works_for_bigram(char_corpus):
    tok, tr, va = char_corpus
    torch.manual_seed(0)
    model = BigramLanguageModel(tok.vocab_size)
    history = train(model, tr, va, cfg(max_iters=20, eval_interval=10, learning_rate=1e-1))
    assert history.val_loss[-1] < history.val_loss[0]


def test_config_validation_is_actionable():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="dtype must be one of"):
        TrainConfig(dtype="fp8")
    with pytest.raises(ValueError, match="min_lr must be between 0 and learning_rate"):
        TrainConfig(learning_rate=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        TrainConfig(checkpoint="sometimes")
    with pytest.raises(ValueError, match="float16' needs a CUDA GPU"):
        resolve_dtype("float16", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown training preset"):
        get_train_preset("huge")
    assert set(TRAIN_PRESETS) >= {"tiny", "cpu-small", "baby-gpt"}
    c = TrainConfig(betas=[0.9, 0.95])
    assert c.betas == (0.9, 0.95) and TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="patience must be a positive integer"):
        TrainConfig(patience=0)
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\): batchsize, lr; valid fields: "):
        TrainConfig.from_dict({"batchsize": 3, "lr": 1.0})


def test_every_field_and_argument_is_documented_where_help_looks():
    doc = TrainConfig.__doc__
    for f in dataclasses.fields(TrainConfig):
        assert f"\n      {f.name} " in doc, f"TrainConfig.{f.name} is not documented in its docstring"
    for arg in ("callbacks", "resume_from", "tokenizer", "meta", "overwrite"):
        assert f"\n    {arg}: " in train.__doc__, arg


def test_block_size_larger_than_model_is_refused(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    with pytest.raises(ValueError, match="exceeds the model's block_size"):
        train(tiny_gpt(tok), tr, va, cfg(block_size=32))


def test_embedding_lr_mult_gets_its_own_group(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    model = tiny_gpt(tok)
    groups = param_groups(model, 0.1, embedding_lr_mult=5.0)
    assert [(g["lr_mult"], g["weight_decay"]) for g in groups] == [(1.0, 0.1), (5.0, 0.1), (1.0, 0.0)]
    emb = {id(p) for p in groups[1]["params"]}
    assert emb == {id(model.token_embedding_table.weight), id(model.position_embedding_table.weight)}
    assert id(model.lm_head.weight) in emb  # tied to the token embedding
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))

    seen = []

    class Record:
        def on_step(self, state):
            seen.append((state.lr, [g["lr"] for g in state.optimizer.param_groups]))

    train(model, tr, va, cfg(max_iters=4, embedding_lr_mult=5.0), callbacks=[Record()])
    assert len(seen) == 4
    for lr, (matrices, embeddings, no_decay) in seen:
        assert matrices == no_decay == lr and embeddings == pytest.approx(5 * lr)
    with pytest.raises(ValueError, match="embedding_lr_mult"):
        cfg(embedding_lr_mult=0)


def test_grad_accumulation_matches_bigger_batch(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    a, b = tiny_gpt(tok), tiny_gpt(tok)
    train(a, tr, va, cfg(batch_size=4, grad_accum_steps=2, max_iters=2, grad_clip=None))
    train(b, tr, va, cfg(batch_size=8, grad_accum_steps=1, max_iters=2, grad_clip=None))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5, msg=name)


def test_nan_loss_raises_naming_step_and_keeps_checkpoint(char_corpus, tiny_gpt, tmp_path):
    tok, tr, va = char_corpus
    model = tiny_gpt(tok)
    out = tmp_path / "run"
    train(model, tr, va, cfg(out_dir=str(out), checkpoint="last", max_iters=3), tokenizer=tok)
    good = read_meta(out)
    assert good["step"] == 3

    def poison(state):
        if state.step == 4:
            with torch.no_grad():
                state.model.lm_head.weight.fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match="at step 5"):
        train(model, tr, va, cfg(out_dir=str(out), checkpoint="last", max_iters=9),
              callbacks=[_OnStep(poison)], resume_from=out, tokenizer=tok)
    after = read_meta(out)
    assert after["step"] == 3 and after["files"] == good["files"]  # untouched
    loaded, _, _ = load_checkpoint(out)
    assert all(torch.isfinite(p).all() for p in loaded.parameters())


class _OnStep:
    def __init__(self, fn):
        self.on_step = fn


def test_keyboard_interrupt_saves_and_returns_history(char_corpus, tiny_gpt, tmp_path):
    tok, tr, va = char_corpus
    out = tmp_path / "run"

    def interrupt(state):
        if state.step == 4:
            raise KeyboardInterrupt

    history = train(tiny_gpt(tok), tr, va, cfg(out_dir=str(out), max_iters=20),
                    callbacks=[_OnStep(interrupt)], tokenizer=tok)
    assert history.stop_reason == "interrupted" and len(history.iter_losses) == 4
    assert history.step == 4 and history.steps[-1] == 3  # steps done, not the last estimate's step
    assert read_meta(out / "interrupted")["step"] == 4  # "best" policy: the best weights stay in checkpoint/
    assert read_meta(out / "checkpoint")["step"] == 3
    assert History.from_jsonl(out / "history.jsonl").steps == history.steps
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(History.FIELDS)
    assert [int(r["step"]) for r in rows] == history.steps
    assert [float(r["val_loss"]) for r in rows] == history.val_loss  # full precision, not rounded


def test_callbacks_plain_callable_and_stop(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    seen = []

    def on_eval(state):
        seen.append(state.step)
        if state.step >= 3:
            state.stop = True

    history = train(tiny_gpt(tok), tr, va, cfg(max_iters=30), callbacks=[on_eval])
    assert seen == [0, 3] and history.stop_reason == "callback"


def test_patience_stops_early(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    # with lr ~ 0 the val loss cannot keep improving
    config = cfg(max_iters=30, eval_interval=1, learning_rate=1e-12, warmup_iters=0, patience=2)
    history = train(tiny_gpt(tok), tr, va, config)
    assert history.stop_reason == "patience" and history.steps[-1] < 30


def test_resume_equals_uninterrupted(char_corpus, tiny_gpt, tmp_path):
    tok, tr, va = char_corpus
    kw = dict(max_iters=8, eval_interval=4, lr_decay_iters=8, checkpoint="last")
    # dropout > 0 so the global RNG matters too
    full = tiny_gpt(tok, dropout=0.1)
    h_full = train(full, tr, va, cfg(**kw))

    first = tiny_gpt(tok, dropout=0.1)
    out = tmp_path / "run"
    train(first, tr, va, cfg(**{**kw, "max_iters": 4}, out_dir=str(out)), tokenizer=tok)
    torch.manual_seed(123)  # disturb global RNG: resume must restore it
    resumed = tiny_gpt(tok, seed=99, dropout=0.1)  # different init: weights come from the checkpoint
    h_res = train(resumed, tr, va, cfg(**kw, out_dir=str(out)), resume_from=out, tokenizer=tok)

    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert h_res.steps == h_full.steps
    assert h_res.iter_losses == pytest.approx(h_full.iter_losses)


def test_max_time_stops(char_corpus, tiny_gpt):
    tok, tr, va = char_corpus
    history = train(tiny_gpt(tok), tr, va, cfg(max_iters=100_000, eval_interval=1000, max_time=0.5))
    assert history.stop_reason == "max_time" and history.steps[-1] < 100_000


class FakeClock:
    """time.perf_counter for train(): every optimizer step takes one second (advanced in on_step)."""

    def __init__(self, monkeypatch, interrupt_at=None):
        self.now, self.lrs, self.interrupt_at = 0.0, [], interrupt_at
        monkeypatch.setattr(time, "perf_counter", lambda: self.now)

    def on_step(self, state):
        self.now += 1.0
        self.lrs.append(state.lr)
        if state.step == self.interrupt_at:
            raise KeyboardInterrupt


def test_time_budget_fits_the_schedule_and_resumes(char_corpus, tiny_gpt, tmp_path, monkeypatch):
    tok, tr, va = char_corpus
    config = cfg(max_iters=1000, max_time=50, warmup_iters=10, eval_interval=10, eval_iters=1,
                 learning_rate=1e-2, min_lr=1e-3, checkpoint="last")
    clock = FakeClock(monkeypatch)
    history = train(tiny_gpt(tok), tr, va, config, callbacks=[clock])
    # timed from step 1 to 4 (5% of the budget, inside the warmup): 1 s a step, 46 s left -> end at step 50
    assert history.stop_reason == "max_time" and history.step == 50 and history.steps[-1] == 50
    fitted = dataclasses.replace(config, lr_decay_iters=50)
    assert clock.lrs == pytest.approx([get_lr(s, fitted) for s in range(50)])
    assert clock.lrs[-1] < 1.02e-3 and history.lr[-1] == pytest.approx(clock.lrs[-1])  # decayed to min_lr

    unfitted = FakeClock(monkeypatch)
    config_off = dataclasses.replace(config, fit_schedule_to_time=False)
    train(tiny_gpt(tok), tr, va, config_off, callbacks=[unfitted])
    assert len(unfitted.lrs) == 51 and unfitted.lrs[-1] > 9e-3  # cut off near the peak, as before

    out = tmp_path / "run"
    first = FakeClock(monkeypatch, interrupt_at=20)
    h = train(tiny_gpt(tok), tr, va, dataclasses.replace(config, out_dir=str(out)), callbacks=[first],
              tokenizer=tok)
    assert h.stop_reason == "interrupted" and read_meta(out)["extra"]["time_fit"]["end"] == 50
    second = FakeClock(monkeypatch)
    second.now = 1000.0
    h = train(tiny_gpt(tok, seed=5), tr, va, dataclasses.replace(config, out_dir=str(out)),
              callbacks=[second], resume_from=out, tokenizer=tok)
    assert h.stop_reason == "max_time" and h.step == 50
    assert first.lrs + second.lrs == pytest.approx(clock.lrs)  # the resumed run keeps the fitted schedule
    assert h.iter_losses == pytest.approx(history.iter_losses)


def test_compile_is_decided_before_the_first_step(char_corpus, tiny_gpt, monkeypatch, tmp_path):
    tok, tr, va = char_corpus
    steps = []

    class FailsToTrain(torch.nn.Module):
        """A compiled model whose eval graph works but whose training graph does not."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, idx, targets=None):
            if self.model.training:
                raise RuntimeError("inductor exploded")
            return self.model(idx, targets)

    monkeypatch.setattr(torch, "compile", FailsToTrain)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="inductor exploded"):
        train(tiny_gpt(tok), tr, va, cfg(compile="on", out_dir=str(out)),
              callbacks=[_OnStep(lambda s: steps.append(s.step))])
    assert steps == [] and not (out / "checkpoint").exists()  # failed before the step-0 estimate saved

    # the trial step leaves no trace: same losses as eager, dropout's RNG and gradients untouched
    monkeypatch.setattr(torch, "compile", lambda model: model)
    eager = train(tiny_gpt(tok, dropout=0.1), tr, va, cfg(compile="off"))
    trial = train(tiny_gpt(tok, dropout=0.1), tr, va, cfg(compile="on"))
    assert trial.iter_losses == eager.iter_losses and trial.val_loss == eager.val_loss
