"""Smoke tests for benchmarks/: they run end to end on a tiny corpus and print their headline line."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shakespeare_lm.model_config import get_preset
from shakespeare_lm.train_config import TRAIN_PRESETS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # each starts a Python process that imports torch


def run_benchmark(script: str, *args: str) -> list[str]:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()


@pytest.fixture
def corpus_file(tmp_path, tiny_text):
    path = tmp_path / "input.txt"
    path.write_text(tiny_text, encoding="utf-8")
    return path


def test_train_speed_reports_seconds_to_target(corpus_file):
    lines = run_benchmark("train_speed.py", "--data", str(corpus_file), "--max-iters", "4",
                          "--warmup-iters", "1", "--check-from", "2", "--check-every", "2", "--target", "10",
                          "--threads", "1")
    assert re.fullmatch(r"seconds to val 10\.0: \d+\.\d", lines[-1])
    assert re.fullmatch(rf"machine: .+, {os.cpu_count()} CPUs, torch {re.escape(torch.__version__)} with "
                        rf"{torch.backends.cpu.get_cpu_capability()} kernels", lines[0])  # for the runs log
    assert any(line.startswith("step 2: full val loss") for line in lines)  # reached at the first check


def test_train_speed_says_when_the_target_is_missed(corpus_file):
    lines = run_benchmark("train_speed.py", "--data", str(corpus_file), "--max-iters", "3", "--batch-size",
                          "8", "--warmup-iters", "1", "--check-from", "3", "--target", "0.01",
                          "--threads", "1", "--optimizer", "adamw", "--preset", "nanogpt-cpu",
                          "--pos-encoding", "rope", "--depth-schedule", "none")
    assert re.fullmatch(r"never reached val 0\.01 \(best full-val check \d+\.\d{4}\)", lines[-1])
    assert any(line.startswith("trained 3 steps (1,536 tokens)") for line in lines)
    assert any(line.startswith("ours: nanogpt-cpu (pos_encoding=rope), ") and "AdamW, batch 8" in line
               and "seed 1337" in line for line in lines)


def test_train_speed_checks_every_n_steps_counted_from_check_from(corpus_file):
    lines = run_benchmark("train_speed.py", "--data", str(corpus_file), "--max-iters", "6",
                          "--warmup-iters", "1", "--check-from", "3", "--check-every", "2",
                          "--target", "0.01", "--threads", "1", "--subset-every", "0")
    checked = [int(m.group(1)) for line in lines if (m := re.match(r"step (\d+): full val loss", line))]
    assert checked == [3, 5, 6]  # from step 3 every 2 steps, and the last step


def test_train_speed_runs_each_variant_in_a_fresh_process(corpus_file):
    lines = run_benchmark("train_speed.py", "--data", str(corpus_file), "--max-iters", "2", "--warmup-iters",
                          "1", "--check-from", "2", "--target", "10", "--threads", "1", "--runs", "2")
    assert lines[0].startswith("seed 1337 for every run; 2 run(s) per variant")
    assert lines[1].startswith("machine: ") and sum(line.startswith("machine: ") for line in lines) == 1
    runs = [(float(m.group(1)), float(m.group(2))) for line in lines
            if (m := re.fullmatch(r"run \d ours: (\d+\.\d) s \(CPU (\d+\.\d) s\)", line))]
    assert len(runs) == 2 and all(wall > 0.5 and cpu > 0.5 for wall, cpu in runs)  # Python + torch start-up
    assert re.fullmatch(r"ours: runs \d+\.\d, \d+\.\d s; median \d+\.\d s \(CPU time median \d+\.\d s\)",
                        lines[-1])


def test_train_speed_reference_is_nanogpts_cpu_recipe(capsys):
    spec = importlib.util.spec_from_file_location("train_speed", ROOT / "benchmarks" / "train_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.variant_args(bench.parse_args(["--variant", "reference", "--activation", "relu2"]))
    c = bench.make_config(args)
    assert (c.batch_size, c.block_size, c.max_iters, c.decay_iters) == (12, 64, 2000, 2000)
    assert (c.warmup_iters, c.learning_rate, c.final_lr, c.lr_schedule) == (100, 1e-3, 1e-4, "cosine")
    assert (c.optimizer, c.betas, c.weight_decay, c.grad_clip) == ("adamw", (0.9, 0.99), 0.1, 1.0)
    assert (c.embedding_lr_mult, c.seed, c.depth_schedule) == (1.0, 1337, None)
    assert bench.model_preset(args) == ("nanogpt-cpu", {})  # no model override of ours leaks in
    ours = bench.parse_args([])
    assert bench.variant_args(ours) is ours and bench.make_config(ours).seed == c.seed
    modern = dict(pos_encoding="rope", activation="relu2", qk_norm=True, tie_weights=False)
    assert bench.model_preset(ours) == ("cpu-fast", {})  # the default
    assert bench.model_preset(bench.parse_args(["--preset", "cpu-modern"])) == ("cpu-fast", {"n_layer": 4})
    assert get_preset("cpu-fast", n_layer=4) == get_preset("cpu-small", **modern)  # cpu-small, today's block
    fields = ("batch_size", "block_size", "max_iters", "learning_rate", "min_lr", "warmup_iters",
              "lr_schedule", "decay_fraction", "embedding_lr_mult", "betas", "weight_decay", "grad_clip",
              "optimizer", "muon_lr", "muon_momentum", "muon_ns", "muon_ns_steps", "dtype", "seed")
    preset = TRAIN_PRESETS["cpu-fast"]  # the CLI's --preset cpu-fast trains the benchmark's recipe
    assert {f: getattr(bench.make_config(ours), f) for f in fields} == {f: getattr(preset, f) for f in fields}
    assert (ours.max_iters, ours.check_from, ours.subset_every, ours.muon_lr) == (330, 320, 0, 0.015)
    nano = bench.parse_args(["--preset", "nanogpt-cpu", "--max-iters", "300"])  # its recipe, then the flag
    assert (nano.max_iters, nano.muon_lr, nano.check_from) == (300, 0.03, 330)
    nano_config = bench.make_config(nano)
    assert (nano_config.muon_momentum, nano_config.muon_ns, nano_config.muon_ns_steps) == (
        0.9, "polar-express", 3)
    assert nano_config.depth_schedule == ((0, 2), (290, 4))  # 2 blocks, stacked to 4 at step 290
    assert bench.make_config(ours).depth_schedule is None  # cpu-fast has one block
    flat = bench.parse_args(["--preset", "nanogpt-cpu", "--depth-schedule", "none"])
    assert bench.make_config(flat).depth_schedule is None
    with pytest.raises(SystemExit):  # the recipe grows at step 290: a one-line error, not a traceback
        bench.parse_args(["--preset", "nanogpt-cpu", "--max-iters", "200"])
    assert "past max_iters" in capsys.readouterr().err
    five = bench.parse_args(["--preset", "nanogpt-cpu", "--muon-ns-steps", "5"])
    assert bench.make_config(five).muon_ns_steps == 5
    other = bench.parse_args(["--preset", "baby-gpt"])  # no recipe of its own: the generic defaults
    assert bench.model_preset(other) == ("baby-gpt", {}) and other.max_iters == bench.GENERIC["max_iters"]
    with pytest.raises(SystemExit):  # argparse's one-line error, not a traceback from get_preset later
        bench.parse_args(["--preset", "cpu-fastest"])
    err = capsys.readouterr().err
    assert "unknown preset 'cpu-fastest'; choose a recipe (cpu-fast, cpu-modern, nanogpt-cpu)" in err
    assert bench.model_preset(bench.parse_args(["--preset", "nanogpt-cpu", "--qk-norm"])) == (
        "nanogpt-cpu", {"qk_norm": True})


def test_generation_speed_reports_speedup():
    lines = run_benchmark("generation_speed.py", "--preset", "tiny", "--tokens", "40", "--runs", "1",
                          "--threads", "1")
    assert re.fullmatch(r"kv-cache speed-up: \d+\.\dx", lines[-1])


def test_bpe_speed_reports_training_seconds(corpus_file):
    lines = run_benchmark("bpe_speed.py", "--data", str(corpus_file), "--vocab-sizes", "260", "270",
                          "--repeat", "1")
    assert re.fullmatch(r"BPE training, median of 1: vocab 260 \(4 merges\) \d+\.\d\d s pre-split, "
                        r"\d+\.\d\d s whole-text; vocab 270 \(14 merges\) \d+\.\d\d s pre-split, "
                        r"\d+\.\d\d s whole-text", lines[-1])


def test_cpu_kernels_prints_each_comparison_with_its_ratio():
    lines = run_benchmark("cpu_kernels.py", "--rounds", "2", "--calls", "1", "--threads", "1",
                          "--batch-size", "2")
    assert lines[0].startswith("torch ") and "1 thread(s), 2 rounds" in lines[0]
    pattern = (r"(?P<title>.+): (?P<old>[\w ]+) \d+\.\d\d, \d+\.\d\d ms \(median \d+\.\d\d\); (?P<new>\w+) "
               r"\d+\.\d\d, \d+\.\d\d ms \(median \d+\.\d\d\); (?P=new) / (?P=old) = \d+\.\d\d")
    found = [m for line in lines[1:-1] if (m := re.fullmatch(pattern, line))]
    # attention x 8, Newton-Schulz x 4, training step (attention path), training step (allocator)
    assert len(found) == len(lines) - 2 == 8 + 4 + 2
    assert [m["new"] for m in found[:8]] == ["matmul"] * 8
    assert [m["new"] for m in found[8:12]] == ["package"] * 4
    assert found[12]["title"].startswith("nanogpt-cpu training step, batch 2 x 64 (attention path)")
    assert found[13]["title"].startswith("nanogpt-cpu training step, batch 2 x 64 (allocator")
    assert (found[13]["old"], found[13]["new"]) == ("default", "kept")
    assert re.fullmatch(r"page faults per step: default \d+, \d+; kept \d+, \d+", lines[-1])
