"""The README's series table quotes the committed notebooks' full-run outputs, not numbers from memory.

For every notebook row: each number in the "result" column is printed by that notebook (at the
README's precision), and the stated full-run time matches the cells' recorded execution times (the
committed outputs must come from one full run, top to bottom).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\d.])\d+\.\d+")


def _series_rows() -> list[list[str]]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| notebook |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)))
    return rows


def _notebook(row: dict) -> Path:
    return ROOT / re.search(r"\((notebooks/[^)]+\.ipynb)\)", row["notebook"]).group(1)


def _output_lines(nb: dict) -> list[str]:
    lines = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            lines += ("".join(text) if isinstance(text, list) else text).splitlines()
    return lines


def _run_seconds(nb: dict) -> float:
    stamps = [cell["metadata"]["execution"] for cell in nb["cells"]
              if cell["cell_type"] == "code" and "execution" in cell.get("metadata", {})]
    first = datetime.fromisoformat(stamps[0]["iopub.execute_input"].replace("Z", "+00:00"))
    last = datetime.fromisoformat(stamps[-1]["shell.execute_reply"].replace("Z", "+00:00"))
    return (last - first).total_seconds()


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?) (s|min)", text)
    assert m, f"full-run time must read like '41 s' or '3.7 min', got {text!r}"
    return float(m.group(1)) * (60 if m.group(2) == "min" else 1)


ROWS = _series_rows()


def test_the_table_lists_every_notebook():
    listed = {_notebook(row).name for row in ROWS}
    assert listed == {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}


@pytest.mark.parametrize("row", ROWS, ids=[_notebook(r).stem for r in ROWS])
def test_quoted_results_are_printed_by_the_notebook(row):
    nb = json.loads(_notebook(row).read_text(encoding="utf-8"))
    lines = _output_lines(nb)
    for quoted in NUMBER.findall(row["result (full run)"]):
        decimals = len(quoted.split(".")[1])
        printed = {round(float(x), decimals) for line in lines for x in NUMBER.findall(line)}
        assert float(quoted) in printed, f"{_notebook(row).name} never prints {quoted}"


@pytest.mark.parametrize("row", ROWS, ids=[_notebook(r).stem for r in ROWS])
def test_quoted_run_time_is_the_committed_run(row):
    nb = json.loads(_notebook(row).read_text(encoding="utf-8"))
    recorded, quoted = _run_seconds(nb), _seconds(row["full run, 2-core CPU"])
    assert abs(recorded - quoted) <= max(5.0, 0.1 * recorded), (
        f"{_notebook(row).name}: README says {quoted:.0f} s, the committed run took {recorded:.0f} s")
    assert recorded <= 20 * 60, f"{_notebook(row).name}: a full run must stay under 20 minutes"
