"""Every random number generator training draws from, captured for a checkpoint and put back on resume.

Follows torch.random's get_rng_state/set_rng_state (nanoGPT only seeds each run): torch CPU (dropout),
CUDA and the data-order generator, gathered from every rank under DDP. checkpoint.py saves them as
rng.safetensors, keyed `<key>.<index>`.
"""

from __future__ import annotations

import torch

from .distributed import DistInfo, gather_tensors

RNG_KEYS = ("torch_cpu", "data_generator", "cuda")


def capture_rng_state(data_generator: torch.Generator | None = None, *, info=None, device=None) -> dict:
    """Every RNG that training draws from: torch CPU (dropout), CUDA, and the data order.

    Under DDP (`info` from distributed.py) this is collective: the torch CPU and data-generator
    states of every rank are gathered (index = rank), so a resumed run continues all of them.
    """
    info = info or DistInfo()
    device = device or torch.device("cpu")
    return {
        "torch_cpu": gather_tensors(torch.get_rng_state(), info, device),
        "data_generator": [] if data_generator is None
        else gather_tensors(data_generator.get_state(), info, device),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


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


def rng_state_to_tensors(state: dict) -> dict[str, torch.Tensor]:
    """`capture_rng_state`'s lists as flat safetensors entries `<key>.<index>`."""
    return {f"{key}.{i}": t.cpu().contiguous()
            for key in RNG_KEYS for i, t in enumerate(state.get(key) or [])}


def rng_state_from_tensors(tensors: dict[str, torch.Tensor]) -> dict:
    """The inverse of `rng_state_to_tensors`: {key: [tensor per index]}, every key present."""
    state: dict = {key: [] for key in RNG_KEYS}
    for name in sorted(tensors, key=lambda k: int(k.rsplit(".", 1)[1])):  # "torch_cpu.<rank>"
        state[name.rsplit(".", 1)[0]].append(tensors[name])
    return state
