"""Checkpoints you can open safely: weights and optimizer tensors in safetensors, the rest in JSON.

Follows nanoGPT's ckpt.pt contents (model args, model, optimizer, iter_num, best_val_loss,
config), split into files that never need pickle, written to a temporary directory and renamed
so a crash at any moment leaves the previous checkpoint intact.

A checkpoint directory holds:
  model.safetensors      weights of the bare model (no `_orig_mod.` / `module.` prefixes)
  optimizer.safetensors  optimizer state tensors, keyed `state.<param index>.<name>`
  rng.safetensors        torch CPU / CUDA / data-order generator states (rng_state.py)
  meta.json              model type + config, train config, tokenizer.to_dict() (names its kind),
                         step, best val loss, optimizer param groups, file sizes + sha256, version

`peek` checks file sizes only (cheap, for choosing a checkpoint); loading checks every sha256 once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ._version import __version__
from .model import build_model
from .rng_state import capture_rng_state, restore_rng_state, rng_state_from_tensors, rng_state_to_tensors
from .tokenizer import tokenizer_from_dict
from .utils import sha256_file

FORMAT = "shakespeare_lm.checkpoint"
FORMAT_VERSION = 1
MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, META_FILE = (
    "model.safetensors", "optimizer.safetensors", "rng.safetensors", "meta.json"
)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupted, or does not fit the model it is loaded into."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside torch.compile (`_orig_mod`) and DistributedDataParallel (`module`)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):  # directories cannot be fsync'ed everywhere (Windows)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


# --- saving -----------------------------------------------------------------------------------

def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = _jsonable(v)
    return tensors, {"type": type(optimizer).__name__, "param_groups": _jsonable(sd["param_groups"]),
                     "scalars": scalars}


def _write(tmp: Path, model, optimizer, tokenizer, train_config, step, best_val_loss, rng_state, extra):
    config = getattr(model, "config", None)
    save_model(model, str(tmp / MODEL_FILE), metadata={"format": "pt"})  # dedupes tied weights
    meta: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
        "torch_version": torch.__version__,
        "model": {"type": type(model).__name__,
                  "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None},
        "train_config": _jsonable(dataclasses.asdict(train_config)) if train_config is not None else None,
        "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
        "step": int(step), "best_val_loss": None if best_val_loss is None else float(best_val_loss),
        "optimizer": None, "extra": _jsonable(extra or {}),
    }
    tensor_files = {MODEL_FILE: None}
    if optimizer is not None:
        tensor_files[OPTIMIZER_FILE], meta["optimizer"] = _optimizer_to_files(optimizer)
    if rng_state is not None:
        tensor_files[RNG_FILE] = rng_state_to_tensors(rng_state)
    for name, tensors in tensor_files.items():
        if tensors is not None:
            save_file(tensors, str(tmp / name))
        _fsync(tmp / name)
    meta["files"] = {name: {"bytes": (tmp / name).stat().st_size, "sha256": sha256_file(tmp / name)}
                     for name in tensor_files}
    with open(tmp / META_FILE, "w", encoding="utf-8") as f:  # last: its presence marks completeness
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    _fsync(tmp)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    tokenizer=None, train_config=None, *, step: int = 0, best_val_loss: float | None = None,
                    rng_state: dict | None = None, extra: dict | None = None) -> Path:
    """Write a checkpoint directory at `path`, atomically replacing any previous one there.

    Everything goes to a temporary sibling directory first; the old checkpoint is renamed aside
    only once the new one is complete, then removed. `extra` is any JSON (history, data source).
    A failed write (disk full, ...) raises CheckpointError and leaves the previous checkpoint as it was.
    """
    path = Path(path)
    parent, old, tmp = path.parent, path.parent / f".{path.name}.old", None
    if path.is_file() or (path.is_dir() and not (path / META_FILE).is_file() and any(path.iterdir())):
        raise CheckpointError(f"refusing to replace {path}: it exists and is not a checkpoint directory")
    kept = f"the previous checkpoint at {path} was kept" if (path / META_FILE).is_file() else "nothing lost"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        # A save killed mid-write leaves its temporary directory behind; the run lock means no other
        # save into this directory is running, so any found now is debris.
        for stale in parent.glob(f".{path.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
        _write(tmp, unwrap_model(model), optimizer, tokenizer, train_config, step, best_val_loss,
               rng_state, extra)
        if path.exists():
            if old.exists():
                shutil.rmtree(old)  # stale: `path` itself is the newer checkpoint
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync(parent)
    except BaseException as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(e, OSError | SafetensorError):
            raise
        # safetensors reports I/O errors as SafetensorError("... (os error 28)"), without an errno
        full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "os error 28" in str(e)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).split("I/O error: ")[-1]
        raise CheckpointError(f"{'disk full while saving' if full else 'could not save'} {path}: "
                              f"{reason}; {kept}") from e
    shutil.rmtree(old, ignore_errors=True)
    return path


# --- loading ----------------------------------------------------------------------------------

def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """The checkpoint directory for `path`: itself, its `checkpoint/` (a run directory), or the
    `.name.old` copy a save left behind if it was killed between its two renames."""
    p = Path(path).expanduser()
    if p.is_file():
        raise CheckpointError(f"{p} is a file; pass the checkpoint directory that contains it ({p.parent}) "
                              "or the run directory")
    for c in (p, p / "checkpoint", p.parent / f".{p.name}.old", p / ".checkpoint.old"):
        if (c / META_FILE).is_file():
            return c
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: the path does not exist")
    raise CheckpointError(f"no checkpoint at {p}: expected {p / META_FILE} (a checkpoint directory) "
                          f"or {p / 'checkpoint' / META_FILE} (a training run directory)")


def peek(path: str | os.PathLike) -> dict:
    """meta.json of a checkpoint (plus `path`), after checking that every file it lists is present
    with the recorded size. Cheap: no hashing; `read_meta` also verifies the contents."""
    d = resolve_checkpoint_dir(path)
    try:
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{d / META_FILE} is not valid JSON (truncated or corrupted?): {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{d} is not a shakespeare_lm checkpoint (meta.json has no format {FORMAT!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{d} was written by a newer shakespeare_lm (format version "
                              f"{meta['format_version']}); upgrade the package to load it")
    for name, info in (meta.get("files") or {}).items():
        f = d / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {d} is incomplete: {name} is missing")
        size, expected = f.stat().st_size, info["bytes"]
        if size != expected:
            why = "truncated copy?" if size < expected else "modified or appended to?"
            raise CheckpointError(f"checkpoint {d} is corrupted: {name} has {size} bytes, expected "
                                  f"{expected} ({why})")
    meta["path"] = str(d)
    return meta


def read_meta(path: str | os.PathLike) -> dict:
    """meta.json of a checkpoint (plus `path`), after checking that every file it lists is intact."""
    meta = peek(path)
    d = Path(meta["path"])
    for name, info in (meta.get("files") or {}).items():
        if sha256_file(d / name) != info["sha256"]:
            raise CheckpointError(f"checkpoint {d} is corrupted: {name} does not match its sha256")
    return meta


def find_resume_checkpoint(path: str | os.PathLike) -> Path:
    """For resuming: the newest (highest step) of a run directory's `checkpoint/` and `interrupted/`."""
    p = Path(path).expanduser()
    if (p / META_FILE).is_file():
        return p
    found = []
    for name in ("checkpoint", "interrupted"):
        with contextlib.suppress(CheckpointError):
            meta = peek(p / name)
            found.append((meta["step"], name == "interrupted", Path(meta["path"])))
    if not found:
        return resolve_checkpoint_dir(p)  # raises a helpful error (or finds a recovered copy)
    return max(found)[2]


def _load_weights(model: nn.Module, d: Path, device: str | torch.device) -> None:
    f = d / MODEL_FILE
    mine = model.state_dict()
    try:
        with safe_open(str(f), framework="pt") as st:
            saved = {k: list(st.get_slice(k).get_shape()) for k in st.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {f}: {e}") from None
    wrong = [f"{k} is {saved[k]} in the checkpoint but {list(mine[k].shape)} in the model"
             for k in saved if k in mine and saved[k] != list(mine[k].shape)]
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise CheckpointError(f"weights in {d} do not fit this {type(model).__name__}: "
                              f"{'; '.join(wrong[:3])}{more}")
    try:
        missing, unexpected = load_model(model, str(f), strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"cannot load {f}: {' '.join(str(e).split())}") from None
    if missing or unexpected:
        raise CheckpointError(f"weights in {d} do not fit this {type(model).__name__}: missing "
                              f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")


def _check_model_matches(model: nn.Module, meta: dict, d: Path) -> None:
    saved = meta.get("model") or {}
    if saved.get("type") and saved["type"] != type(model).__name__:
        raise CheckpointError(f"checkpoint {d} holds a {saved['type']}, not a {type(model).__name__}")
    config = getattr(model, "config", None)
    if saved.get("config") is not None and dataclasses.is_dataclass(config):
        mine = json.loads(json.dumps(dataclasses.asdict(config)))
        diff = {k: (v, mine.get(k)) for k, v in saved["config"].items() if mine.get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(f"checkpoint {d} was saved from a different model config ({shown})")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model (eval mode, on `device`) and tokenizer saved at `path` -> (model, tokenizer, meta).

    `path` is a checkpoint directory or a training run directory (its `checkpoint/` is used). The
    tokenizer (char, bpe or word) is rebuilt by `tokenizer_from_dict`, None if none was saved.
    Raises CheckpointError if anything is missing or wrong.
    """
    meta = read_meta(path)
    d = Path(meta["path"])
    m = meta.get("model") or {}
    if not m.get("type") or m.get("config") is None:
        raise CheckpointError(f"checkpoint {d} does not record its model config; build the model yourself "
                              "and use load_training_state(path, model)")
    try:
        model = build_model(m["type"], m["config"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"cannot rebuild the model of checkpoint {d}: {e}") from None
    _load_weights(model, d, "cpu")
    tokenizer = None
    if meta.get("tokenizer") is not None:
        try:
            tokenizer = tokenizer_from_dict(meta["tokenizer"])
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"checkpoint {d} has a broken tokenizer: {e}") from None
    return model.to(device).eval(), tokenizer, meta


def _load_tensors(f: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(f))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {f}: {e}") from None


def _load_optimizer(optimizer: torch.optim.Optimizer, meta: dict, d: Path) -> None:
    if meta.get("optimizer") is None:
        raise CheckpointError(f"checkpoint {d} has no optimizer state to resume from")
    saved_type, mine = meta["optimizer"].get("type"), type(optimizer).__name__
    if saved_type and saved_type != mine:
        trained = (meta.get("train_config") or {}).get("optimizer", "adamw")
        raise CheckpointError(f"checkpoint {d} holds {saved_type} optimizer state but this run's optimizer "
                              f"is {mine}; resume with the optimizer it was trained with "
                              f"(TrainConfig(optimizer={trained!r}))")
    tensors = _load_tensors(d / OPTIMIZER_FILE)
    state: dict[int, dict] = {}
    for key, t in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = t
    for idx, scalars in meta["optimizer"]["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = [dict(g) for g in meta["optimizer"]["param_groups"]]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"optimizer state in {d} does not fit this optimizer: {e}") from None


def load_training_state(path: str | os.PathLike, model: nn.Module, optimizer=None, device="cpu") -> dict:
    """Load weights (and optimizer state) into existing objects for resuming; returns meta with
    `rng_state` (for restore_rng_state) added."""
    meta = read_meta(path)
    d = Path(meta["path"])
    model = unwrap_model(model)
    _check_model_matches(model, meta, d)
    _load_weights(model, d, device)
    if optimizer is not None:
        _load_optimizer(optimizer, meta, d)
    # older checkpoints also hold python/numpy RNG states (meta["rng"]): nothing draws from them
    t = _load_tensors(d / RNG_FILE) if RNG_FILE in (meta.get("files") or {}) else {}
    meta["rng_state"] = rng_state_from_tensors(t)
    return meta


__all__ = [
    "FORMAT", "FORMAT_VERSION", "META_FILE", "MODEL_FILE", "OPTIMIZER_FILE", "RNG_FILE", "CheckpointError",
    "capture_rng_state", "find_resume_checkpoint", "load_checkpoint", "load_training_state", "peek",
    "read_meta", "resolve_checkpoint_dir", "restore_rng_state", "save_checkpoint", "unwrap_model",
]
