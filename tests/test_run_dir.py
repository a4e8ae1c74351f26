"""Tests that training never loses a trained model: refusing to overwrite a run, doing nothing when a
resumed run is already done, keeping interrupted/ until it is superseded, and the run-directory lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from shakespeare_lm.checkpoint import read_meta
from shakespeare_lm.runlock import RunDirLockedError
from shakespeare_lm.training import RunDirExistsError, TrainConfig, train


def cfg(out, **overrides):
    base = dict(batch_size=4, block_size=16, max_iters=4, eval_interval=2, eval_iters=1, learning_rate=3e-3,
                warmup_iters=1, dtype="float32", compile="off", device="cpu", progress=False,
                out_dir=str(out))
    return TrainConfig(**{**base, **overrides})


class OnStep:
    def __init__(self, fn):
        self.on_step = fn


def interrupt_at(step):
    def fn(state):
        if state.step == step:
            raise KeyboardInterrupt
    return OnStep(fn)


def snapshot(out):
    """Every file under out with its bytes, to prove nothing changed."""
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_fresh_run_into_a_trained_run_dir_is_refused_unless_overwrite(char_corpus, tiny_gpt, tmp_path):
    tok, tr, va = char_corpus
    out = tmp_path / "run"
    train(tiny_gpt(tok), tr, va, cfg(out), tokenizer=tok)
    before = snapshot(out)
    with pytest.raises(RunDirExistsError, match=r"already holds a trained model \(checkpoint/\); continue it "
                                                r"with resume_from=.* or replace it with overwrite=True"):
        train(tiny_gpt(tok, seed=1), tr, va, cfg(out, max_iters=2), tokenizer=tok)
    after = snapshot(out)
    assert before.keys() - after.keys() == set() and all(after[k] == v for k, v in before.items()
                                                          if k.name != ".lock")
    history = train(tiny_gpt(tok, seed=1), tr, va, cfg(out, max_iters=2), tokenizer=tok, overwrite=True)
    assert history.stop_reason == "max_iters" and read_meta(out)["step"] == 2
    assert issubclass(RunDirExistsError, FileExistsError)  # the CLI's OSError handler prints one line


def test_overwrite_drops_the_old_runs_interrupted_checkpoint(char_corpus, tiny_gpt, tmp_path):
    tok, tr, va = char_corpus
    out = tmp_path / "run"
    train(tiny_gpt(tok), tr, va, cfg(out, max_iters=9), callbacks=[interrupt_at(7)], tokenizer=tok)
    assert read_meta(out / "interrupted")["step"] == 7
    with pytest.raises(RunDirExistsError, match=r"\(checkpoint/\)"):
        train(tiny_gpt(tok), tr, va, cfg(out, max_iters=2), tokenizer=tok)
    train(tiny_gpt(tok), tr, va, cfg(out, max_iters=2), tokenizer=tok, overwrite=True)
    assert not (out / "interrupted").exists()  # else the next --resume would pick the old run's step 7


def test_resume_at_or_past_max_iters_trains_nothing_and_deletes_nothing(char_corpus, tiny_gpt, tmp_path):
    tok, tr, va = char_corpus
    out = tmp_path / "run"
    # "best" policy: Ctrl-C at step 5 writes interrupted/ (step 5) next to checkpoint/ (the best, step <= 4)
    train(tiny_gpt(tok), tr, va, cfg(out, max_iters=8), callbacks=[interrupt_at(5)], tokenizer=tok)
    assert read_meta(out / "interrupted")["step"] == 5
    before = snapshot(out)
    steps = []
    for max_iters in (5, 3):
        history = train(tiny_gpt(tok, seed=3), tr, va, cfg(out, max_iters=max_iters),
                        callbacks=[OnStep(lambda s: steps.append(s.step))], resume_from=out, tokenizer=tok)
        assert history.stop_reason == "already_done" and history.step == 5 and steps == []
        assert snapshot(out).keys() == before.keys()
        assert all(snapshot(out)[k] == v for k, v in before.items() if k.name != ".lock")


def test_interrupted_is_kept_until_checkpoint_catches_up(char_corpus, tiny_gpt, tmp_path):
    tok, tr, va = char_corpus
    out = tmp_path / "run"
    train(tiny_gpt(tok), tr, va, cfg(out, max_iters=9), callbacks=[interrupt_at(7)], tokenizer=tok)
    # the resumed run saves no checkpoint: interrupted/ (step 7) is still the newest model
    history = train(tiny_gpt(tok), tr, va, cfg(out, max_iters=9, checkpoint="never"), resume_from=out,
                    tokenizer=tok)
    assert history.stop_reason == "max_iters" and read_meta(out / "interrupted")["step"] == 7
    history = train(tiny_gpt(tok), tr, va, cfg(out, max_iters=9, checkpoint="last"), resume_from=out,
                    tokenizer=tok)
    assert read_meta(out / "checkpoint")["step"] == 9 and not (out / "interrupted").exists()


def test_a_second_training_into_the_same_dir_is_refused_and_the_lock_is_released(char_corpus, tiny_gpt,
                                                                                  tmp_path):
    tok, tr, va = char_corpus
    out = tmp_path / "run"
    refused = []

    def second_run(state):
        if state.step == 1:
            with pytest.raises(RunDirLockedError, match="another training is writing to") as e:
                train(tiny_gpt(tok), tr, va, cfg(out, max_iters=2), tokenizer=tok, overwrite=True)
            refused.append(str(e.value))

    train(tiny_gpt(tok), tr, va, cfg(out), callbacks=[OnStep(second_run)], tokenizer=tok)
    assert len(refused) == 1

    def diverge(state):
        with torch.no_grad():
            state.model.lm_head.weight.fill_(float("nan"))

    with pytest.raises(FloatingPointError):
        train(tiny_gpt(tok), tr, va, cfg(out, max_iters=6), callbacks=[OnStep(diverge)], resume_from=out,
              tokenizer=tok)
    # released on the error: the same process can take the lock again
    assert train(tiny_gpt(tok), tr, va, cfg(out), resume_from=out).stop_reason == "already_done"


HOLDER = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)
    from shakespeare_lm import CharTokenizer, GPT, get_preset, train_val_split
    from shakespeare_lm.training import TrainConfig, train

    text, out, ready = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
    tok = CharTokenizer.from_text(text)
    tr, va = train_val_split(torch.tensor(tok.encode(text)))

    class Hold:
        def on_step(self, state):
            open(ready, "w").close()
            time.sleep(120)  # holding the lock until killed

    config = TrainConfig(batch_size=4, block_size=16, max_iters=4, eval_interval=2, eval_iters=1,
                         dtype="float32", compile="off", device="cpu", progress=False, out_dir=out)
    model = GPT(get_preset("tiny", vocab_size=tok.vocab_size))
    train(model, tr, va, config, callbacks=[Hold()], tokenizer=tok)
""")


@pytest.mark.slow
def test_lock_between_processes_and_after_sigkill(char_corpus, tiny_gpt, tmp_path, tiny_text):
    tok, tr, va = char_corpus
    out, ready = tmp_path / "run", tmp_path / "ready"
    (tmp_path / "corpus.txt").write_text(tiny_text, encoding="utf-8")
    (tmp_path / "holder.py").write_text(HOLDER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(tmp_path / "corpus.txt"),
                             str(out), str(ready)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first training never started"
            time.sleep(0.1)
        t = time.perf_counter()
        with pytest.raises(RunDirLockedError, match=f"another training is writing to {out}"):
            train(tiny_gpt(tok), tr, va, cfg(out), resume_from=out, tokenizer=tok)
        assert time.perf_counter() - t < 5  # refused at once, not after training
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert (out / ".lock").exists()  # the file stays; the OS dropped the lock with the process
    history = train(tiny_gpt(tok), tr, va, cfg(out), resume_from=out, tokenizer=tok)
    assert history.stop_reason == "max_iters" and read_meta(out)["step"] == 4
