"""Smoke tests for benchmarks/: they run end to end on a tiny corpus and print their headline line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert any(line.startswith("step 2: full val loss") for line in lines)  # reached at the first check


def test_train_speed_says_when_the_target_is_missed(corpus_file):
    lines = run_benchmark("train_speed.py", "--data", str(corpus_file), "--max-iters", "3",
                          "--warmup-iters", "1", "--check-from", "3", "--target", "0.01", "--threads", "1")
    assert re.fullmatch(r"never reached val 0\.01 \(best full-val check \d+\.\d{4}\)", lines[-1])
    assert any(line.startswith("trained 3 steps (1,536 tokens)") for line in lines)


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
