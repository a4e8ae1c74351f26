"""Tests for History and the callback dispatch: steps done, round trips through the files, hooks."""

from __future__ import annotations

import csv

from shakespeare_lm.history import History, TrainState, call_callbacks


def history() -> History:
    h = History(iter_losses=[4.0, 3.5, 3.0, 2.8, 2.7], stop_reason="interrupted")
    for step, tr, va in [(0, 4.2, 4.25), (3, 3.1, 3.3)]:
        h.records.append({"step": step, "train_loss": tr, "val_loss": va, "lr": 1e-3, "tokens_per_sec": 1.5,
                          "elapsed": 0.1 * step})
    return h


def test_step_counts_optimizer_steps_not_the_last_evaluation():
    h = history()
    assert h.step == 5 and h.steps == [0, 3]  # interrupted at step 5, last estimate at step 3
    assert History().step == 0


def test_columns_and_best():
    h = history()
    assert h.val_loss == [4.25, 3.3] and h.train_loss == [4.2, 3.1] and h.best_val_loss == 3.3
    assert History().best_val_loss is None and len(h) == 2


def test_round_trips_through_dict_and_files(tmp_path):
    h = history()
    assert History.from_dict(h.to_dict()) == h
    h.save(tmp_path)
    assert History.from_jsonl(tmp_path / "history.jsonl").records == h.records
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(History.FIELDS)
    assert [float(r["val_loss"]) for r in rows] == h.val_loss  # full precision
    assert (tmp_path / "iter_losses.json").read_text() == "[4.0, 3.5, 3.0, 2.8, 2.7]"


def test_call_callbacks_dispatches_hooks_and_plain_functions():
    seen = []

    class Both:
        def on_step(self, state):
            seen.append(("step", state.step))

        def on_eval(self, state):
            seen.append(("eval", state.step))

    def plain(state):
        seen.append(("plain", state.step))

    state = TrainState(config=None, model=None, optimizer=None, history=History(), step=7)
    for hook in ("on_step", "on_eval", "on_train_end"):
        call_callbacks([Both(), plain], hook, state)
    assert seen == [("step", 7), ("eval", 7), ("plain", 7)]
