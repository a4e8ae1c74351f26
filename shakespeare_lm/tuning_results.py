"""The table a sweep leaves behind: SweepResult in memory, results.jsonl and sweep.json on disk.

Follows the JSON Lines format (one JSON object per line), written atomically (a temporary file renamed
over the old one), so a sweep killed at any moment leaves every finished run readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .tuning_space import canonical
from .utils import atomic_write

RESULTS_FILE = "results.jsonl"
SETUP_FILE = "sweep.json"


@dataclass
class SweepResult:
    """The table of a sweep: one dict per run (see `sweep` for the keys), in the order they were recorded."""

    rows: list[dict] = field(default_factory=list)
    out_dir: Path | None = None
    interrupted: bool = False  # Ctrl-C stopped the sweep; calling it again resumes

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    @property
    def ok(self) -> list[dict]:
        """The runs that finished (not diverged, not pruned)."""
        return [r for r in self.rows if r["status"] == "ok"]

    @property
    def best(self) -> dict | None:
        """The finished run with the lowest val_loss (None if none finished)."""
        return min(self.ok, key=lambda r: r["val_loss"], default=None)

    def column(self, name: str) -> list:
        """One value per row: a swept field (from row['params']) or a result key such as 'val_loss'."""
        return [r["params"][name] if name in r["params"] else r.get(name) for r in self.rows]

    def table(self, columns: Iterable[str] | None = None) -> str:
        """A plain-text table of the swept fields and the main results, for printing."""
        swept = list(dict.fromkeys(k for r in self.rows for k in r["params"]))
        columns = list(columns) if columns is not None else [
            *swept, "n_params_non_embedding", "tokens", "seconds", "status", "val_loss"]
        cells = [[_cell(v) for v in self.column(c)] for c in columns]
        widths = [max([len(c), *map(len, col)]) for c, col in zip(columns, cells, strict=True)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
        lines += ["  ".join(col[i].rjust(w) for col, w in zip(cells, widths, strict=True))
                  for i in range(len(self.rows))]
        return "\n".join(lines)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 else f"{v:.3g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "-" if v is None else str(v)


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(f"{path}: line {n} is not JSON; fix or remove it to resume this sweep") from None
    return rows


def check_setup(out_dir: Path, setup: dict) -> None:
    path = out_dir / SETUP_FILE
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if canonical(saved) != canonical(json.loads(json.dumps(setup))):
            differ = sorted(k for k in setup.keys() | saved.keys()
                            if canonical(saved.get(k)) != canonical(json.loads(json.dumps(setup.get(k)))))
            raise ValueError(f"{out_dir} holds a sweep with another setup ({', '.join(differ)} differ); "
                             "resume it with the same settings or choose another out_dir")
        return
    with atomic_write(path) as f:
        json.dump(setup, f, indent=2)


def write_rows(path: Path, rows: list[dict]) -> None:
    """Rewrite results.jsonl with every row, atomically: a reader never sees half a line."""
    with atomic_write(path) as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


__all__ = ["RESULTS_FILE", "SETUP_FILE", "SweepResult", "check_setup", "read_rows", "write_rows"]
