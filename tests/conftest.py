"""Shared fixtures: the real corpus when it is available (never downloaded by tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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
