"""Tests for `python -m shakespeare_lm`: train -> generate -> evaluate, resume, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from shakespeare_lm import cli
from shakespeare_lm.__main__ import main
from shakespeare_lm.bundled import PRETRAINED_MODELS
from shakespeare_lm.checkpoint import read_meta
from shakespeare_lm.model import GPT, PRESETS
from shakespeare_lm.model_config import ACTIVATIONS, POS_ENCODINGS
from shakespeare_lm.precision import DTYPES
from shakespeare_lm.tokenizer import TOKENIZERS
from shakespeare_lm.train_config import MUON_NS, OPTIMIZERS
from shakespeare_lm.training import CHECKPOINT_MODES, COMPILE_MODES, LR_SCHEDULES, TRAIN_PRESETS


@pytest.fixture
def corpus_file(tmp_path, tiny_text):
    path = tmp_path / "small.txt"
    path.write_text(tiny_text, encoding="utf-8")
    return path


@pytest.mark.slow
def test_train_generate_evaluate(tmp_path, corpus_file, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--preset", "tiny", "--out", str(run), "--data", str(corpus_file),
               "--max-iters", "12", "--eval-interval", "6", "--no-progress", "--device", "cpu",
               "--final-eval"])
    out = capsys.readouterr().out
    assert rc == 0 and "done (max_iters) at step 12" in out and "full val split" in out
    meta = read_meta(run)
    assert meta["extra"]["data"] == str(corpus_file.resolve()) and meta["train_config"]["max_iters"] == 12
    assert (run / "history.csv").is_file() and (run / "history.jsonl").is_file()

    assert main(["generate", "--checkpoint", str(run), "--prompt", "All:", "--max-new-tokens", "30",
                 "--seed", "1", "--top-k", "5", "--top-p", "0.9"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("All:") and len(first.rstrip("\n")) >= 30
    assert main(["generate", "--checkpoint", str(run), "--prompt", "All:", "--max-new-tokens", "30",
                 "--seed", "1", "--top-k", "5", "--top-p", "0.9", "--stream"]) == 0
    assert capsys.readouterr().out == first  # same seed, same text, streamed
    greedy_args = ["generate", "--checkpoint", str(run), "--prompt", "All:", "--max-new-tokens", "40",
                   "--temperature", "0"]
    assert main(greedy_args) == 0
    greedy = capsys.readouterr().out
    assert main([*greedy_args, "--window-stride", "1"]) == 0  # 1 is the default
    assert capsys.readouterr().out == greedy
    assert main([*greedy_args, "--window-stride", "4"]) == 0
    assert capsys.readouterr().out.startswith("All:")

    assert main(["evaluate", "--checkpoint", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bits_per_char"] == pytest.approx(result["loss"] / 0.6931471805599453)
    assert result["data"] == str(corpus_file.resolve()) and result["step"] == meta["step"]

    rc = main(["train", "--out", str(run), "--resume", "--max-iters", "18", "--no-progress",
               "--device", "cpu", "--checkpoint", "last"])
    out = capsys.readouterr().out
    assert rc == 0 and "at step 18" in out  # corpus found from the checkpoint
    assert "resuming tiny:" in out  # the preset comes from the checkpoint, not --preset's default
    resumed = read_meta(run)
    assert resumed["step"] == 18 and resumed["extra"]["preset"] == "tiny"
    assert resumed["model"]["config"] == meta["model"]["config"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "x", "--max-iters", "zero"], "--max-iters: value must be a positive integer, got"),
    (["train", "--out", "x", "--max-iters", "0"], "--max-iters: value must be a positive integer, got 0"),
    (["train", "--out", "x", "--dtype", "float8"], "invalid choice: 'float8'"),
    (["train", "--out", "x", "--lr-schedule", "linear"], "invalid choice: 'linear'"),
    (["train", "--out", "x", "--preset", "huge"], "invalid choice: 'huge'"),
    (["generate", "--checkpoint", "{tmp}/missing"], "no checkpoint at"),
    (["evaluate", "--checkpoint", "{tmp}"], "expected"),
    (["train", "--out", "{tmp}/r", "--data", "{tmp}/nope.txt"], "corpus file not found"),
    (["generate", "--checkpoint", "x", "--top-p", "1.5"], "expected a number in (0, 1]"),
    (["generate", "--checkpoint", "x", "--temperature", "-1"], "expected a number >= 0"),
    (["generate", "--checkpoint", "x", "--window-stride", "0"], "must be a positive integer"),
    (["train", "--out", "x", "--embedding-lr-mult", "0"], "--embedding-lr-mult: expected a positive number"),
    (["train", "--preset", "tiny", "--out", "{tmp}/r", "--data", "{corpus}", "--betas", "0.9", "1.5"],
     "betas must be two numbers in [0, 1)"),
    ([], "required"),
    (["generate"], "one of the arguments --checkpoint --pretrained is required"),
    (["evaluate", "--checkpoint", "x", "--pretrained", "cpu-small"], "not allowed with argument"),
    (["generate", "--pretrained", "gpt-5"], "invalid choice: 'gpt-5' (choose from"),
    (["evaluate", "--pretrained", "gpt-5"], "invalid choice: 'gpt-5' (choose from"),
])
def test_bad_arguments_give_one_line_error(tmp_path, corpus_file, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{corpus}", str(corpus_file)) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "error:" in err and message in err, err


def test_train_optimizer_options_reach_the_config(tmp_path, corpus_file):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(run), "--data", str(corpus_file),
                 "--max-iters", "2", "--betas", "0.8", "0.99", "--embedding-lr-mult", "5",
                 "--lr-schedule", "wsd", "--no-progress", "--device", "cpu"]) == 0
    saved = read_meta(run)["train_config"]
    assert saved["betas"] == [0.8, 0.99] and saved["embedding_lr_mult"] == 5.0
    assert saved["lr_schedule"] == "wsd"


def test_depth_schedule_reaches_the_checkpoint_and_bad_ones_are_one_line(tmp_path, corpus_file, cli_call,
                                                                          one_error_line):
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--data", str(corpus_file), "--no-progress", "--device", "cpu",
            "--max-iters", "4"]
    code, _, err = cli_call([*args, "--out", str(run), "--depth-schedule", "0:1,2:2"])
    assert code == 0, err
    assert read_meta(run)["train_config"]["depth_schedule"] == [[0, 1], [2, 2]]
    for schedule, message in (("0-1", "STEP:BLOCKS pairs"), ("0:1,2:3", "the model has 2"),
                              ("0:1,4:2", "past max_iters")):
        out = tmp_path / f"bad{len(message)}"
        code, _, err = cli_call([*args, "--out", str(out), "--depth-schedule", schedule])
        assert code == 2 and message in one_error_line(err), err
        assert not (out / "checkpoint").exists()


def test_model_options_and_muon_reach_the_checkpoint(tmp_path, corpus_file, capsys):
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--out", str(run), "--data", str(corpus_file), "--no-progress",
            "--device", "cpu"]
    assert main([*args, "--max-iters", "2", "--pos-encoding", "rope", "--activation", "relu2", "--qk-norm",
                 "--untied", "--attn-bias", "--optimizer", "muon", "--muon-lr", "0.01",
                 "--muon-momentum", "0.9", "--muon-ns", "polar-express", "--muon-ns-steps", "4"]) == 0
    meta = read_meta(run)
    model = meta["model"]["config"]
    assert (model["pos_encoding"], model["activation"], model["qk_norm"]) == ("rope", "relu2", True)
    assert model["tie_weights"] is False and model["attn_bias"] is True
    t = meta["train_config"]
    assert (t["optimizer"], t["muon_lr"], t["muon_momentum"]) == ("muon", 0.01, 0.9)
    assert (t["muon_ns"], t["muon_ns_steps"]) == ("polar-express", 4)
    muon_group = meta["optimizer"]["param_groups"][0]
    assert (muon_group["optimizer"], muon_group["momentum"], muon_group["ns_schedule"]) == ("muon", 0.9,
                                                                                           "polar-express")
    assert muon_group["ns_steps"] == 4
    capsys.readouterr()

    before = (run / "checkpoint" / "model.safetensors").read_bytes()
    assert main([*args, "--resume", "--max-iters", "4", "--activation", "gelu"]) == 2  # a model change
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--activation" in err and "resumed run keeps" in err, err
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == before  # nothing touched
    assert main([*args, "--resume", "--max-iters", "4"]) == 0  # the model options come from the checkpoint
    assert read_meta(run)["step"] == 4 and read_meta(run)["model"]["config"]["pos_encoding"] == "rope"

    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "r2"), "--data", str(corpus_file),
                 "--max-iters", "2", "--muon-lr", "0.01", "--no-progress"]) == 2  # AdamW has no Muon LR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "muon_lr" in err, err


def test_nanogpt_cpu_training_preset_is_nanogpts_cpu_recipe():
    t = TRAIN_PRESETS["nanogpt-cpu"]
    assert (t.batch_size, t.block_size, t.max_iters, t.warmup_iters) == (12, 64, 2000, 100)
    assert (t.learning_rate, t.min_lr, t.lr_schedule, t.betas, t.weight_decay) == (1e-3, 1e-4, "cosine",
                                                                                   (0.9, 0.99), 0.1)
    m = PRESETS["nanogpt-cpu"]
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size) == (4, 4, 128, 64)
    assert (m.activation, m.bias, m.attn_bias, m.pos_encoding) == ("gelu", True, True, "learned")


def test_cpu_fast_presets_are_the_speed_records_model_and_recipe():
    m = PRESETS["cpu-fast"]
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout) == (1, 4, 128, 64, 0.0)
    assert (m.pos_encoding, m.activation, m.qk_norm, m.tie_weights) == ("rope", "relu2", True, False)
    assert sum(p.numel() for p in GPT(m).parameters()) == 214_784  # <= nanogpt-cpu's 809,856
    t = TRAIN_PRESETS["cpu-fast"]
    assert (t.batch_size, t.max_iters, t.warmup_iters, t.lr_schedule, t.decay_fraction) == (
        16, 330, 10, "wsd", 0.7)
    assert (t.optimizer, t.muon_lr, t.learning_rate, t.min_lr, t.embedding_lr_mult) == (
        "muon", 0.015, 4e-3, 0.0, 5.0)


def test_choices_are_the_modules_own_tables():
    train = next(a for a in cli.build_parser()._actions if a.dest == "command").choices["train"]
    choices = {a.dest: a.choices for a in train._actions if a.choices}
    assert choices == {"preset": [n for n in TRAIN_PRESETS if n in PRESETS], "lr_schedule": LR_SCHEDULES,
                       "dtype": DTYPES, "compile": COMPILE_MODES, "checkpoint": CHECKPOINT_MODES,
                       "tokenizer": list(TOKENIZERS), "optimizer": OPTIMIZERS, "pos_encoding": POS_ENCODINGS,
                       "activation": ACTIVATIONS, "muon_ns": MUON_NS}
    for command in ("generate", "evaluate"):
        sub = next(a for a in cli.build_parser()._actions if a.dest == "command").choices[command]
        assert next(a for a in sub._actions if a.dest == "pretrained").choices == list(PRETRAINED_MODELS)


@pytest.mark.slow
def test_corrupt_checkpoint_no_traceback(tmp_path, corpus_file):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(run), "--data", str(corpus_file),
                 "--max-iters", "2", "--no-progress", "--device", "cpu"]) == 0
    weights = run / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "shakespeare_lm", "generate", "--checkpoint", str(run)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and "truncated" in proc.stderr


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for option in ("--preset", "--out", "--data", "--resume", "--overwrite", "--max-time", "--dtype",
                   "--compile", "--lr-schedule", "--tokenizer", "--vocab-size"):
        assert option in out
    for command in ("generate", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--checkpoint" in out and "--pretrained" in out and "cpu-small" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--tokenizer bpe --vocab-size 512" in out and "evaluate --pretrained cpu-small" in out
    assert "bits per character" in out


@pytest.mark.slow
def test_generate_into_a_closed_pipe_stops_quietly():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "shakespeare_lm", "generate", "--pretrained", "cpu-small",
                             "--max-new-tokens", "5000", "--stream", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert len(proc.stdout.read(20)) == 20  # like `| head -c 20`: read a little, then hang up
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""  # no "Broken pipe" error, no traceback
