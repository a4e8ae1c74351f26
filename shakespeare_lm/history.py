"""What a training run leaves behind and shows its callbacks: the History of losses and the TrainState.

Follows nanoGPT's logged `iter_num`, train/val loss and lr, kept as plain records that save to CSV and JSONL.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .utils import atomic_write

STOP_REASONS = ("max_iters", "max_time", "patience", "callback", "interrupted", "already_done")


@dataclass
class History:
    """Training curves: one record per evaluation, plus the train loss of every optimizer step.

    stop_reason says why training ended: "max_iters", "max_time" (the time budget), "patience",
    "callback" (a callback set state.stop), "interrupted" (Ctrl-C) or "already_done" (a resumed
    run had already reached max_iters, so nothing was trained).
    """

    records: list[dict] = field(default_factory=list)  # one dict per eval with the FIELDS below
    iter_losses: list[float] = field(default_factory=list)  # train loss of optimizer step i+1
    stop_reason: str | None = None  # one of STOP_REASONS once training has ended

    FIELDS = ("step", "train_loss", "val_loss", "lr", "tokens_per_sec", "elapsed")

    def __len__(self) -> int:
        return len(self.records)

    def column(self, name: str) -> list:
        return [r[name] for r in self.records]

    @property
    def step(self) -> int:
        """Optimizer steps completed (also those after the last evaluation)."""
        return len(self.iter_losses)

    @property
    def steps(self) -> list[int]:
        """The step of every evaluation."""
        return self.column("step")

    @property
    def train_loss(self) -> list[float]:
        return self.column("train_loss")

    @property
    def val_loss(self) -> list[float]:
        return self.column("val_loss")

    @property
    def lr(self) -> list[float]:
        return self.column("lr")

    @property
    def best_val_loss(self) -> float | None:
        vals = [v for v in self.val_loss if v is not None]
        return min(vals) if vals else None

    def to_dict(self) -> dict:
        return {"records": self.records, "iter_losses": self.iter_losses, "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(records=list(d.get("records", [])), iter_losses=list(d.get("iter_losses", [])),
                   stop_reason=d.get("stop_reason"))

    def to_csv(self, path: str | os.PathLike) -> None:
        """One line per evaluation, header first (written atomically)."""
        with atomic_write(path) as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.records)

    def to_jsonl(self, path: str | os.PathLike) -> None:
        """One JSON object per evaluation (written atomically)."""
        with atomic_write(path) as f:
            for r in self.records:
                f.write(json.dumps(r) + "\n")

    def save(self, out_dir: str | os.PathLike) -> None:
        """history.csv and history.jsonl (per eval) and iter_losses.json (per step) in out_dir."""
        out_dir = Path(out_dir)
        self.to_csv(out_dir / "history.csv")
        self.to_jsonl(out_dir / "history.jsonl")
        with atomic_write(out_dir / "iter_losses.json") as f:
            json.dump(self.iter_losses, f)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike) -> History:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls(records=[json.loads(line) for line in lines if line.strip()])


@dataclass
class TrainState:
    """What callbacks see. Set `stop = True` to end training after the current step."""

    config: Any  # the run's TrainConfig
    model: nn.Module  # the bare model (not compiled, not DDP-wrapped)
    optimizer: torch.optim.Optimizer  # its AdamW
    history: History  # curves so far
    step: int = 0  # optimizer steps completed
    loss: float | None = None  # train loss of the last step
    lr: float = 0.0  # LR of the last step
    val_loss: float | None = None  # last estimated val loss
    best_val_loss: float | None = None  # best estimated val loss so far
    elapsed: float = 0.0  # seconds of training, including earlier runs when resumed
    tokens_per_sec: float = 0.0  # throughput since the previous eval
    stop: bool = False  # set by a callback to stop gracefully


def call_callbacks(callbacks: Iterable, hook: str, state: TrainState) -> None:
    """Call `hook` ("on_step" | "on_eval" | "on_train_end") on every callback that has it; a plain
    callable without on_step counts as an on_eval callback."""
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is None and hook == "on_eval" and callable(cb) and not hasattr(cb, "on_step"):
            fn = cb
        if fn is not None:
            fn(state)
