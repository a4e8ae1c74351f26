"""The two CPU fast paths of a training step, each against what it replaces, side by side.

1. Attention (attention.py): `causal_attention_matmul` (three batched matmuls, the causal mask as a
   0 / -inf bias) against `F.scaled_dot_product_attention(is_causal=True)`, forward + backward and
   forward only, for the head shapes of the CPU presets and a few longer windows. MultiHeadAttention
   takes the matmul path on a CPU up to CPU_MATMUL_MAX_T tokens.
2. Muon's Newton-Schulz iteration (optim.py): the package's `_newton_schulz`, which iterates on the
   Gram matrix of a wide matrix, against the same five steps updating X each step (written out
   below), for the matrix stacks of nanogpt-cpu (4 layers, 128 channels).
3. A whole nanogpt-cpu training step (forward, backward, clip, Muon + AdamW; batch 16 x 64 tokens)
   with MultiHeadAttention's matmul path on and off (CPU_MATMUL_MAX_T = 0 sends every call to SDPA).
4. The allocator (cpu_memory.py): the same training step in a fresh process with glibc's malloc as it
   comes against one where `keep_freed_memory()` (which `train` calls on a CPU) keeps freed blocks,
   with the page faults per step of each (malloc options are process-wide, hence the processes).

Every comparison alternates its variants --rounds times (in one process, or in fresh processes for
the allocator) and prints each round's milliseconds, the medians and their ratio; it asserts nothing
about time. Threads are set explicitly (--threads, default 2: on a busy 2-core machine two threads
can be slower than one).

    flock /tmp/shakespeare_cpu.lock python benchmarks/cpu_kernels.py

Measured (2026-12-07, the 2-core AVX2 machine, two threads, 5 rounds, medians; every round is printed):
attention forward + backward, matmul / SDPA: 0.57 at (16, 4, 64, 32), 0.54 at (32, 4, 64, 32), 0.84 at
(16, 6, 128, 64), 1.05 at (8, 6, 256, 64); forward only 0.45, 0.46, 0.84, 1.16 (hence the matmul path
only up to 128 tokens). Newton-Schulz, package / X form: 0.83 for the 48 (32, 128) query/key/value
stacks, 0.99 for (4, 128, 128) (the same X form), 0.71 and 0.68 for the (4, 128, 512) and (4, 512, 128)
feed-forward stacks. A whole nanogpt-cpu step: 108.4 ms with SDPA against 103.2 ms with the matmul
path (0.95; the rounds ranged 81-146 ms, this machine's noise). Both paths together, in alternating
whole runs of `train_speed.py --preset nanogpt-cpu` (before and after): 34.6 / 33.1, 38.6 / 35.0,
32.0 / 29.0 s. The allocator (a later session, 8 rounds of 20 steps): malloc as it comes 93.0, 83.7,
86.1, 83.4, 88.7, 84.4, 80.7, 99.3 ms a step (~1,900-3,000 page faults each), with
keep_freed_memory 72.0, 77.9, 75.7, 85.7, 80.1, 74.0, 85.6, 100.4 ms (~110-180): medians 85.2 and
79.0 ms, 0.93. On a Zen 4 machine with AVX-512 kernels (a fifth session, 5 rounds): attention matmul / SDPA
0.63, 0.61, 0.88, 1.02 (forward only 0.54, 0.53, 0.80, 1.27); Newton-Schulz 0.84, 1.01, 0.67, 0.61; a whole
step 83.2 against 89.7 ms (0.93); the allocator 72.4 against 90.7 ms (0.80). Both paths pay there too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from shakespeare_lm import attention
from shakespeare_lm.cpu_memory import ENV, glibc_mallopt, keep_freed_memory
from shakespeare_lm.model import GPT, get_preset
from shakespeare_lm.optim import JORDAN as NS  # torch.optim.Muon's coefficients
from shakespeare_lm.optim import _newton_schulz, build_optimizer, clip_grad_norm
from shakespeare_lm.training import TrainConfig


def plain_newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The iteration as Keller Jordan writes it, X <- a X + (b G + c G²) X with G = X Xᵀ, on (N, m, n)."""
    a, b, c = NS
    x = g if g.size(-2) <= g.size(-1) else g.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x if g.size(-2) <= g.size(-1) else x.mT


def ms_per_call(fn, calls: int) -> float:
    fn()  # warm-up: allocations
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return 1000 * (time.perf_counter() - start) / calls


def compare(title: str, variants: dict, rounds: int, calls: int, timer=ms_per_call) -> None:
    """Time each variant `rounds` times, alternating; print every round, the medians and the ratio."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(timer(fn, calls))
    (old, t_old), (new, t_new) = times.items()
    m_old, m_new = statistics.median(t_old), statistics.median(t_new)
    print(f"{title}: {old} {', '.join(f'{t:.2f}' for t in t_old)} ms (median {m_old:.2f}); "
          f"{new} {', '.join(f'{t:.2f}' for t in t_new)} ms (median {m_new:.2f}); "
          f"{new} / {old} = {m_new / m_old:.2f}", flush=True)


def attention_variants(shape: tuple[int, ...], backward: bool) -> dict:
    q, k, v = (torch.randn(shape, requires_grad=backward) for _ in range(3))
    grad = torch.randn(shape)

    def run(fn):
        if backward:
            return lambda: fn(q, k, v).backward(grad)
        return lambda: torch.inference_mode()(fn)(q, k, v)

    return {"SDPA": run(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
            "matmul": run(attention.causal_attention_matmul)}


def training_step(batch_size: int):
    torch.manual_seed(0)
    model = GPT(get_preset("nanogpt-cpu", vocab_size=65, dropout=0.0))
    config = TrainConfig(batch_size=batch_size, block_size=64, optimizer="muon", muon_lr=0.02, device="cpu")
    optimizer = build_optimizer(model, config)
    x, y = (torch.randint(0, 65, (batch_size, 64)) for _ in range(2))

    def step():
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)  # as train() does
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def allocator_child(kept: bool, batch_size: int, calls: int) -> None:
    """In a fresh process: time `calls` training steps after one warm-up; print JSON (ms, faults)."""
    if kept and not keep_freed_memory():
        sys.exit("keep_freed_memory() cannot set malloc's options here (not Linux with glibc)")
    step = training_step(batch_size)
    step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ms = ms_per_call(step, calls)  # its own warm-up step included in the faults, hence calls + 1
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (calls + 1)
    print(json.dumps({"ms": ms, "faults": faults}))


def allocator_comparison(args: argparse.Namespace) -> None:
    """Section 4: a fresh process per round and variant (malloc's options cannot be unset)."""
    if glibc_mallopt() is None:
        print("allocator: skipped (keep_freed_memory sets glibc's malloc options; this is not glibc)")
        return
    faults: dict[str, list[float]] = {"default": [], "kept": []}

    def in_child(setting: str, calls: int) -> float:
        cmd = [sys.executable, __file__, "--allocator-child", setting, "--threads", str(args.threads),
               "--batch-size", str(args.batch_size), "--calls", str(calls)]
        env = {**os.environ, ENV: "1" if setting == "kept" else "0"}
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        faults[setting].append(result["faults"])
        return result["ms"]

    compare(f"nanogpt-cpu training step, batch {args.batch_size} x 64 (allocator, a process each)",
            {"default": "default", "kept": "kept"}, args.rounds, max(args.calls // 4, 1), timer=in_child)
    print("page faults per step: " + "; ".join(
        f"{k} {', '.join(f'{f:.0f}' for f in v)}" for k, v in faults.items()), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=20, help="calls per timing (training steps: a quarter)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--allocator-child", choices=["default", "kept"], help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.allocator_child:
        allocator_child(args.allocator_child == "kept", args.batch_size, args.calls)
        return
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds, milliseconds per call")
    for shape in [(args.batch_size, 4, 64, 32), (32, 4, 64, 32), (16, 6, 128, 64), (8, 6, 256, 64)]:
        for backward in (True, False):
            compare(f"attention {shape} (B, nh, T, hs), {'forward + backward' if backward else 'forward'}",
                    attention_variants(shape, backward), args.rounds, args.calls)
    for shape in [(48, 32, 128), (4, 128, 128), (4, 128, 512), (4, 512, 128)]:
        g = torch.randn(shape)
        compare(f"Newton-Schulz, 5 steps, {shape}", {"X form": lambda g=g: plain_newton_schulz(g),
                                                     "package": lambda g=g: _newton_schulz(g, NS, 5, 1e-7)},
                args.rounds, args.calls)
    step, limit = training_step(args.batch_size), attention.CPU_MATMUL_MAX_T

    def with_limit(value: int):
        def run():
            attention.CPU_MATMUL_MAX_T = value
            step()
        return run

    compare(f"nanogpt-cpu training step, batch {args.batch_size} x 64 (attention path)",
            {"SDPA": with_limit(0), "matmul": with_limit(limit)}, args.rounds, max(args.calls // 4, 1))
    attention.CPU_MATMUL_MAX_T = limit
    allocator_comparison(args)


if __name__ == "__main__":
    main()
