"""Tests for tuning.sweep and `python -m shakespeare_lm sweep`: rows, resume, divergence, bad spaces."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import torch

from shakespeare_lm.model import GPT
from shakespeare_lm.model_config import GPTConfig
from shakespeare_lm.train_config import TrainConfig
from shakespeare_lm.tuning import RESULTS_FILE, non_embedding_parameters, sweep
from shakespeare_lm.tuning_space import log_uniform, random_points

TOKENS = 4 * 8 * 8  # 8 steps of 4 sequences of 8 tokens


@pytest.fixture
def base(char_corpus):
    tok, train_data, val_data = char_corpus
    model = GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    config = TrainConfig(batch_size=4, block_size=8, eval_interval=4, eval_iters=2, warmup_iters=2,
                         learning_rate=3e-3, dtype="float32", compile="off", device="cpu")
    return train_data, val_data, model, config


class Counter:
    """Records the params of every training that ends (a callback of train)."""

    def __init__(self):
        self.trained = []

    def on_train_end(self, state):
        self.trained.append((state.config.learning_rate, state.config.batch_size))


def rows_on_disk(out) -> list[dict]:
    return [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]


def test_a_grid_writes_one_row_per_run(tmp_path, base):
    space = {"learning_rate": [1e-3, 3e-3], "n_layer": [1, 2]}
    result = sweep(space, *base, tokens=TOKENS, out_dir=tmp_path, progress=False)
    on_disk = rows_on_disk(tmp_path)
    assert len(result) == len(on_disk) == 4
    assert [r["params"] for r in on_disk] == [{"learning_rate": lr, "n_layer": n} for lr in (1e-3, 3e-3)
                                              for n in (1, 2)]
    for row in on_disk:
        assert row["status"] == "ok" and math.isfinite(row["val_loss"])
        assert row["steps"] == 8 and row["tokens"] == TOKENS and row["seconds"] > 0
        assert row["curve"][0][0] == 0 and row["curve"][-1][0] == 8 and len(row["losses"]) == 8
    deeper = {r["params"]["n_layer"]: r["n_params_non_embedding"] for r in on_disk}
    assert deeper[2] > deeper[1]
    assert result.best == min(result.rows, key=lambda r: r["val_loss"])
    assert result.column("n_layer") == [1, 2, 1, 2]
    assert "learning_rate" in result.table() and len(result.table().splitlines()) == 5


def test_an_interrupted_sweep_resumes_without_retraining(tmp_path, base):
    space = {"learning_rate": [1e-3, 2e-3, 3e-3], "batch_size": [2, 4]}
    first = Counter()
    sweep(space, *base, tokens=TOKENS, out_dir=tmp_path, max_runs=2, callbacks=[first], progress=False)
    assert len(first.trained) == 2 and len(rows_on_disk(tmp_path)) == 2

    class Crash(Counter):
        def on_step(self, state):
            if len(self.trained) == 1:
                raise RuntimeError("power cut")

    crash = Crash()
    with pytest.raises(RuntimeError, match="power cut"):
        sweep(space, *base, tokens=TOKENS, out_dir=tmp_path, callbacks=[crash], progress=False)
    assert len(rows_on_disk(tmp_path)) == 3  # the run that crashed is not recorded

    again = Counter()
    result = sweep(space, *base, tokens=TOKENS, out_dir=tmp_path, callbacks=[again], progress=False)
    assert again.trained == [(2e-3, 4), (3e-3, 2), (3e-3, 4)]  # only the points never recorded
    assert len(result) == len(rows_on_disk(tmp_path)) == 6
    assert sorted(json.dumps(r["params"], sort_keys=True) for r in result) == sorted(
        json.dumps({"learning_rate": lr, "batch_size": b}, sort_keys=True)
        for lr in (1e-3, 2e-3, 3e-3) for b in (2, 4))

    done = Counter()
    assert len(sweep(space, *base, tokens=TOKENS, out_dir=tmp_path, callbacks=[done], progress=False)) == 6
    assert done.trained == []


def test_ctrl_c_stops_the_sweep_and_keeps_the_finished_runs(tmp_path, base):
    class CtrlC:
        calls = 0

        def on_step(self, state):
            CtrlC.calls += 1
            if CtrlC.calls == 9:  # in the second run (8 steps each)
                raise KeyboardInterrupt

    result = sweep({"learning_rate": [1e-3, 3e-3]}, *base, tokens=TOKENS, out_dir=tmp_path,
                   callbacks=[CtrlC()], progress=False)
    assert result.interrupted and len(result) == 1 and len(rows_on_disk(tmp_path)) == 1


def test_a_diverged_run_is_recorded_not_raised(tmp_path, base):
    def poison(state):  # the model of the 1e-2 run gets NaN weights, so its next loss is NaN
        if state.config.learning_rate == 1e-2 and state.step == 2:
            with torch.no_grad():
                for p in state.model.parameters():
                    p.fill_(math.nan)

    class Poison:
        on_step = staticmethod(poison)

    result = sweep({"learning_rate": [1e-2, 3e-3]}, *base, tokens=TOKENS, out_dir=tmp_path,
                   callbacks=[Poison()], progress=False)
    diverged, ok = result.rows
    assert diverged["status"] == "diverged" and diverged["val_loss"] is None and diverged["steps"] == 2
    assert [s for s, _ in diverged["losses"]] == [1, 2]  # its curve up to the last finite loss
    assert ok["status"] == "ok" and result.best is ok
    assert rows_on_disk(tmp_path)[0]["status"] == "diverged"


def test_a_run_that_ends_worse_than_it_started_is_diverged(base):
    result = sweep({"learning_rate": [3e-3, 10.0]}, *base, tokens=TOKENS, progress=False)
    ok, blown_up = result.rows
    assert ok["status"] == "ok" and ok["val_loss"] < ok["curve"][0][2]
    assert blown_up["status"] == "diverged" and blown_up["val_loss"] > blown_up["curve"][0][2]
    assert result.best is ok


def test_a_list_of_points_is_trained_as_given(base):
    shapes = [{"n_layer": 2, "n_embd": 16}, {"n_layer": 1, "n_embd": 32, "n_head": 4}]
    result = sweep(shapes, *base, tokens=TOKENS, progress=False)
    assert [r["params"] for r in result] == shapes
    assert result.rows[1]["n_params_non_embedding"] > result.rows[0]["n_params_non_embedding"]
    assert "n_head" in result.table() and result.column("n_head") == [None, 4]


def test_a_pruner_stops_a_run_that_falls_behind(base):
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    result = sweep({"learning_rate": [3e-3, 1e-6]}, *base, tokens=TOKENS, pruner=pruner, progress=False)
    good, bad = result.rows
    assert good["status"] == "ok" and bad["status"] == "pruned" and bad["val_loss"] is None
    assert bad["steps"] == 4 and bad["stop_reason"] == "callback"  # stopped at the first estimate


def test_random_and_tpe_search_draw_from_the_ranges(base):
    space = {"learning_rate": log_uniform(1e-4, 1e-2), "n_embd": [16, 32]}
    assert random_points(space, 3, seed=1) == random_points(space, 3, seed=1)
    for method in ("random", "tpe"):
        result = sweep(space, *base, tokens=TOKENS, method=method, n_trials=3, seed=1, progress=False)
        assert len(result) == 3
        assert all(1e-4 <= lr <= 1e-2 for lr in result.column("learning_rate"))
        assert set(result.column("n_embd")) <= {16, 32}


def test_a_sweep_prints_no_optuna_log_lines(base, capfd):
    sweep({"learning_rate": log_uniform(1e-4, 1e-2)}, *base, tokens=TOKENS, method="random", n_trials=1,
          progress=False)
    assert "study" not in capfd.readouterr().err  # Optuna logs "A new study created ..." at INFO


def test_flops_budget_gives_smaller_models_more_tokens(base):
    result = sweep({"n_embd": [16, 32]}, *base, flops=6 * 20_000 * TOKENS, progress=False)
    small, large = result.rows
    assert small["tokens"] > large["tokens"]
    for row in result:
        expected = 6 * 20_000 * TOKENS / (6 * row["n_params_non_embedding"])
        assert abs(row["tokens"] - expected) <= 32 / 2  # rounded to whole steps of 32 tokens


def test_a_time_budget_ends_each_run_when_its_seconds_are_spent(base):
    result = sweep({"learning_rate": [3e-3]}, *base, seconds=0.5, progress=False)
    row = result.rows[0]
    assert row["status"] == "ok" and row["stop_reason"] == "max_time"
    assert row["steps"] >= 1 and row["tokens"] == row["steps"] * 32 and row["seconds"] < 5


def test_non_embedding_parameters_leave_out_the_embedding_tables():
    model = GPT(GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=16))
    total = sum(p.numel() for p in model.parameters())  # the tied lm_head is counted once
    assert non_embedding_parameters(model) == total - 65 * 16 - 8 * 16


@pytest.mark.parametrize("space, kwargs, message", [
    ({"n_layers": [1, 2]}, {}, "unknown field 'n_layers'"),
    ({"learning_rate": []}, {}, "learning_rate has no values"),
    ({"learning_rate": "3e-3"}, {}, "needs a list of values"),
    ({"n_layer": [1, 2.5]}, {}, "n_layer values must be an integer, got 2.5"),
    ({"learning_rate": ["fast"]}, {}, "learning_rate values must be a number"),
    ({"n_head": [3]}, {}, "n_head=3 is not a valid configuration: n_embd (16) must be divisible"),
    ({"learning_rate": [-1.0]}, {}, "learning_rate must be > 0"),
    ({"max_iters": [10]}, {}, "max_iters cannot be swept: the budget sets it"),
    ({"learning_rate": log_uniform(1e-4, 1e-2)}, {}, "a grid needs a list of values"),
    ({}, {}, "search space must be a non-empty dict"),
    ([{"n_layer": 1}, {"n_layr": 2}], {}, "unknown field 'n_layr'"),
    ([{"n_layer": 1}], {"method": "random", "n_trials": 2}, "a list of points is run as given"),
    ({"learning_rate": [1e-3]}, {"seconds": 5}, "exactly one budget"),
    ({"learning_rate": [1e-3]}, {"tokens": None}, "exactly one budget"),
    ({"learning_rate": [1e-3]}, {"tokens": -5}, "tokens= must be a positive number"),
    ({"learning_rate": [1e-3]}, {"method": "bayes"}, "method must be one of"),
    ({"learning_rate": [1e-3]}, {"method": "random"}, "needs n_trials"),
    ({"learning_rate": [1e-3]}, {"n_trials": 3}, "n_trials is for method='random'"),
])
def test_bad_search_spaces_are_one_line_errors_and_write_nothing(tmp_path, base, space, kwargs, message):
    kwargs = {"tokens": TOKENS, **kwargs}
    with pytest.raises(ValueError) as e:
        sweep(space, *base, out_dir=tmp_path / "sweep", progress=False, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "sweep").exists()


def test_resuming_with_another_setup_is_refused(tmp_path, base):
    sweep({"learning_rate": [1e-3]}, *base, tokens=TOKENS, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"another setup \(budget differ\)"):
        sweep({"learning_rate": [1e-3]}, *base, tokens=2 * TOKENS, out_dir=tmp_path, progress=False)
    assert len(rows_on_disk(tmp_path)) == 1


@pytest.fixture
def corpus_file(tmp_path, tiny_text):
    path = tmp_path / "small.txt"
    path.write_text(tiny_text, encoding="utf-8")
    return path


SMALL = ["--preset", "tiny", "--set", "eval_iters=2", "--set", "n_embd=16", "--set", "block_size=8",
         "--set", "batch_size=4", "--no-progress", "--set", "device=cpu"]


def test_cli_sweep_writes_the_results_and_resumes(tmp_path, corpus_file, cli_call):
    out = tmp_path / "sweep"
    argv = ["sweep", *SMALL, "--data", corpus_file, "--grid", "learning_rate=1e-3,3e-3",
            "--grid", "n_layer=1,2", "--tokens", TOKENS, "--out", out]
    rc, stdout, _ = cli_call(argv)
    assert rc == 0 and "4 runs recorded" in stdout and "best: learning_rate=" in stdout
    rows = rows_on_disk(out)
    assert [r["params"] for r in rows][-1] == {"learning_rate": 3e-3, "n_layer": 2}
    assert all(r["tokens"] == TOKENS for r in rows)
    rc, stdout, _ = cli_call([*argv, "--grid", "dropout=0.0"])  # the same points plus a field: all new
    assert rc == 0 and "8 runs recorded" in stdout
    rc, stdout, _ = cli_call(argv)  # nothing new to train
    assert rc == 0 and "8 runs recorded" in stdout and len(rows_on_disk(out)) == 8


@pytest.mark.parametrize("args, message", [
    (["--grid", "learning_rat=1e-3"], "unknown field 'learning_rat'"),
    (["--grid", "learning_rate=fast"], "learning_rate values must be a number, got 'fast'"),
    (["--grid", "learning_rate"], "--grid expects NAME=VALUES"),
    (["--grid", "n_layer=1", "--grid", "n_layer=2"], "n_layer is given twice"),
    (["--grid", "n_head=3"], "not a valid configuration"),
    (["--log-uniform", "learning_rate=1e-3:1e-2"], "a range needs random search: add --trials N"),
    (["--log-uniform", "learning_rate=0:1e-2", "--trials", "2"], "0 < LOW < HIGH"),
    (["--grid", "n_layer=1", "--seconds", "5"], "not allowed with argument --tokens"),
    (["--set", "max_iters=5", "--grid", "n_layer=1"], "--set max_iters: the budget sets it"),
    ([], "nothing to sweep"),
])
def test_cli_sweep_refuses_bad_input_in_one_line(tmp_path, corpus_file, cli_call, one_error_line, args,
                                                  message):
    out = tmp_path / "sweep"
    rc, _, err = cli_call(["sweep", *SMALL, "--data", corpus_file, "--tokens", TOKENS, "--out", out, *args])
    assert rc == 2 and message in one_error_line(err)
    assert not out.exists()
