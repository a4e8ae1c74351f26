"""Wall-clock seconds from process start until a char GPT reaches full-split val loss 1.89.

Recipes (--preset; any option given on the command line overrides the recipe's):
- cpu-fast (the default, 214,784 parameters; the package's cpu-fast presets, so `python -m
  shakespeare_lm train --preset cpu-fast` trains the same model the same way): ONE block of
  cpu-small (4 heads, 128 channels, block 64, dropout 0) with today's block: rotary positions,
  ReLU², QK-norm and an untied lm_head. TrainConfig(optimizer="muon"): Muon (peak 0.015) on the
  block's matrices, AdamW (peak 4e-3, embeddings x5, betas (0.8, 0.99), weight decay 0.1, clip 1.0)
  on the rest; batch 16, 10 warmup steps, then "wsd" with the last 70% of 330 steps decaying
  linearly to 0; fp32. Full-split checks at steps 320 and 330 only: 1.8810 at 320 (328k tokens; the
  same at one and two threads; 1.8758 at 330). Over 320 steps it reads 1.8868 at the end.
- cpu-modern (808,448 parameters): the same with cpu-small's 4 blocks over 240 steps, checks every
  10 steps from 220: 1.8861 at step 230 (236k tokens).
- nanogpt-cpu (809,856 parameters): nanoGPT's exact architecture (GELU, biases, learned positions,
  tied lm_head), the same recipe over 360 steps with Muon at peak 0.03, momentum 0.9 and three Polar
  Express Newton-Schulz steps (muon_ns="polar-express", Amsel et al. 2025) instead of Jordan's five,
  and progressive stacking (depth_schedule "0:2,290:4", growth.py: only the first 2 blocks train,
  the other 2 waiting as identities, until step 290, where blocks 2 and 3 become copies of blocks 0
  and 1 and all 4 train), checked at step 330: 1.8864 (338k tokens; 1.8940 at 328, two threads). A
  2-block step costs ~0.55-0.6x a 4-block one, so the 330 steps cost about as much as 205 of 4
  blocks. Growing at 270 instead, it reads 1.8825 at step 330. Until the fourth session in the log the
  recipe had Muon at peak 0.02, four Polar Express steps and growth at 270 (--muon-lr 0.02
  --muon-ns-steps 4 --depth-schedule 0:2,270:4 --check-from 342): 1.8870 at step 342 (1.8909 at 340).
  Without stacking (--muon-lr 0.02 --muon-ns-steps 4 --depth-schedule none --check-from 326) it reads
  1.8756 at step 326 (334k tokens; 1.8912 at 320, 1.8824 at 324, 1.8666 at 328). It learns more
  slowly per token than today's block. With Muon as torch ships it (momentum 0.95, Jordan's
  coefficients x 5) and no stacking it read 1.8811 at step 335 (1.8914 at 330, 1.8775 at 340); over
  340 steps it ends at 1.8910; over 350 it reads 1.8846 at 335 and 1.8812 at 340.

benchmarks/train_speed_runs.md logs every run of this script and every variant tried, session by
session: why these recipes, what was measured against what, and what did not pay.

The val loss is checked honestly: the headline is the time at which the exact loss over the WHOLE
val split (`evaluate`, 111,540 tokens in windows of the model's block size) first reads <= the
target, the checks' own time included. Checks run every --check-every steps from --check-from and at
the last step; with --subset-every N each check first evaluates every Nth window of the same split
(an estimate: it read up to 0.006 above the full split near the target) and runs the full split only
when that is within --subset-margin.

--reference also runs the published nanoGPT CPU recipe (README, "I only have a macbook": nanogpt-cpu
architecture, batch 12, block 64, AdamW lr 1e-3 -> 1e-4 cosine over 2,000 steps, 100 warmup, betas
(0.9, 0.99), weight decay 0.1, grad clip 1.0, dropout 0) through the same train() and the same
checks (subset every 50 steps from step 1,500, full split when the subset reads <= target + margin),
and prints reference / ours. Every invocation first names the machine (the CPU, its family and model,
and the kernels torch picked): runs compare only on one machine. --runs N alternates the variants N
times, each run a fresh Python process timed from its launch (so every run pays the start-up), prints
every run, then the medians. The seed (1337) is the same for every run and variant.

    flock /tmp/shakespeare_cpu.lock python benchmarks/train_speed.py --runs 5
    flock /tmp/shakespeare_cpu.lock python benchmarks/train_speed.py --runs 5 --reference --preset nanogpt-cpu
"""

import time

T0 = time.time()  # before importing torch: the clock includes start-up

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

EVAL_BATCH = 32  # windows per eval forward: small batches stay in cache (val split ~1.3 s; 2 s at 256)
# Tuned recipes: a model (model.PRESETS name, GPTConfig overrides) and the defaults of the options
# that reach the target soonest with it; an option given on the command line wins. Any other
# model.PRESETS name runs with GENERIC.
RECIPES = {
    # model.PRESETS["cpu-fast"] (1 layer of cpu-small with today's block: 214,784 parameters) with the
    # recipe of TRAIN_PRESETS["cpu-fast"]; full-val checks at steps 320 and 330
    "cpu-fast": dict(model=("cpu-fast", {}), max_iters=330, check_from=320, subset_every=0),
    # cpu-fast's block (today's: rotary positions, ReLU², QK-norm, untied lm_head) 4 times, i.e. cpu-small
    # with today's block: 808,448 parameters, fewer than nanogpt-cpu's 809,856
    "cpu-modern": dict(model=("cpu-fast", {"n_layer": 4}), max_iters=240, check_from=220),
    # nanoGPT's exact CPU architecture (GELU, biases, learned positions, tied lm_head)
    # trained 2 blocks deep for 290 steps, then stacked to its 4 (TrainConfig.depth_schedule)
    "nanogpt-cpu": dict(model=("nanogpt-cpu", {}), max_iters=360, muon_lr=0.03, muon_momentum=0.9,
                        muon_ns="polar-express", muon_ns_steps=3, depth_schedule="0:2,290:4", check_from=330,
                        subset_every=0),
}
GENERIC = dict(max_iters=240, check_from=220, muon_lr=0.015, muon_momentum=None, muon_ns="jordan",
               muon_ns_steps=5, subset_every=4, depth_schedule="none")
LAUNCH_ENV = "TRAIN_SPEED_LAUNCHED_AT"  # a parent's time.time() just before it started this process


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu-fast",
                   help=f"a tuned recipe ({', '.join(RECIPES)}; see above) or any model.PRESETS architecture")
    p.add_argument("--pos-encoding", choices=["learned", "sinusoidal", "rope"], help="override the preset's")
    p.add_argument("--activation", choices=["relu", "gelu", "relu2"], help="override the preset's")
    p.add_argument("--qk-norm", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--tie-weights", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--optimizer", default="muon", choices=["adamw", "muon"])
    p.add_argument("--muon-lr", type=float, help="peak LR of the Muon matrices")
    p.add_argument("--muon-momentum", type=float, help="Muon's momentum (default 0.95)")
    p.add_argument("--muon-ns", choices=["jordan", "polar-express"], help="Muon's Newton-Schulz coefficients")
    p.add_argument("--muon-ns-steps", type=int, help="Muon's Newton-Schulz steps")
    p.add_argument("--depth-schedule", metavar="STEP:BLOCKS,...",
                   help="progressive stacking (TrainConfig.depth_schedule), e.g. 0:2,250:4; 'none' = off")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=4e-3, help="peak AdamW LR")
    p.add_argument("--embedding-lr-mult", type=float, default=5.0, help="LR multiplier of the embeddings")
    p.add_argument("--beta1", type=float, default=0.8)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--min-lr", type=float, default=0.0)
    p.add_argument("--warmup-iters", type=int, default=10)
    p.add_argument("--max-iters", type=int, help="length of the LR schedule")
    p.add_argument("--lr-schedule", default="wsd", choices=["wsd", "cosine"])
    p.add_argument("--decay-fraction", type=float, default=0.7, help="wsd: share of steps in the decay")
    p.add_argument("--check-from", type=int, help="first step to evaluate at")
    p.add_argument("--check-every", type=int, default=10, help="steps between val checks")
    p.add_argument("--subset-every", type=int,
                   help="each check first evaluates every Nth window of the val split; 0 = full split only")
    p.add_argument("--subset-margin", type=float, default=0.01,
                   help="run the full-val check when the subset estimate is <= target + this")
    p.add_argument("--target", type=float, default=1.89)
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=1337, help="model init and data order, the same for every run")
    p.add_argument("--data", help="any text file to train on (default: Tiny Shakespeare)")
    p.add_argument("--reference", action="store_true", help="also run nanoGPT's CPU recipe; print the ratio")
    p.add_argument("--runs", type=int, default=1, help="runs per variant, alternating, each a fresh process")
    p.add_argument("--variant", choices=["ours", "reference"], help=argparse.SUPPRESS)  # one child run
    args = p.parse_args(argv)
    from shakespeare_lm.model_config import PRESETS

    if args.preset not in RECIPES and args.preset not in PRESETS:
        p.error(f"unknown preset {args.preset!r}; choose a recipe ({', '.join(RECIPES)}) or a model preset "
                f"({', '.join(PRESETS)})")
    recipe = {**GENERIC, **RECIPES.get(args.preset, {})}
    for name in GENERIC:
        if getattr(args, name) is None:
            setattr(args, name, recipe[name])
    if args.depth_schedule != "none":
        from shakespeare_lm.growth import check_depth_schedule, parse_depth_schedule

        try:
            check_depth_schedule(parse_depth_schedule(args.depth_schedule), args.max_iters)
        except ValueError as e:
            p.error(f"--depth-schedule: {e} (--depth-schedule none turns it off)")
    return args


def machine() -> str:
    """The CPU this invocation ran on, for the runs log: timings compare only on the same machine.

    A VM may name only the vendor's line ("AMD EPYC"), so the family and model numbers and the kernels
    torch picked (AVX2, AVX512) are given too.
    """
    import torch

    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:  # not Linux
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return (f"{name}, {os.cpu_count()} CPUs, torch {torch.__version__} with "
            f"{torch.backends.cpu.get_cpu_capability()} kernels")


def reference_settings() -> dict:
    """nanoGPT's CPU recipe as this script's options: the package's nanogpt-cpu presets (model and
    training: nanoGPT README's CPU command with config/train_shakespeare_char.py), no model override."""
    from shakespeare_lm.train_config import TRAIN_PRESETS

    t = TRAIN_PRESETS["nanogpt-cpu"]
    return dict(
        preset="nanogpt-cpu", optimizer=t.optimizer, batch_size=t.batch_size, learning_rate=t.learning_rate,
        min_lr=t.min_lr, lr_schedule=t.lr_schedule, max_iters=t.max_iters, warmup_iters=t.warmup_iters,
        beta1=t.betas[0], beta2=t.betas[1], weight_decay=t.weight_decay,
        embedding_lr_mult=t.embedding_lr_mult, grad_clip=t.grad_clip, muon_lr=None, muon_momentum=None,
        muon_ns=t.muon_ns, muon_ns_steps=t.muon_ns_steps, pos_encoding=None,
        activation=None, qk_norm=None, tie_weights=None, check_from=1500, check_every=50, subset_every=4,
        depth_schedule="none",
    )


def variant_args(args: argparse.Namespace) -> argparse.Namespace:
    """The settings of args.variant: the reference run replaces the recipe and the model by nanoGPT's."""
    if args.variant != "reference":
        return args
    return argparse.Namespace(**{**vars(args), **reference_settings()})


def model_preset(args: argparse.Namespace) -> tuple[str, dict]:
    """(model.PRESETS name, GPTConfig overrides) of args.preset and the model options given."""
    preset, overrides = RECIPES[args.preset]["model"] if args.preset in RECIPES else (args.preset, {})
    given = {k: getattr(args, k) for k in ("pos_encoding", "activation", "qk_norm", "tie_weights")
             if getattr(args, k) is not None}
    return preset, {**overrides, **given}


def make_config(args: argparse.Namespace, block_size: int = 64):
    """The TrainConfig of one run: train()'s own estimate is made negligible (the checks do the work)."""
    from shakespeare_lm.growth import parse_depth_schedule
    from shakespeare_lm.training import TrainConfig

    return TrainConfig(
        batch_size=args.batch_size, block_size=block_size, max_iters=args.max_iters,
        eval_interval=args.max_iters, eval_iters=1, eval_batch_size=1,
        learning_rate=args.learning_rate, min_lr=args.min_lr, warmup_iters=args.warmup_iters,
        lr_schedule=args.lr_schedule, decay_fraction=args.decay_fraction,
        embedding_lr_mult=args.embedding_lr_mult, betas=(args.beta1, args.beta2),
        weight_decay=args.weight_decay, grad_clip=args.grad_clip or None, optimizer=args.optimizer,
        muon_lr=args.muon_lr if args.optimizer == "muon" else None,
        **(dict(muon_momentum=args.muon_momentum, muon_ns=args.muon_ns, muon_ns_steps=args.muon_ns_steps)
           if args.optimizer == "muon" else {}),
        dtype=args.dtype, compile="off", device="cpu", seed=args.seed, progress=False,
        depth_schedule=None if args.depth_schedule == "none" else parse_depth_schedule(args.depth_schedule),
    )


def run_one(args: argparse.Namespace, t0: float) -> dict:
    """Train one variant in this process; print its progress and return its result."""
    args = variant_args(args)
    import numpy as np
    import torch

    from shakespeare_lm import GPT, CharTokenizer, get_preset, load_shakespeare, load_text, train_val_split
    from shakespeare_lm.evaluation import evaluate
    from shakespeare_lm.optim import MUON_MOMENTUM
    from shakespeare_lm.precision import resolve_dtype
    from shakespeare_lm.training import train

    torch.set_num_threads(args.threads)
    text = load_text(args.data) if args.data else load_shakespeare(progress=False)
    tok = CharTokenizer.from_text(text)
    # via numpy: torch.tensor() on a list of 1.1M ints takes ~0.3 s, np.array ~0.05 s
    train_data, val_data = train_val_split(torch.from_numpy(np.array(tok.encode(text))))
    torch.manual_seed(args.seed)
    preset, overrides = model_preset(args)
    model = GPT(get_preset(preset, vocab_size=tok.vocab_size, dropout=0.0, **overrides))
    block = model.config.block_size  # training windows and val windows
    config = make_config(args, block)
    dtype = resolve_dtype(args.dtype, torch.device("cpu"), model)
    result: dict = {}
    checks = []

    class StopAtTarget:
        def on_step(self, state):
            last = state.step == args.max_iters
            since = state.step - args.check_from  # checks at check_from, check_from + check_every, ...
            if since < 0 or (since % args.check_every and not last):
                return
            if args.subset_every:
                sub = evaluate(state.model, val_data, block, batch_size=EVAL_BATCH, dtype=dtype,
                               every=args.subset_every).loss
                print(f"step {state.step}: val-subset loss {sub:.4f} at {time.time() - t0:.1f} s", flush=True)
                if sub > args.target + args.subset_margin and not last:
                    return
            r = evaluate(state.model, val_data, block, batch_size=EVAL_BATCH, dtype=dtype)
            now = time.time() - t0
            checks.append((state.step, r.loss, now))
            tps = state.step * args.batch_size * block / (time.time() - t_train)
            print(f"step {state.step}: full val loss {r.loss:.4f} at {now:.1f} s "
                  f"({tps:,.0f} tok/s so far, checks included)", flush=True)
            if r.loss <= args.target:
                result.update(seconds=now, step=state.step, val=r.loss, cpu_seconds=time.process_time())
                state.stop = True

    t_train = time.time()
    history = train(model, train_data, val_data, config, callbacks=[StopAtTarget()])
    train_s = time.time() - t_train
    steps = len(history.iter_losses)
    tokens = steps * args.batch_size * block
    shape = ", ".join(f"{k}={v}" for k, v in overrides.items())
    momentum = MUON_MOMENTUM if args.muon_momentum is None else args.muon_momentum  # TrainConfig's None
    optimizer = (f"Muon (peak {args.muon_lr:g}, momentum {momentum:g}, {args.muon_ns} "
                 f"Newton-Schulz x {args.muon_ns_steps}) + AdamW" if args.optimizer == "muon" else "AdamW")
    print(f"{args.variant or 'ours'}: {preset}{f' ({shape})' if shape else ''}, "
          f"{model.num_parameters(non_embedding=False):,} parameters; {optimizer}, batch {args.batch_size}, "
          f"lr {args.learning_rate:g} -> {args.min_lr:g} {args.lr_schedule} (decay fraction "
          f"{args.decay_fraction:g}) over {args.max_iters} steps, warmup {args.warmup_iters}, embeddings "
          f"x{args.embedding_lr_mult:g}, betas ({args.beta1:g}, {args.beta2:g}), weight decay "
          f"{args.weight_decay:g}, grad clip {args.grad_clip:g}, depth schedule {args.depth_schedule}, "
          f"dtype {dtype}, threads {args.threads}, "
          f"seed {args.seed}")
    print(f"trained {steps} steps ({tokens:,} tokens) in {train_s:.1f} s including checks: "
          f"{tokens / train_s:,.0f} tokens/s")
    if not result:
        final = evaluate(model, val_data, block, batch_size=EVAL_BATCH, dtype=dtype)
        best = min([c[1] for c in checks] + [final.loss])
        print(f"final full-val loss {final.loss:.4f} at step {steps}")
        print(f"never reached val {args.target} (best full-val check {best:.4f})")
        return {"seconds": None, "best": best, "end_seconds": time.time() - t0,
                "cpu_seconds": time.process_time()}
    # one thread: ~ the wall-clock time on an idle core (the process's CPU time since its start)
    print(f"CPU time to val {args.target}: {result['cpu_seconds']:.1f} s (threads {args.threads})")
    print(f"seconds to val {args.target}: {result['seconds']:.1f}")
    return result


def run_child(variant: str) -> dict:
    """Run one variant in a fresh Python process, timed from just before its launch."""
    argv = [a for a in sys.argv[1:] if a not in ("--reference",)]
    if "--runs" in argv:
        i = argv.index("--runs")
        del argv[i:i + 2]
    argv = [a for a in argv if not a.startswith("--runs=")]
    env = {**os.environ, LAUNCH_ENV: repr(time.time())}
    proc = subprocess.run([sys.executable, __file__, *argv, "--variant", variant], env=env, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"the {variant} run failed:\n{proc.stderr.strip()}")
    lines = proc.stdout.strip().splitlines()
    print("\n".join(f"  {line}" for line in lines[:-1]), flush=True)
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    args = parse_args()
    if args.variant:  # a child: time from the parent's launch, report one JSON line last
        result = run_one(args, float(os.environ.get(LAUNCH_ENV, T0)))
        print("RESULT " + json.dumps(result))
        return
    if args.runs == 1 and not args.reference:
        print(f"machine: {machine()}", flush=True)
        run_one(args, T0)
        return
    variants = ["ours", "reference"] if args.reference else ["ours"]
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    missed = dict.fromkeys(variants, 0)
    print(f"seed {args.seed} for every run; {args.runs} run(s) per variant, alternating, each a fresh "
          "process", flush=True)
    print(f"machine: {machine()}", flush=True)
    for i in range(args.runs):
        for v in variants:
            r = run_child(v)
            missed[v] += r["seconds"] is None  # then its whole run's time is a lower bound
            s = r["seconds"] if r["seconds"] is not None else r["end_seconds"]
            seconds[v].append(s)
            cpu[v].append(r.get("cpu_seconds", float("inf")))
            shown = f"{s:.1f} s (CPU {cpu[v][-1]:.1f} s)" if r["seconds"] is not None else (
                f"not reached (best {r['best']:.4f}; ran {r['end_seconds']:.1f} s)")
            print(f"run {i + 1} {v}: {shown}", flush=True)
    for v in variants:
        print(f"{v}: runs {', '.join(f'{s:.1f}' for s in seconds[v])} s; median "
              f"{statistics.median(seconds[v]):.1f} s (CPU time median {statistics.median(cpu[v]):.1f} s)")
        if missed[v]:
            print(f"{v}: {missed[v]} of {args.runs} run(s) never reached {args.target}; their whole run's "
                  "time is counted (a lower bound)")
    if args.reference:
        ratio = statistics.median(seconds["reference"]) / statistics.median(seconds["ours"])
        bound = ">= " if missed["reference"] else ""
        print(f"reference / ours (ratio of medians): {bound}{ratio:.2f}x"
              f"{'' if not missed['ours'] else ' (ours missed the target too)'}")


if __name__ == "__main__":
    main()
