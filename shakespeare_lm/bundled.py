"""Ready-made trained models shipped inside the package, loaded offline through the safe checkpoint loader.

Follows nanoGPT's `GPT.from_pretrained` (a name in, a ready model out), but the weights travel with
the package as package data (`weights/<name>/model.safetensors` + `meta.json`), written by the
committed script `scripts/train_pretrained.py`, whose exact command line, seed, versions, training
time and full-validation-split loss are recorded in the meta. Loading goes through
`checkpoint.load_checkpoint`, which checks every file's size and sha256 and never unpickles, so a
damaged or tampered file is refused with a one-line CheckpointError.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .checkpoint import META_FILE, CheckpointError, load_checkpoint, peek

# The models this package ships, with a one-line description each.
PRETRAINED_MODELS: dict[str, str] = {
    "cpu-small": "GPT, 4 layers, 4 heads, 128 channels, block 64 (nanoGPT's CPU recipe), trained on "
                 "Tiny Shakespeare by scripts/train_pretrained.py",
}
PROVENANCE_KEY = "provenance"  # where scripts/train_pretrained.py puts its record in meta["extra"]
REPRODUCE = "python scripts/train_pretrained.py"


def _check_name(name: str) -> None:
    if name not in PRETRAINED_MODELS:
        raise ValueError(f"unknown pretrained model {name!r}; available: {', '.join(PRETRAINED_MODELS)}")


def _model_dir(name: str, root: str | os.PathLike | None):
    """The directory (a Traversable inside the installed package, or a Path under `root`)."""
    _check_name(name)
    if root is not None:
        return Path(root) / name
    return resources.files(__package__) / "weights" / name


def _missing(name: str, where) -> CheckpointError:
    return CheckpointError(f"the pretrained model {name!r} is missing from {where}; reinstall the package "
                           f"with its data, or recreate it with: {REPRODUCE} --out {where}")


def pretrained(name: str = "cpu-small", device: str | torch.device = "cpu", *,
               root: str | os.PathLike | None = None) -> tuple[nn.Module, object]:
    """Load the bundled model `name` -> (model in eval mode on `device`, tokenizer). Offline, about a second.

    `root` is a directory holding `<name>/` checkpoint directories, for models kept elsewhere (by
    default the package's own `weights/` data). Every file is checked against the sizes and
    sha256 recorded in its meta.json: a damaged or tampered copy raises CheckpointError.
    """
    d = _model_dir(name, root)
    with resources.as_file(d) as path:  # a real directory for as long as the files are read
        if not (Path(path) / META_FILE).is_file():
            raise _missing(name, path)
        model, tokenizer, meta = load_checkpoint(path, device=device)
    if tokenizer is None:
        raise CheckpointError(f"the pretrained model {name!r} at {meta['path']} has no tokenizer")
    return model, tokenizer


def pretrained_info(name: str = "cpu-small", *, root: str | os.PathLike | None = None) -> dict:
    """How the bundled model `name` was made: its recorded provenance plus the model config and step.

    Keys: name, description, command, seed, package_version, torch_version, device, train_seconds,
    max_iters, val_loss, bits_per_char, val_tokens, step, model_config (and whatever else the
    training script recorded). Reads meta.json only (file sizes are checked, contents are not
    hashed; `pretrained` does that).
    """
    d = _model_dir(name, root)
    with resources.as_file(d) as path:
        if not (Path(path) / META_FILE).is_file():
            raise _missing(name, path)
        meta = peek(path)
    prov = (meta.get("extra") or {}).get(PROVENANCE_KEY)
    if not isinstance(prov, dict):
        raise CheckpointError(f"the pretrained model {name!r} at {meta['path']} records no provenance "
                              f"(meta.json extra.{PROVENANCE_KEY})")
    return {"name": name, "description": PRETRAINED_MODELS[name], **prov, "step": meta.get("step"),
            "model_config": (meta.get("model") or {}).get("config")}
