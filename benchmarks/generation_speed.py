"""Measure generation speed with and without the KV cache (tokens per second, median of several runs).

Follows nanoGPT's sample.py setting: random weights of a preset architecture (default the lecture's
baby-gpt: 6 layers, 6 heads, 384 channels, block 256), vocab 65, one sequence, fp32 on the CPU.
Both variants run in one process, alternating, so machine noise hits them alike. Prints a figure;
asserts nothing about time. Run with `flock /tmp/shakespeare_cpu.lock python benchmarks/generation_speed.py`.
With --pos-encoding rope the cache slides by one token per step (kvcache.py), so the lecture's
stride 1 is fast too; uncached steps then run the sliding-window model over its whole reach.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from shakespeare_lm.model import GPT, PRESETS, get_preset
from shakespeare_lm.model_config import POS_ENCODINGS
from shakespeare_lm.sampling import _iter_tokens  # generate() without the final torch.cat


def time_generation(
    model: GPT, tokens: int, use_cache: bool, seed: int, window_stride: int = 1
) -> tuple[list[float], torch.Tensor]:
    """Generate `tokens` new tokens from a one-token context (the same steps as `generate`).

    Returns the seconds elapsed when each token was ready, and the tokens (1, 1 + tokens).
    """
    idx = torch.zeros(1, 1, dtype=torch.long)  # (1, 1) start from token 0, as in the lecture
    gen = torch.Generator().manual_seed(seed)
    stamps, new = [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for tok in _iter_tokens(model, idx, tokens, 1.0, None, None, gen, use_cache, window_stride):
            new.append(tok)
            stamps.append(time.perf_counter() - start)
    return stamps, torch.cat([idx, *new], dim=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="baby-gpt", choices=sorted(PRESETS))
    parser.add_argument("--tokens", type=int, default=1000, help="new tokens per generation")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--window-stride", type=int, default=64,
        help="generate()'s window_stride for the headline figure (1 = the lecture's crop, also shown)",
    )
    parser.add_argument("--pos-encoding", default="learned", choices=POS_ENCODINGS,
                        help="position encoding of the model (rope: the cache slides, any stride)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    config = get_preset(args.preset, vocab_size=65, dropout=0.0, pos_encoding=args.pos_encoding)
    model = GPT(config).eval()
    print(
        f"preset {args.preset}: {config.n_layer} layers, {config.n_head} heads, n_embd {config.n_embd}, "
        f"block_size {config.block_size}, {config.pos_encoding} positions, "
        f"{model.num_parameters() / 1e6:.2f}M parameters; "
        f"{args.tokens} new tokens, {args.runs} runs, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}"
    )
    time_generation(model, 8, use_cache=False, seed=0)  # warm-up
    time_generation(model, 8, use_cache=True, seed=0)

    # With the lecture's crop (window_stride=1) every step past block_size re-encodes the whole
    # window (absolute positions shift), so a cache only helps while the context fills. A stride
    # of block_size // 4 re-crops every 64 steps; cached and uncached still give identical tokens.
    # A RoPE GPT never crops (window_stride has no effect), so only stride 1 is measured.
    rope = config.pos_encoding == "rope"
    fill = min(args.tokens, config.block_size - 1)
    strides = [1] if rope else [1, args.window_stride]
    totals = {(s, c): [] for s in strides for c in (False, True)}
    fills: dict[bool, list[float]] = {False: [], True: []}
    for run in range(args.runs):
        for stride in strides:
            outs = {}
            for use_cache in (False, True):
                stamps, outs[use_cache] = time_generation(model, args.tokens, use_cache, run, stride)
                totals[stride, use_cache].append(stamps[-1])
                if stride == 1:
                    fills[use_cache].append(stamps[fill - 1])
            print(
                f"run {run + 1}, window_stride {stride:3d}: "
                f"uncached {args.tokens / totals[stride, False][-1]:7.1f} tok/s, "
                f"cached {args.tokens / totals[stride, True][-1]:7.1f} tok/s, "
                f"identical tokens: {torch.equal(outs[False], outs[True])}"
            )

    def rate(stride: int, use_cache: bool) -> float:
        return args.tokens / statistics.median(totals[stride, use_cache])

    fill_ratio = statistics.median(fills[False]) / statistics.median(fills[True])
    print(f"while the context fills ({fill} tokens): kv-cache speed-up {fill_ratio:.1f}x")
    if rope:
        print(f"RoPE sliding cache at window_stride 1 over {args.tokens} tokens: "
              f"uncached {rate(1, False):.1f}, cached {rate(1, True):.1f} tokens/s, "
              f"speed-up {rate(1, True) / rate(1, False):.1f}x")
    else:
        print(
            f"lecture crop (window_stride 1): uncached {rate(1, False):.1f}, cached {rate(1, True):.1f} "
            f"tokens/s, speed-up {rate(1, True) / rate(1, False):.1f}x"
        )
    s = 1 if rope else args.window_stride
    print(f"median uncached (window_stride {s}): {rate(s, False):.1f} tokens/s")
    print(f"median cached   (window_stride {s}): {rate(s, True):.1f} tokens/s")
    print(f"kv-cache speed-up: {rate(s, True) / rate(s, False):.1f}x")


if __name__ == "__main__":
    main()
