"""Progressive stacking: train a GPT's first blocks, then grow it by copying them (depth_schedule).

A deep model learns more per step, a shallow one costs less per step. Progressive stacking (Gong et al.
2019, "Efficient Training of BERT by Progressively Stacking"; Du et al. 2024, "Stacking Your
Transformers", whose G_stack this is) gets some of both: train only the first k blocks for a while, then
copy them on top of themselves and train the whole stack. The model keeps its architecture throughout;
only which of its blocks run changes with the step.

A depth schedule is a tuple of (step, blocks) pairs: from optimizer step `step` (0-based) on, train
the first `blocks` blocks, e.g. ((0, 2), (250, 4)) for a 4-block GPT. While a block is not trained it
is an identity (its two output projections are zero, so it adds nothing to the residual stream): the
whole model always computes what the trained blocks compute, so an estimate, a checkpoint or a run
stopped before the last growth holds a usable model. When the depth grows from k to k', block i
(k <= i < k') becomes a copy of block i % k: weights and optimizer state (Muon's momentum, AdamW's
moments and step count), so the deeper model starts where the shallow one stood.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

DepthSchedule = tuple[tuple[int, int], ...]


def check_depth_schedule(schedule: object, max_iters: int) -> DepthSchedule:
    """Validate (step, blocks) pairs and return them as a tuple of int pairs (JSON gives lists).

    The first step is 0, the steps increase and stay below max_iters, the depths increase.
    """
    try:
        pairs = tuple((s, b) for s, b in schedule)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"TrainConfig.depth_schedule must be (step, blocks) pairs such as "
                         f"((0, 2), (250, 4)), got {schedule!r}") from None
    ints = all(isinstance(v, int) and not isinstance(v, bool) for pair in pairs for v in pair)
    if not pairs or not ints or pairs[0][0] != 0 or pairs[0][1] < 1:
        raise ValueError(f"TrainConfig.depth_schedule must start at step 0 with >= 1 block and hold integer "
                         f"(step, blocks) pairs, got {schedule!r}")
    for (s0, b0), (s1, b1) in zip(pairs, pairs[1:], strict=False):
        if not (s1 > s0 and b1 > b0):
            raise ValueError(f"TrainConfig.depth_schedule: steps and depths must both increase, got "
                             f"({s0}, {b0}) then ({s1}, {b1})")
    if pairs[-1][0] >= max_iters:
        raise ValueError(f"TrainConfig.depth_schedule grows at step {pairs[-1][0]}, past max_iters "
                         f"({max_iters}); every growth must come before the last step")
    return pairs


def parse_depth_schedule(text: str) -> tuple[tuple[int, int], ...]:
    """STEP:BLOCKS pairs as the CLI takes them, "0:2,250:4" -> ((0, 2), (250, 4)); not yet validated."""
    try:
        pairs = [pair.split(":") for pair in text.split(",")]
        return tuple((int(step), int(blocks)) for step, blocks in pairs)
    except ValueError:
        raise ValueError(f"a depth schedule is STEP:BLOCKS pairs such as 0:2,250:4, got {text!r}") from None


def depth_at(schedule: DepthSchedule, step: int) -> int:
    """The number of blocks trained at optimizer step `step` (0-based)."""
    return max(blocks for start, blocks in schedule if start <= step)


def check_model(model: nn.Module, schedule: DepthSchedule) -> None:
    """The model is a GPT-like stack (model.blocks of Blocks) whose depth the schedule ends at."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or not all(_out_projections(b) for b in blocks):
        raise ValueError(f"TrainConfig.depth_schedule needs a GPT (a stack of Blocks); "
                         f"{type(model).__name__} has none")
    if schedule[-1][1] != len(blocks):
        raise ValueError(f"TrainConfig.depth_schedule ends at {schedule[-1][1]} blocks but the model has "
                         f"{len(blocks)}; end the schedule at the model's n_layer")


def _out_projections(block: nn.Module) -> list[nn.Linear]:
    """The two Linears of a Block that write into the residual stream (attention's and the MLP's)."""
    proj = getattr(getattr(block, "sa", None), "proj", None)
    net = getattr(getattr(block, "ffwd", None), "net", None)
    mlp_out = net[2] if isinstance(net, nn.Sequential) and len(net) > 2 else None
    both = [proj, mlp_out]
    return both if all(isinstance(m, nn.Linear) for m in both) else []


@torch.no_grad()
def make_identity(block: nn.Module) -> None:
    """Zero the block's output projections (weights and biases): x + 0 + 0, the block adds nothing."""
    for linear in _out_projections(block):
        linear.weight.zero_()
        if linear.bias is not None:
            linear.bias.zero_()


def _is_identity(block: nn.Module) -> bool:
    return all(not p.any() for linear in _out_projections(block) for p in linear.parameters())


def start(model: nn.Module, schedule: DepthSchedule) -> None:
    """A fresh run: every block above the first depth becomes an identity until it is grown."""
    for block in model.blocks[depth_at(schedule, 0):]:
        make_identity(block)


def _optimizers(optimizer) -> list[torch.optim.Optimizer]:
    parts = getattr(optimizer, "parts", None)  # optim.MuonAdamW
    return list(parts.values()) if parts is not None else [optimizer]


@torch.no_grad()
def grow(model: nn.Module, optimizer, old_depth: int, new_depth: int) -> None:
    """Blocks old_depth..new_depth-1 become copies of blocks i % old_depth, weights and optimizer state."""
    blocks, optimizers = model.blocks, _optimizers(optimizer)
    for i in range(old_depth, new_depth):
        src, dst = blocks[i % old_depth], blocks[i]
        for p_src, p_dst in zip(src.parameters(), dst.parameters(), strict=True):
            p_dst.copy_(p_src)
            for opt in optimizers:
                if p_src in opt.state:
                    opt.state[p_dst] = copy.deepcopy(opt.state[p_src])


class Stacking:
    """What `train` keeps of a depth schedule: the depth grown so far, and the stacks of first blocks
    it runs in place of model.blocks. With schedule None every call is a no-op (all blocks train)."""

    def __init__(self, model: nn.Module, schedule: DepthSchedule | None, step: int, fresh: bool):
        self.model, self.schedule, self._stacks = model, schedule, {}
        if schedule is None:
            return
        # at `step` the steps before it have run: a growth due at `step` itself is still to come
        self.depth = depth_at(schedule, max(step - 1, 0))
        if fresh:
            start(model, schedule)
            return
        trained = [i for i, b in enumerate(model.blocks) if i >= self.depth and not _is_identity(b)]
        if trained:  # a resumed run under another schedule would skip blocks that compute something
            raise ValueError(f"TrainConfig.depth_schedule trains {self.depth} blocks at step {step}, but "
                             f"block {trained[0]} of the model is already trained; resume with the run's own "
                             "schedule")

    def before_step(self, step: int, optimizer) -> None:
        """Grow the model if the schedule deepens it at optimizer step `step` (0-based)."""
        if self.schedule is not None and depth_at(self.schedule, step) > self.depth:
            new = depth_at(self.schedule, step)
            grow(self.model, optimizer, self.depth, new)
            self.depth = new

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Run the model with only its grown blocks (the same modules) in place of model.blocks."""
        if self.schedule is None or self.depth == len(self.model.blocks):
            yield
            return
        full = self.model.blocks
        if self.depth not in self._stacks:  # one object per depth: torch.compile's guards see the same
            self._stacks[self.depth] = full[:self.depth]
        self.model.blocks = self._stacks[self.depth]
        try:
            yield
        finally:
            self.model.blocks = full


__all__ = ["DepthSchedule", "Stacking", "check_depth_schedule", "check_model", "depth_at", "grow",
           "make_identity", "parse_depth_schedule", "start"]
