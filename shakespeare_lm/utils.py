"""Small helpers every notebook and module shares: seeding, device choice, quick mode, atomic files.

Follows nanoGPT's habits (explicit device, explicit seed) without any global state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

QUICK_ENV = "SHAKESPEARE_LM_QUICK"
_FALSE = {"", "0", "false", "no", "off"}


def set_seed(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a CPU generator seeded the same."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return the best available device (cuda > mps > cpu), or `preferred` if given and usable.

    `preferred` may be None or "auto" (choose), or any torch device string ("cpu", "cuda:1").
    Asking for a device that is not available raises ValueError instead of failing later.
    """
    if preferred is None or str(preferred) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preferred)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {preferred!r}: use 'auto', 'cpu', 'cuda' or 'mps'") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preferred!r} requested but CUDA is not available here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {preferred!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {preferred!r} requested but MPS is not available here")
    return device


def is_quick() -> bool:
    """True when SHAKESPEARE_LM_QUICK is set to a true value (CI runs notebooks this way)."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in _FALSE


def pick(full: T, quick: T) -> T:
    """Return `quick` in quick mode (SHAKESPEARE_LM_QUICK=1), else `full`.

    Notebooks write their hyperparameters as `max_iters = pick(full=5000, quick=40)`.
    """
    return quick if is_quick() else full


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to `path`; on success fsync and rename it over `path`.

    If the block raises, the temporary file is removed and `path` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (cpu for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_positive_int(name: str, value: object) -> None:
    """Raise ValueError("<name> must be a positive integer, got <value>") unless value is an int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_fields(cls: type, names: Any, what: str | None = None) -> None:
    """Raise ValueError naming the unknown fields if `names` are not all fields of dataclass `cls`."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(names) - fields)
    if unknown:
        raise ValueError(f"unknown {what or cls.__name__} field(s): {', '.join(unknown)}; "
                         f"valid fields: {', '.join(sorted(fields))}")
