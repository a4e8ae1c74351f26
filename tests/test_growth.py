"""Tests for TrainConfig.depth_schedule (growth.py): validation, identities, copies, training, resume."""

from __future__ import annotations

import pytest
import torch

from shakespeare_lm.growth import (
    Stacking,
    check_depth_schedule,
    depth_at,
    grow,
    make_identity,
    parse_depth_schedule,
    start,
)
from shakespeare_lm.model import BigramLanguageModel
from shakespeare_lm.optim import build_optimizer
from shakespeare_lm.training import TrainConfig, get_train_preset, train


def cfg(**overrides):
    """The "tiny" recipe, smaller still, with Muon and 1 block until step 4, then 2 (the tiny GPT's)."""
    base = dict(batch_size=4, max_iters=8, eval_interval=4, eval_iters=2, warmup_iters=2, device="cpu",
                optimizer="muon", depth_schedule=((0, 1), (4, 2)))
    return get_train_preset("tiny", **{**base, **overrides})


def _block_calls(model) -> list[int]:
    """Count the forward calls of each block (a list that the hooks fill in)."""
    calls = [0] * len(model.blocks)
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda m, args, out, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


def test_schedules_are_validated_and_json_lists_become_tuples():
    assert check_depth_schedule([[0, 2], [250, 4]], max_iters=360) == ((0, 2), (250, 4))
    c = cfg(depth_schedule=[[0, 1], [4, 2]])
    assert c.depth_schedule == ((0, 1), (4, 2))
    assert TrainConfig.from_dict(c.to_dict()) == c  # a checkpoint's JSON round trip
    assert TrainConfig().depth_schedule is None
    assert [depth_at(((0, 1), (3, 2), (5, 4)), s) for s in range(7)] == [1, 1, 1, 2, 2, 4, 4]
    bad = {
        ((1, 2), (5, 4)): "start at step 0",
        ((0, 0), (5, 4)): ">= 1 block",
        ((0, 2), (5, 2)): "must both increase",
        ((0, 2), (0, 4)): "must both increase",
        ((0, 2), (8, 4)): "past max_iters",
        ((0, 2.0), (5, 4)): "integer",
        ((0, True), (5, 4)): "integer",
        (): "start at step 0",
        "0:2": "pairs such as",
        7: "pairs such as",
    }
    for schedule, message in bad.items():
        with pytest.raises(ValueError, match=message) as e:
            cfg(depth_schedule=schedule)
        assert "\n" not in str(e.value)


def test_parse_depth_schedule():
    assert parse_depth_schedule("0:2,250:4") == ((0, 2), (250, 4))
    assert parse_depth_schedule("0:4") == ((0, 4),)
    for text in ("0-2", "0:2,", "a:b", "0:2:3", ""):
        with pytest.raises(ValueError, match="STEP:BLOCKS pairs"):
            parse_depth_schedule(text)


def test_blocks_not_grown_are_identities(tiny_gpt, char_corpus):
    tok, tr, _ = char_corpus
    model = tiny_gpt(tok)
    x = tr[:32].view(2, 16)
    with torch.no_grad():
        before = model(x)[0]
        start(model, ((0, 1), (4, 2)))
        whole = model(x)[0]
        first = model.embed(x)
        first = model.lm_head(model.ln_f(model.blocks[0](first)))
    torch.testing.assert_close(whole, first, rtol=0, atol=0)  # block 1 adds exactly nothing
    assert not torch.allclose(whole, before)  # ... which it did before
    assert model.blocks[1].ln1.weight.eq(1).all()  # only the output projections were touched
    make_identity(model.blocks[0])
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], model.lm_head(model.ln_f(model.embed(x))), rtol=0, atol=0)


def test_grow_copies_weights_and_optimizer_state(tiny_gpt, char_corpus):
    tok, tr, _ = char_corpus
    model = tiny_gpt(tok, n_layer=4)
    opt = build_optimizer(model, cfg())
    start(model, ((0, 2), (1, 4)))
    x, y = tr[:32].view(2, 16), tr[1:33].view(2, 16)
    with Stacking(model, ((0, 2), (1, 4)), 1, fresh=False).active():
        model(x, y)[1].backward()
    opt.step()
    assert all(p not in opt.state for p in model.blocks[2].parameters())  # no gradient: no state yet
    grow(model, opt, 2, 4)
    assert opt.state_dict()["state"]  # the copies are in the state a checkpoint saves
    for dst, src in ((2, 0), (3, 1)):  # stacked: blocks 0, 1, 0, 1
        for (name, a), b in zip(model.blocks[dst].named_parameters(), model.blocks[src].parameters(),
                                strict=True):
            assert torch.equal(a, b) and a is not b, name
            sa, sb = opt.state[a], opt.state[b]
            assert sa.keys() == sb.keys() and sa, name  # Muon's momentum or AdamW's moments and step
            for key in sa:
                assert torch.equal(sa[key], sb[key]) and sa[key] is not sb[key], (name, key)


def test_train_runs_only_the_grown_blocks_then_all(tiny_gpt, char_corpus):
    tok, tr, va = char_corpus
    model = tiny_gpt(tok)
    calls = _block_calls(model)
    seen = []

    def on_step(state):
        seen.append((state.step, list(calls), model.blocks[1].ffwd.net[2].weight.abs().sum().item()))

    history = train(model, tr, va, cfg(), callbacks=[type("C", (), {"on_step": staticmethod(on_step)})()])
    assert history.step == 8 and len(model.blocks) == 2  # the whole model comes back
    before, after = seen[3], seen[4]  # after the 4th step and the 5th (0-based step 4, the growth)
    assert before[1][1] == 0 and before[1][0] > 0  # steps 0-3 and the step-0 estimate ran block 0 only
    assert before[2] == 0  # ... and block 1 stayed an identity
    assert after[1][1] > 0 and after[2] > 0  # from step 4 on both blocks run and train
    assert not torch.equal(model.blocks[1].ffwd.net[2].weight, model.blocks[0].ffwd.net[2].weight)


def test_stopping_before_the_growth_leaves_the_trained_function(tiny_gpt, char_corpus):
    tok, tr, va = char_corpus
    model = tiny_gpt(tok)

    class Stop:
        def on_step(self, state):
            state.stop = state.step == 2

    train(model, tr, va, cfg(), callbacks=[Stop()])
    x = va[:32].view(2, 16)
    with torch.no_grad():
        shallow = model.lm_head(model.ln_f(model.blocks[0](model.embed(x))))
        torch.testing.assert_close(model(x)[0], shallow, rtol=0, atol=0)


@pytest.mark.parametrize("stop", [2, 4, 6])  # before the growth, at its step, after it
def test_resume_equals_uninterrupted(char_corpus, tiny_gpt, tmp_path, stop):
    tok, tr, va = char_corpus
    kw = dict(eval_interval=2, lr_decay_iters=8, checkpoint="last")
    full = tiny_gpt(tok, dropout=0.1)
    h_full = train(full, tr, va, cfg(**kw))

    out = tmp_path / "run"
    part = cfg(**kw, out_dir=str(out))
    h_part = train(tiny_gpt(tok, dropout=0.1), tr, va, part, tokenizer=tok, callbacks=[
        type("Stop", (), {"on_step": staticmethod(lambda s: setattr(s, "stop", s.step == stop))})()])
    assert h_part.step == stop
    resumed = tiny_gpt(tok, seed=99, dropout=0.1)
    h_res = train(resumed, tr, va, cfg(**kw, out_dir=str(out)), resume_from=out, tokenizer=tok)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert h_res.iter_losses == h_full.iter_losses


def test_resuming_under_another_schedule_is_a_one_line_error(char_corpus, tiny_gpt, tmp_path):
    tok, tr, va = char_corpus
    out = tmp_path / "run"
    train(tiny_gpt(tok), tr, va, cfg(max_iters=6, out_dir=str(out), checkpoint="last"), tokenizer=tok)
    before = (out / "checkpoint" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="block 1 of the model is already trained") as e:  # grown at step 4
        train(tiny_gpt(tok), tr, va, cfg(out_dir=str(out), depth_schedule=((0, 1), (7, 2))), resume_from=out)
    assert "\n" not in str(e.value)
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == before


def test_adamw_grows_too(tiny_gpt, char_corpus):
    tok, tr, va = char_corpus
    model = tiny_gpt(tok)
    history = train(model, tr, va, cfg(optimizer="adamw"))
    assert history.step == 8 and history.iter_losses[-1] < history.iter_losses[0]
    assert model.blocks[1].sa.proj.weight.abs().sum() > 0


def test_models_the_schedule_cannot_fit_are_one_line_errors(tiny_gpt, char_corpus):
    tok, tr, va = char_corpus
    cases = [(tiny_gpt(tok), cfg(depth_schedule=((0, 1), (4, 3))), "ends at 3 blocks but the model has 2"),
             (BigramLanguageModel(tok.vocab_size), cfg(), "needs a GPT")]
    for model, config, message in cases:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ValueError, match=message) as e:
            train(model, tr, va, config)
        assert "\n" not in str(e.value)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
