"""Shared fixtures: the real corpus when it is available (never downloaded by tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from shakespeare_lm import CharTokenizer, train_val_split
from shakespeare_lm.__main__ import main
from shakespeare_lm.model import GPT, get_preset

REPO = Path(__file__).resolve().parent.parent
_CANDIDATES = [
    os.environ.get("SHAKESPEARE_LM_DATA"),
    str(REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"),
]


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models run fastest on one thread, and on a busy 2-core machine two threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _corpus_path() -> Path | None:
    for c in _CANDIDATES:
        if c and Path(c).is_file():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def shakespeare_path() -> Path:
    """Path to Tiny Shakespeare; the test is skipped (with the reason) when there is none."""
    path = _corpus_path()
    if path is None:
        pytest.skip("Tiny Shakespeare not available offline: set SHAKESPEARE_LM_DATA=/path/to/input.txt")
    return path


@pytest.fixture(scope="session")
def shakespeare_text(shakespeare_path: Path) -> str:
    from shakespeare_lm import load_text

    return load_text(shakespeare_path)


@pytest.fixture
def tiny_text() -> str:
    """A small corpus for fast tests."""
    return (
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
    ) * 20


@pytest.fixture
def char_corpus(tiny_text):
    """tiny_text with a CharTokenizer, encoded and split: (tok, train_data, val_data)."""
    tok = CharTokenizer.from_text(tiny_text)
    train_data, val_data = train_val_split(torch.tensor(tok.encode(tiny_text)))
    return tok, train_data, val_data


@pytest.fixture
def tiny_gpt():
    """Make a GPT of the "tiny" preset for a tokenizer: tiny_gpt(tok, seed=0, **preset_overrides)."""

    def make(tok, seed=0, **overrides):
        torch.manual_seed(seed)
        return GPT(get_preset("tiny", vocab_size=tok.vocab_size, **overrides))

    return make


@pytest.fixture
def cli_call(capsys):
    """Run the command line in-process: cli_call(argv) -> (exit status, stdout, stderr)."""

    def call(argv):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code
        out, err = capsys.readouterr()
        return rc, out, err

    return call


@pytest.fixture
def one_error_line():
    """Check that stderr is one `error:` line and no traceback; returns it, for `in` checks."""

    def check(err: str) -> str:
        assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err, err
        return err

    return check
