"""Several processes, one model: the few torch.distributed helpers `train` needs under `torchrun`.

Follows nanoGPT's train.py DDP section: `torchrun` sets RANK / LOCAL_RANK / WORLD_SIZE, every
process trains a replica on its own batches, gradients are averaged by DistributedDataParallel,
and only rank 0 logs and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0  # global index of this process
    local_rank: int = 0  # index of this process on its machine (picks the GPU)
    world_size: int = 1  # number of processes training together

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, draws progress bars and writes checkpoints."""
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """Read RANK, LOCAL_RANK and WORLD_SIZE as set by `torchrun` (defaults: one process)."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"RANK / LOCAL_RANK / WORLD_SIZE must be integers: {e}") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"inconsistent distributed environment: RANK={rank}, WORLD_SIZE={world_size}")
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size)


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device, bool]:
    """Join the process group `torchrun` prepared, if any.

    Returns (info, device, started): on CUDA each process takes GPU `local_rank`; `started`
    is True when this call created the process group (and so `train` must destroy it).
    Backend: nccl on CUDA, gloo on CPU.
    """
    info = dist_info_from_env()
    if not info.enabled:
        return info, device, False
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return info, device, False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info, device, True


def all_ranks_agree(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True if `flag` is True on any rank, so every rank takes the same decision (e.g. stop)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_ranks_min(value: int, info: DistInfo, device: torch.device) -> int:
    """The smallest of every rank's `value`, so all ranks use the same number (e.g. where to stop)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def gather_tensors(t: torch.Tensor, info: DistInfo, device: torch.device) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped CPU tensor (e.g. RNG states), in rank order, on CPU."""
    if not info.enabled:
        return [t]
    t = t.to(device).contiguous()  # nccl only moves GPU tensors
    out = [torch.empty_like(t) for _ in range(info.world_size)]
    dist.all_gather(out, t)
    return [o.cpu() for o in out]
