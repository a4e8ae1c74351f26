"""The optimizer and its learning-rate schedule: AdamW (or Muon + AdamW), warmup + cosine or WSD.

Follows nanoGPT's `configure_optimizers` (weight decay on matrices and embeddings only) and its
`get_lr` (linear warmup, cosine decay to min_lr); "wsd" is warmup-stable-decay (Hägele et al. 2024).
The "muon" choice follows Keller Jordan's Muon (2024) as used in modded-nanogpt: torch.optim.Muon
for the weight matrices inside the transformer blocks, AdamW for embeddings, lm_head, gains, biases.
"""

from __future__ import annotations

import inspect
import math
from collections import ChainMap
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .train_config import MUON_NS as NS_SCHEDULES

MUON_LR = 0.02  # Muon's peak LR when TrainConfig.muon_lr is None (the Muon reference implementation's)
MUON_MOMENTUM = 0.95  # ... and its momentum when TrainConfig.muon_momentum is None (torch.optim.Muon's)


def param_groups(model: nn.Module, weight_decay: float, embedding_lr_mult: float = 1.0,
                 exclude: Iterable[nn.Parameter] = ()) -> list[dict]:
    """nanoGPT's split: weights with dim >= 2 (matmuls, embeddings) decay; biases and LayerNorm don't.

    Each group carries an "lr_mult" that `train` multiplies the scheduled LR by. With
    embedding_lr_mult != 1 the embedding tables (nn.Embedding weights; GPT's tied lm_head is the
    token embedding) get a third group of their own with that multiplier. Tied weights appear once.
    Parameters in `exclude` (those another optimizer updates) are left out.
    """
    skip = {id(p) for p in exclude}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in skip]  # dedupes tied weights
    embedding_ids = set()
    if embedding_lr_mult != 1.0:
        embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay = [p for p in params if p.dim() >= 2 and id(p) not in embedding_ids]
    embeddings = [p for p in params if id(p) in embedding_ids]
    no_decay = [p for p in params if p.dim() < 2 and id(p) not in embedding_ids]
    groups = [{"params": decay, "weight_decay": weight_decay, "lr_mult": 1.0}]
    if embeddings:
        groups.append({"params": embeddings, "weight_decay": weight_decay, "lr_mult": embedding_lr_mult})
    groups.append({"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0})
    return [g for g in groups if g["params"]]


def configure_optimizer(
    model: nn.Module,
    learning_rate: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0.1,
    embedding_lr_mult: float = 1.0,
    *,
    device: torch.device | str = "cpu",
    exclude: Iterable[nn.Parameter] = (),
) -> torch.optim.AdamW:
    """AdamW over `param_groups`, using the fused kernel where this torch build has one for `device`."""
    groups = param_groups(model, weight_decay, embedding_lr_mult, exclude)
    kwargs: dict[str, Any] = {"lr": learning_rate, "betas": tuple(betas)}
    device = torch.device(device)
    if "fused" in inspect.signature(torch.optim.AdamW).parameters and device.type in ("cuda", "cpu"):
        kwargs["fused"] = True
    try:
        return torch.optim.AdamW(groups, **kwargs)
    except (RuntimeError, ValueError):  # fused not supported for this device/dtype
        kwargs.pop("fused", None)
        return torch.optim.AdamW(groups, **kwargs)


def muon_params(model: nn.Module) -> list[nn.Parameter]:
    """The weight matrices Muon updates: every nn.Linear weight except the output head (`lm_head`,
    tied or not) and any weight shared with an embedding table; in a GPT these are exactly the
    blocks' query/key/value, projection and feed-forward matrices. Embeddings, gains and biases
    stay with AdamW, as in modded-nanogpt (Muon orthogonalises hidden-layer updates only)."""
    head = getattr(model, "lm_head", None)
    skip = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    if head is not None:
        skip.add(id(head.weight))
    matrices = []
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.weight.requires_grad and id(m.weight) not in skip:
            skip.add(id(m.weight))  # a shared weight appears once
            matrices.append(m.weight)
    return matrices


JORDAN = (3.4445, -4.775, 2.0315)  # Keller Jordan's quintic, every step (torch.optim.Muon's default)
# Amsel, Persson, Musco & Gower 2025, "The Polar Express" (Algorithm 1): a different degree-5 polynomial
# for each step, each the minimax-best one for the singular values the step before leaves; from the 8th
# step on the last one. All but the last are evaluated at x / 1.01 (a, b, c divided by 1.01, 1.01³,
# 1.01⁵; the input's norm scaled by 1.01 too): the paper's safety margin against rounding.
POLAR_EXPRESS = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
POLAR_EXPRESS_SAFETY = 1.01


def ns_coefficients(schedule: str, steps: int) -> tuple[list[tuple[float, float, float]], float]:
    """(a, b, c) for each of `steps` Newton-Schulz steps, and the factor the input's norm is scaled by.

    "jordan": JORDAN every step, the input divided by its Frobenius norm (torch.optim.Muon).
    "polar-express": POLAR_EXPRESS's steps with the paper's safety factor 1.01.
    """
    if schedule == "jordan":
        return [JORDAN] * steps, 1.0
    if schedule != "polar-express":
        raise ValueError(f"Newton-Schulz schedule must be one of {', '.join(map(repr, NS_SCHEDULES))}, "
                         f"got {schedule!r}")
    s, last = POLAR_EXPRESS_SAFETY, len(POLAR_EXPRESS) - 1
    return [(a / s, b / s**3, c / s**5) if i < last else (a, b, c)
            for i, (a, b, c) in enumerate(POLAR_EXPRESS[min(k, last)] for k in range(steps))], s


def _newton_schulz(g: torch.Tensor, coefficients, steps: int, eps: float,
                   norm_scale: float = 1.0) -> torch.Tensor:
    """torch.optim.Muon's quintic Newton-Schulz iteration for a stack of matrices (N, m, n), in g's dtype.

    `coefficients` is one (a, b, c) for every step (torch's) or a list of `steps` of them (one per
    step, see ns_coefficients); the input is first divided by norm_scale x its Frobenius norm.
    Each step is X <- a X + b (X Xᵀ) X + c (X Xᵀ)² X = P(G) X with G = X Xᵀ (m x m, m <= n), so every
    iterate is Q X₀ for a small m x m matrix Q, and the Gram matrices follow each other as
    G <- P G P. For a wide matrix (n >= 2m: the 128 x 512 feed-forward weights) iterating on G and Q
    and multiplying by X₀ once at the end costs ~40% fewer FLOPs than updating X every step; the
    result is the same up to float rounding (tests/test_muon.py). Square-ish matrices keep X's form.
    """
    one = len(coefficients) > 0 and isinstance(coefficients[0], int | float)  # one (a, b, c), or one per step
    schedule = [tuple(coefficients)] * steps if one else list(coefficients)
    if len(schedule) != steps:
        raise ValueError(f"{len(schedule)} coefficient triples for {steps} Newton-Schulz steps")
    wide = g.size(-2) <= g.size(-1)
    x = g if wide else g.mT  # (N, m, n) with m <= n: the Gram matrices stay small
    x = x / (x.norm(dim=(-2, -1), keepdim=True) * norm_scale).clamp(min=eps)  # spectral norm <= 1
    if steps == 0 or x.size(-1) < 2 * x.size(-2):  # the usual form: X itself each step
        for a, b, c in schedule:
            gram = x @ x.mT  # (N, m, m)
            x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)  # (N, m, n)
        return x if wide else x.mT
    gram = x @ x.mT  # (N, m, m)
    eye = torch.eye(gram.size(-1), dtype=gram.dtype, device=gram.device)  # (m, m)
    q = None  # (N, m, m): the product of the steps' P
    for i, (a, b, c) in enumerate(schedule):
        p = torch.baddbmm(gram, gram, gram, beta=b, alpha=c).add_(eye, alpha=a)  # P = aI + bG + cG²
        q = p if q is None else p @ q
        if i < steps - 1:
            gram = p @ gram @ p  # the next X's Gram matrix, P G Pᵀ (P is symmetric)
    x = q @ x  # (N, m, n)
    return x if wide else x.mT


class Muon(torch.optim.Muon):
    """torch.optim.Muon with, on the CPU, its Newton-Schulz step in float32 and batched over the
    matrices of one shape (the heads' query/key/value weights). torch orthogonalises in bfloat16,
    which CPUs without native bf16 emulate ~10-30x slower than float32 (~1 s a step for the
    4-layer cpu-small GPT, against ~0.05 s here). Same state and update rule; other devices run
    torch's own step. ns_schedule="polar-express" replaces Jordan's coefficients with the Polar
    Express ones (see ns_coefficients), on every device (in float32)."""

    def __init__(self, params, *args, ns_schedule: str = "jordan", **kwargs):
        ns_coefficients(ns_schedule, 0)  # a clear error for an unknown schedule
        super().__init__(params, *args, **kwargs)
        for group in self.param_groups:
            group["ns_schedule"] = ns_schedule

    @torch.no_grad()
    def step(self, closure=None):
        jordan = all(g.get("ns_schedule", "jordan") == "jordan" for g in self.param_groups)
        if jordan and any(p.device.type != "cpu" for g in self.param_groups for p in g["params"]):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # torch's own bookkeeping: the params with a gradient and their momentum buffers (zeros at first)
            params_with_grad: list[torch.Tensor] = []
            grads_of: list[torch.Tensor] = []
            bufs_of: list[torch.Tensor] = []
            self._init_group(group, params_with_grad, grads_of, bufs_of)
            by_shape: dict[torch.Size, list[tuple[torch.Tensor, ...]]] = {}
            for pgb in zip(params_with_grad, grads_of, bufs_of, strict=True):
                by_shape.setdefault(pgb[0].shape, []).append(pgb)
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            schedule = group.get("ns_schedule", "jordan")  # a checkpoint from before the option: Jordan's
            if schedule == "jordan":  # torch's own group setting (Jordan's unless a caller chose others)
                coefficients, norm_scale = group["ns_coefficients"], 1.0
            else:
                coefficients, norm_scale = ns_coefficients(schedule, group["ns_steps"])
            for shape, same_shape in by_shape.items():
                params, grads, bufs = (list(t) for t in zip(*same_shape, strict=True))
                torch._foreach_lerp_(bufs, grads, 1 - momentum)
                update = torch.stack(bufs)  # (N, out, in)
                if group["nesterov"]:
                    update = torch.stack(grads).lerp_(update, momentum)
                update = _newton_schulz(update.float(), coefficients, group["ns_steps"], group["eps"],
                                        norm_scale)  # (N, out, in)
                if group["adjust_lr_fn"] == "match_rms_adamw":
                    scale = 0.2 * math.sqrt(max(shape))
                else:  # "original"
                    scale = math.sqrt(max(1, shape[0] / shape[1]))
                if lr * decay:
                    torch._foreach_mul_(params, 1 - lr * decay)
                torch._foreach_add_(params, list(update.to(params[0].dtype).unbind(0)), alpha=-lr * scale)
        return loss


class MuonAdamW:
    """torch.optim.Muon for the block matrices and AdamW for the rest, used as one optimizer.

    `param_groups` lists Muon's groups, then AdamW's (so `train` schedules every LR in one loop,
    each group by its "lr_mult"); `step`, `zero_grad`, `state_dict` and `load_state_dict` act on
    both. The state dict numbers the parameters across both, as one torch optimizer would, and
    tags each group with "optimizer", so checkpoints store it like AdamW's and resume it exactly.
    """

    def __init__(self, muon: Muon | None, adamw: torch.optim.AdamW | None):
        self.parts = {name: o for name, o in (("muon", muon), ("adamw", adamw)) if o is not None}
        if not self.parts:
            raise ValueError("MuonAdamW needs a Muon or an AdamW optimizer (the model has no parameters?)")

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.parts.values() for g in o.param_groups]

    @property
    def state(self) -> ChainMap:
        """Every parameter's state, read-only: plain dicts, so that looking up an AdamW parameter does
        not plant an empty entry in Muon's defaultdict (which would break Muon's state_dict)."""
        return ChainMap(*(dict(o.state) for o in self.parts.values()))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for o in self.parts.values():
            o.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.parts.values():
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for name, o in self.parts.items():
            sd = o.state_dict()
            state.update({offset + i: s for i, s in sd["state"].items()})
            groups += [{**g, "params": [offset + i for i in g["params"]], "optimizer": name}
                       for g in sd["param_groups"]]
            offset += sum(len(g["params"]) for g in o.param_groups)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = [g.get("optimizer") for g in state_dict["param_groups"]]
        mine = [name for name, o in self.parts.items() for _ in o.param_groups]
        if saved != mine:
            raise ValueError(f"the saved parameter groups belong to {saved}, this optimizer's to {mine}")
        offset = 0
        for name, o in self.parts.items():
            n = sum(len(g["params"]) for g in o.param_groups)
            groups = []
            for g in state_dict["param_groups"]:
                if g["optimizer"] == name:
                    g = {k: v for k, v in g.items() if k != "optimizer"}
                    g["params"] = [i - offset for i in g["params"]]
                    if "ns_coefficients" in g:
                        g["ns_coefficients"] = tuple(g["ns_coefficients"])  # JSON gives a list
                    groups.append(g)
            state = {i - offset: s for i, s in state_dict["state"].items() if offset <= int(i) < offset + n}
            o.load_state_dict({"state": state, "param_groups": groups})
            offset += n


def build_optimizer(model: nn.Module, config: Any, device: torch.device | str = "cpu"):
    """The optimizer a TrainConfig asks for: AdamW (`configure_optimizer`), or for "muon" a MuonAdamW
    with Muon on `muon_params` at peak LR muon_lr (lr_mult = muon_lr / learning_rate, so get_lr's
    warmup and decay scale it too), momentum muon_momentum and Newton-Schulz muon_ns over muon_ns_steps
    steps, and AdamW on every other parameter, as configure_optimizer groups them."""
    if config.optimizer == "adamw":
        return configure_optimizer(model, config.learning_rate, config.betas, config.weight_decay,
                                   config.embedding_lr_mult, device=device)
    matrices = muon_params(model)
    adamw, ids = None, {id(p) for p in matrices}
    if any(p.requires_grad and id(p) not in ids for p in model.parameters()):
        adamw = configure_optimizer(model, config.learning_rate, config.betas, config.weight_decay,
                                    config.embedding_lr_mult, device=device, exclude=matrices)
    muon_lr = MUON_LR if config.muon_lr is None else config.muon_lr
    muon = None
    if matrices:
        # "original": the update's scale grows as sqrt(max(1, fan_out / fan_in)) (Keller Jordan's Muon)
        momentum = MUON_MOMENTUM if config.muon_momentum is None else config.muon_momentum
        muon = Muon([{"params": matrices, "lr_mult": muon_lr / config.learning_rate}], lr=muon_lr,
                    weight_decay=config.weight_decay, momentum=momentum, ns_steps=config.muon_ns_steps,
                    adjust_lr_fn="original", ns_schedule=config.muon_ns)
    return MuonAdamW(muon, adamw)


def clip_grad_norm(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ with the same result (the L2 norm of all gradients together;
    scaled down to max_norm when above it), cheaper on a CPU: one batched norm where torch loops over
    the tensors there, and no multiplication by 1 when the norm is below max_norm, as it is in most
    steps (85% of train_speed's nanogpt-cpu run). Other devices call torch's, which avoids a sync."""
    params = [p for p in parameters if p.grad is not None]
    if not params or params[0].grad.device.type != "cpu":
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # torch's arithmetic, so the same numbers
    if coef < 1:
        torch._foreach_mul_(grads, coef)
    return total


def get_lr(step: int, config: Any) -> float:
    """LR for optimizer step `step` (0-based) under a TrainConfig: linear warmup, then a cosine decay
    to min_lr ("cosine"), or the peak held and then a linear decay to min_lr over the last
    decay_fraction of the decay_iters steps ("wsd"). Past decay_iters the LR stays at min_lr."""
    lr, min_lr = config.learning_rate, config.final_lr
    warmup, decay_iters = config.warmup_iters, config.decay_iters
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= decay_iters:
        return min_lr
    if config.lr_schedule == "wsd":
        decay_start = max(warmup, decay_iters - round(config.decay_fraction * decay_iters))
        if step < decay_start:
            return lr
        return lr + (min_lr - lr) * (step - decay_start) / (decay_iters - decay_start)
    ratio = (step - warmup) / (decay_iters - warmup)  # 0 -> 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return min_lr + coeff * (lr - min_lr)


def steps_that_fit(step: int, seconds_left: float, seconds_per_step: float, max_iters: int) -> int:
    """The step a run at `step` reaches in `seconds_left` at `seconds_per_step`: at least step + 1
    (finish the step under way), at most max_iters. `train` ends a time-budgeted schedule there
    (TrainConfig.fit_schedule_to_time)."""
    fit = step + int(max(seconds_left, 0.0) / seconds_per_step) if seconds_per_step > 0 else max_iters
    return min(max_iters, max(step + 1, fit))
