"""Tests for the command line's guards: never lose a trained model, and one clear line for every mistake."""

from __future__ import annotations

import errno
import importlib.abc
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from shakespeare_lm import cli
from shakespeare_lm.__main__ import main
from shakespeare_lm.checkpoint import peek, read_meta, save_checkpoint
from shakespeare_lm.model import GPT, get_preset
from shakespeare_lm.tokenizer import CharTokenizer

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text("First Citizen:\nSpeak, speak.\n\nAll:\nYou are all resolved rather to die?\n" * 40)
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """A tiny run trained for 12 steps; tests work on copies of it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--preset", "tiny", "--out", str(run), "--data", corpus, "--max-iters", "12",
                 "--eval-interval", "6", "--no-progress", "--device", "cpu"]) == 0
    return run


@pytest.fixture
def run(tmp_path, trained):
    return shutil.copytree(trained, tmp_path / "run")


def _files(run):
    """Every file under run (but the lock) with its bytes: 'nothing changed' means this is equal."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()
            and p.name != ".lock"}


# --- lost work ----------------------------------------------------------------------------------

def test_training_again_into_a_trained_run_is_refused_before_reading_data(tmp_path, run, cli_call,
                                                                          one_error_line):
    before = _files(run)
    rc, _, err = cli_call(["train", "--preset", "tiny", "--out", run, "--data", tmp_path / "missing.txt",
                           "--no-progress"])
    assert rc == 2 and _files(run) == before
    # the run directory is checked first: not "corpus file not found"
    assert "already holds a trained model (checkpoint/)" in one_error_line(err)
    assert "pass --resume to continue it, --overwrite to replace it" in err


def test_overwrite_replaces_a_trained_run(run, corpus, cli_call):
    rc, out, _ = cli_call(["train", "--preset", "tiny", "--out", run, "--data", corpus, "--max-iters", "4",
                           "--no-progress", "--overwrite", "--device", "cpu"])
    assert rc == 0 and "done (max_iters) at step 4" in out
    assert read_meta(run)["step"] == 4


def test_resume_at_or_past_max_iters_does_nothing_and_deletes_nothing(run, cli_call):
    shutil.copytree(run / "checkpoint", run / "interrupted")  # as if stopped later, at step 15
    meta = json.loads((run / "interrupted" / "meta.json").read_text())
    (run / "interrupted" / "meta.json").write_text(json.dumps({**meta, "step": 15}))
    before = _files(run)
    for max_iters in ("14", "15"):
        rc, out, err = cli_call(["train", "--out", run, "--resume", "--max-iters", max_iters,
                                 "--no-progress"])
        assert rc == 0 and err == ""
        assert out == (f"nothing to do: {run} is at step 15 and --max-iters is {max_iters}; "
                       "pass a larger --max-iters to train further\n")
        assert _files(run) == before


def test_resume_of_a_finished_run_without_max_iters_says_so(run, cli_call):
    rc, out, _ = cli_call(["train", "--out", run, "--resume", "--no-progress"])
    assert rc == 0 and out.startswith(f"nothing to do: {run} is at step 12 and its max_iters is 12;")


def test_resume_with_another_preset_is_refused(run, cli_call, one_error_line):
    rc, _, err = cli_call(["train", "--preset", "cpu-small", "--out", run, "--resume", "--max-iters", "20"])
    assert rc == 2 and "was trained with --preset tiny, not cpu-small; drop --preset" in one_error_line(err)


@pytest.mark.slow
def test_a_second_training_into_the_same_out_is_refused_and_ctrl_c_reports_the_real_step(tmp_path, corpus,
                                                                                         one_error_line):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "shakespeare_lm", "train", "--preset", "tiny", "--out", run, "--data", corpus,
         "--max-iters", "1000000", "--eval-interval", "1000000", "--no-progress", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        # as typed at a terminal: a background job (`cmd &` in a script) inherits SIGINT ignored, and
        # Python then never raises KeyboardInterrupt, so the child would not see the Ctrl-C below
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint" / "meta.json").exists():  # the step-0 evaluation was saved
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.1)
        for extra in (["--resume"], ["--overwrite"]):  # either would spoil the first run without the lock
            second = subprocess.run(
                [sys.executable, "-m", "shakespeare_lm", "train", "--preset", "tiny", "--out", run,
                 "--data", corpus, "--max-iters", "5", "--no-progress", *extra],
                capture_output=True, text=True, env=ENV, timeout=120)
            assert second.returncode == 2 and "another training is writing to" in second.stderr
            one_error_line(second.stderr)
        assert first.poll() is None  # the first one is still training, undisturbed
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, err
    stopped = peek(run / "interrupted")["step"]
    assert stopped > 0 and f"done (interrupted) at step {stopped} in" in out  # not the last eval's step 0
    assert "(last eval at step 0)" in out
    assert read_meta(run / "checkpoint")["step"] == 0 and read_meta(run / "interrupted")["step"] == stopped
    assert f"resume with: python -m shakespeare_lm train --out {run} --resume" in err


# --- one clear line instead of a traceback -------------------------------------------------------

@pytest.mark.parametrize("command", ["generate", "evaluate"])
@pytest.mark.parametrize("device, message", [
    ("cuda", "device 'cuda' requested but CUDA is not available here"),
    ("cuda:3", "device 'cuda:3' requested but CUDA is not available here"),
    ("tpu", "unknown device 'tpu'"),
])
def test_generate_and_evaluate_check_the_device(trained, cli_call, one_error_line, monkeypatch, command,
                                                device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, _, err = cli_call([command, "--checkpoint", trained, "--device", device])
    assert rc == 2 and message in one_error_line(err)


def test_an_out_that_cannot_be_created_is_one_line(tmp_path, corpus, cli_call, one_error_line):
    (tmp_path / "afile").write_text("not a directory")
    out = tmp_path / "afile" / "run"
    rc, _, err = cli_call(["train", "--preset", "tiny", "--out", out, "--data", corpus])
    assert rc == 2 and f"cannot create run directory {out}: Not a directory" in one_error_line(err)
    assert "Errno" not in err


def test_an_out_that_cannot_be_written_is_one_line(tmp_path, corpus, cli_call, monkeypatch, one_error_line):
    def refuse(lock):  # what a read-only directory does to a user who is not root
        raise PermissionError(errno.EACCES, "Permission denied", str(lock.run_dir / ".lock"))

    monkeypatch.setattr(cli.RunLock, "acquire", refuse)
    rc, _, err = cli_call(["train", "--preset", "tiny", "--out", tmp_path, "--data", corpus])
    assert rc == 2 and f"cannot write to run directory {tmp_path}: Permission denied" in one_error_line(err)


@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_a_checkpoint_file_instead_of_its_directory(trained, cli_call, command, one_error_line):
    target = trained / "checkpoint" / "model.safetensors"
    rc, _, err = cli_call([command, "--checkpoint", target])
    assert rc == 2
    expected = f"{target} is a file; pass the checkpoint directory that contains it ({target.parent})"
    assert expected in one_error_line(err)


def test_a_larger_file_is_not_called_truncated(run, cli_call, one_error_line):
    with open(run / "checkpoint" / "model.safetensors", "ab") as f:
        f.write(b"appended")
    rc, _, err = cli_call(["generate", "--checkpoint", run])
    assert rc == 2 and "(modified or appended to?)" in one_error_line(err) and "truncated" not in err


def test_generate_default_prompt_works_without_a_newline_in_the_vocabulary(tmp_path, cli_call):
    tok = CharTokenizer(" abcdefgh")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck", GPT(get_preset("tiny", vocab_size=tok.vocab_size)), tokenizer=tok)
    rc, out, err = cli_call(["generate", "--checkpoint", tmp_path / "ck", "--max-new-tokens", "20",
                             "--seed", "1"])
    assert rc == 0 and err == ""
    assert out.startswith(" ") and len(out) == 1 + 20 + 1 and set(out[:-1]) <= set(tok.chars)


def test_text_outside_the_vocabulary_is_named(tmp_path, run, cli_call, one_error_line):
    rc, _, err = cli_call(["generate", "--checkpoint", run, "--prompt", "ROMEO: é"])
    assert rc == 2 and "the prompt does not fit the checkpoint's tokenizer" in one_error_line(err)
    assert "'é'" in err
    other = tmp_path / "other.txt"
    other.write_text("Zounds! €5 " * 50)
    for argv in (["evaluate", "--checkpoint", run, "--data", other],
                 ["train", "--out", run, "--resume", "--max-iters", "20", "--data", other, "--no-progress"]):
        rc, _, err = cli_call(argv)
        assert rc == 2 and "'€'" in err
        assert f"the corpus {other} does not fit the checkpoint's tokenizer" in one_error_line(err)


class _InterruptOn(importlib.abc.MetaPathFinder):
    """Raises KeyboardInterrupt when `name` is imported: a Ctrl-C while that import runs."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_command_line_loads_is_one_line(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "shakespeare_lm.cli")
    monkeypatch.setattr(sys, "meta_path", [_InterruptOn("shakespeare_lm.cli"), *sys.meta_path])
    assert main(["generate", "--checkpoint", "x"]) == 130
    assert capsys.readouterr().err == "shakespeare-lm: interrupted\n"


@pytest.mark.slow
def test_ctrl_c_while_torch_imports_is_one_line():
    # What `python -m shakespeare_lm` does, with a Ctrl-C arriving while torch is being imported.
    code = ("import importlib.abc, runpy, sys\n"
            "class Finder(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Finder())\n"
            "sys.argv = ['shakespeare-lm', 'generate', '--checkpoint', 'x']\n"
            "runpy.run_module('shakespeare_lm', run_name='__main__', alter_sys=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 130 and proc.stderr == "shakespeare-lm: interrupted\n", proc.stderr


def test_cli_module_runs_without_the_entry_point(trained, capsys):
    assert cli.run(["evaluate", "--checkpoint", str(trained), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 12
