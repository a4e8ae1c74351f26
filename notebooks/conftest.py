"""pytest setup for running the notebooks under nbval (CI runs them in quick mode).

`pytest --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/`
Quick mode (`SHAKESPEARE_LM_QUICK=1`) is switched on unless already set, and the corpus is read from
`../shared/data/tinyshakespeare/input.txt` next to the repository when that file exists and
`SHAKESPEARE_LM_DATA` is not set. Nothing is changed when nbval is not in use, so the unit tests
in tests/ never run in quick mode by accident. Every notebook cell is marked `slow`, so
`pytest -m "not slow"` runs the fast unit tests alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def pytest_configure(config):
    nbval_on = config.getoption("nbval", default=False) or config.getoption("nbval_lax", default=False)
    if not nbval_on:
        return
    # the kernels nbval starts inherit this process's environment
    os.environ.setdefault("SHAKESPEARE_LM_QUICK", "1")
    if not os.environ.get("SHAKESPEARE_LM_DATA") and SHARED_CORPUS.is_file():
        os.environ["SHAKESPEARE_LM_DATA"] = str(SHARED_CORPUS)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
