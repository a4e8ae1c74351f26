"""Checkpoints you can open safely: weights and optimizer tensors in safetensors, the rest in JSON.

Follows nanoGPT's ckpt.pt contents (model args, model, optimizer, iter_num, best_val_loss,
config), split into files that never need pickle, written to a temporary directory and renamed
so a crash at any moment leaves the previous checkpoint intact.

A checkpoint directory holds:
  model.safetensors      weights of the bare model (no `_orig_mod.` / `module.` prefixes)
  optimizer.safetensors  optimizer state tensors, keyed `state.<param index>.<name>`
  rng.safetensors        torch CPU / CUDA / data-order generator states
  meta.json              model type + config, train config, tokenizer, step, best val loss,
                         optimizer param groups, python/numpy RNG, file sizes + sha256, version
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from .tokenizer import CharTokenizer

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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


# --- RNG states -------------------------------------------------------------------------------

def capture_rng_state(data_generator: torch.Generator | None = None, *, info=None, device=None) -> dict:
    """Every RNG that affects training: torch CPU (dropout), CUDA, python, numpy, and the data order.

    Under DDP (`info` from distributed.py) this is collective: the torch CPU and data-generator
    states of every rank are gathered (index = rank), so a resumed run continues all of them.
    """
    from .distributed import DistInfo, gather_tensors

    info = info or DistInfo()
    device = device or torch.device("cpu")
    state: dict[str, Any] = {
        "torch_cpu": gather_tensors(torch.get_rng_state(), info, device),
        "data_generator": [] if data_generator is None
        else gather_tensors(data_generator.get_state(), info, device),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": _jsonable(random.getstate()),
    }
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached)}
    return state


def restore_rng_state(state: dict, data_generator: torch.Generator | None = None, *, rank: int = 0) -> None:
    """Put back what `capture_rng_state` saved (this rank's share of it)."""
    cpu = state.get("torch_cpu") or []
    if cpu:
        torch.set_rng_state(cpu[min(rank, len(cpu) - 1)])
    gens = state.get("data_generator") or []
    if data_generator is not None and rank < len(gens):
        data_generator.set_state(gens[rank])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    if state.get("python"):
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if state.get("numpy"):
        n = state["numpy"]
        np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))


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


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    tokenizer: CharTokenizer | None = None,
    train_config=None,
    *,
    step: int = 0,
    best_val_loss: float | None = None,
    rng_state: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint directory at `path`, atomically replacing any previous one there.

    Everything goes to a temporary sibling directory first; the old checkpoint is renamed aside
    only once the new one is complete, then removed. `extra` is any JSON (history, data source).
    """
    from . import __version__

    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not (path / META_FILE).is_file() and any(path.iterdir()):
        raise CheckpointError(f"refusing to replace {path}: it exists and is not a checkpoint directory")
    model = unwrap_model(model)
    config = getattr(model, "config", None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    try:
        files = [MODEL_FILE]
        save_model(model, str(tmp / MODEL_FILE), metadata={"format": "pt"})  # dedupes tied weights
        meta: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "torch_version": torch.__version__,
            "model": {
                "type": type(model).__name__,
                "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None,
            },
            "train_config": _jsonable(dataclasses.asdict(train_config)) if train_config is not None else None,
            "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
            "step": int(step),
            "best_val_loss": None if best_val_loss is None else float(best_val_loss),
            "optimizer": None,
            "rng": None,
            "extra": _jsonable(extra or {}),
        }
        if optimizer is not None:
            tensors, structure = _optimizer_to_files(optimizer)
            save_file(tensors, str(tmp / OPTIMIZER_FILE))
            files.append(OPTIMIZER_FILE)
            meta["optimizer"] = structure
        if rng_state is not None:
            tensors = {f"torch_cpu.{i}": t for i, t in enumerate(rng_state.get("torch_cpu") or [])}
            tensors |= {f"data_generator.{i}": t for i, t in enumerate(rng_state.get("data_generator") or [])}
            tensors |= {f"cuda.{i}": t.cpu() for i, t in enumerate(rng_state.get("cuda") or [])}
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / RNG_FILE))
            files.append(RNG_FILE)
            meta["rng"] = {"python": rng_state.get("python"), "numpy": rng_state.get("numpy")}
        for name in files:
            _fsync(tmp / name)
        meta["files"] = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
                         for name in files}
        with open(tmp / META_FILE, "w", encoding="utf-8") as f:  # last: its presence marks completeness
            json.dump(meta, f, indent=1, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        _fsync(tmp)
        old = parent / f".{path.name}.old"
        if path.exists():
            if old.exists():
                shutil.rmtree(old)  # stale: `path` itself is the newer checkpoint
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path


# --- loading ----------------------------------------------------------------------------------

def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """The checkpoint directory for `path`: itself, its `checkpoint/` (a run directory), or the
    `.name.old` copy a save left behind if it was killed between its two renames."""
    p = Path(path).expanduser()
    candidates = [p, p / "checkpoint", p.parent / f".{p.name}.old", p / ".checkpoint.old"]
    for c in candidates:
        if (c / META_FILE).is_file():
            return c
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: the path does not exist")
    raise CheckpointError(f"no checkpoint at {p}: expected {p / META_FILE} (a checkpoint directory) "
                          f"or {p / 'checkpoint' / META_FILE} (a training run directory)")


def find_resume_checkpoint(path: str | os.PathLike) -> Path:
    """For resuming: the newest (highest step) of a run directory's `checkpoint/` and `interrupted/`."""
    p = Path(path).expanduser()
    if (p / META_FILE).is_file():
        return p
    found = []
    for name in ("checkpoint", "interrupted"):
        with contextlib.suppress(CheckpointError):
            d = resolve_checkpoint_dir(p / name)
            found.append((read_meta(d)["step"], name == "interrupted", d))
    if not found:
        return resolve_checkpoint_dir(p)  # raises a helpful error (or finds a recovered copy)
    return max(found)[2]


def read_meta(path: str | os.PathLike, *, verify: bool = True) -> dict:
    """meta.json of a checkpoint, after checking that every file it lists is present and intact."""
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
        size = f.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"checkpoint {d} is corrupted: {name} has {size} bytes, expected "
                                  f"{info['bytes']} (truncated copy?)")
        if verify and _sha256(f) != info["sha256"]:
            raise CheckpointError(f"checkpoint {d} is corrupted: {name} does not match its sha256")
    meta["path"] = str(d)
    return meta


def _load_weights(model: nn.Module, d: Path, device: str | torch.device) -> None:
    try:
        missing, unexpected = load_model(model, str(d / MODEL_FILE), strict=False, device=str(device))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {d / MODEL_FILE}: {e}") from None
    except RuntimeError as e:  # shape mismatch
        raise CheckpointError(f"weights in {d} do not fit this model: {str(e).splitlines()[0]}") from None
    if missing or unexpected:
        raise CheckpointError(f"weights in {d} do not fit this model: missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]}")


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

    `path` is a checkpoint directory or a training run directory (its `checkpoint/` is used).
    tokenizer is None if none was saved. Raises CheckpointError if anything is missing or wrong.
    """
    from .model import build_model

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
            tokenizer = CharTokenizer.from_dict(meta["tokenizer"])
        except ValueError as e:
            raise CheckpointError(f"checkpoint {d} has a broken tokenizer: {e}") from None
    return model.to(device).eval(), tokenizer, meta


def load_training_state(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Load weights (and optimizer state) into existing objects for resuming; returns meta with
    `rng_state` (for restore_rng_state) added."""
    meta = read_meta(path)
    d = Path(meta["path"])
    model = unwrap_model(model)
    _check_model_matches(model, meta, d)
    _load_weights(model, d, device)
    if optimizer is not None:
        if meta.get("optimizer") is None:
            raise CheckpointError(f"checkpoint {d} has no optimizer state to resume from")
        try:
            tensors = load_file(str(d / OPTIMIZER_FILE))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"cannot read {d / OPTIMIZER_FILE}: {e}") from None
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
    rng: dict[str, Any] = {}
    if meta.get("rng") is not None:
        try:
            tensors = load_file(str(d / RNG_FILE))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"cannot read {d / RNG_FILE}: {e}") from None
        for prefix in ("torch_cpu", "data_generator", "cuda"):
            keys = [k for k in tensors if k.startswith(prefix + ".")]
            keys.sort(key=lambda k: int(k.split(".")[1]))
            rng[prefix] = [tensors[k] for k in keys]
        rng.update(meta["rng"])
    meta["rng_state"] = rng
    return meta
