"""How fast a step runs: the autocast dtype to train in (mixed precision), and torch.compile.

Follows nanoGPT's `ptdtype` / `ctx` setup (bf16 where supported, fp16 with a GradScaler on older
GPUs) and its `compile` flag, plus a CPU rule measured on 2-core AMX Xeons: bf16 pays off only for
bigger models.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

DTYPES = ("auto", "float32", "bfloat16", "float16")
COMPILE_MODES = ("off", "auto", "on")

# On CPU, bf16 autocast pays off only for bigger matmuls. Measured on a 2-core AMX Xeon (train
# step, bf16 vs fp32): 0.8M params (4 layers/128, block 64) 1.5-2.6x SLOWER; 3.2M (4 layers/256,
# block 128) 1.3x faster; 10.7M (6 layers/384, block 256) 1.6-2x faster. "auto" therefore picks
# bf16 on CPU from this many parameters up.
CPU_BF16_MIN_PARAMS = 2_000_000


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matmuls (AVX512-BF16 / AMX) for autocast."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str, device: torch.device, model: nn.Module | None = None) -> torch.dtype:
    """The autocast compute dtype for `dtype` ("auto" | "float32" | "bfloat16" | "float16") on `device`.

    "auto": bf16 on CUDA if supported, else fp16 (with a GradScaler); on CPU bf16 only when the
    CPU supports it and the model has at least CPU_BF16_MIN_PARAMS parameters; fp32 elsewhere.
    """
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("dtype 'bfloat16' is not supported by this GPU; use 'float16' or 'float32'")
        if device.type == "cpu" and not cpu_supports_bf16():
            raise ValueError("dtype 'bfloat16' is not supported by this CPU; use 'float32'")
        return torch.bfloat16
    if dtype == "float16":
        if device.type != "cuda":
            raise ValueError(f"dtype 'float16' needs a CUDA GPU (GradScaler); on {device.type} use "
                             "'bfloat16' or 'float32'")
        return torch.float16
    if dtype != "auto":
        raise ValueError(f"dtype must be one of {', '.join(map(repr, DTYPES))}, got {dtype!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and model is not None and cpu_supports_bf16():
        n_params = sum(p.numel() for p in model.parameters())
        return torch.bfloat16 if n_params >= CPU_BF16_MIN_PARAMS else torch.float32
    return torch.float32


def autocast_context(device: torch.device, dtype: torch.dtype):
    """torch.autocast for a reduced dtype, or a no-op for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def compile_model(model: nn.Module, mode: str, device: torch.device, dtype: torch.dtype,
                  batch: tuple[torch.Tensor, torch.Tensor]) -> nn.Module:
    """torch.compile per TrainConfig.compile ("off" | "auto" | "on"), decided by a trial on `batch`.

    "auto" compiles on CUDA only: on CPU, compiling these small models costs more seconds than it
    saves in a short run. The trial runs a training step's forward and backward and an eval forward
    (so both graphs compile now, not in the loop), leaving the RNG and the gradients as they were.
    If it fails, "on" raises and "auto" warns and returns the eager model.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(map(repr, COMPILE_MODES))}, got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return model
    compiled = torch.compile(model)
    x, y = batch  # (B, T)
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # dropout's RNG
            model.train()
            with autocast_context(device, dtype):
                _, loss = compiled(x, y)
            loss.backward()
            model.eval()
            with torch.no_grad(), autocast_context(device, dtype):
                compiled(x, y)
    except Exception as e:
        if mode == "on":
            raise
        first_line = (str(e).strip().splitlines() or [""])[0]
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {first_line}); training uncompiled",
                      stacklevel=2)
        return model
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return compiled
