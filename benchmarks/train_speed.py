"""Wall-clock seconds from process start until the nanoGPT CPU-recipe model reaches val loss 1.89.

The model is fixed (4 layers, 4 heads, n_embd 128, block 64, dropout 0, nanoGPT's CPU recipe);
batch size, LR schedule, precision and eval cadence are ours. The val loss is checked honestly:
the exact loss over the WHOLE val split (`evaluate`, 111,540 tokens), every --check-every steps
once training passes --check-from. Prints tokens/s and, last, `seconds to val 1.89: S`.

    flock /tmp/shakespeare_cpu.lock python benchmarks/train_speed.py
"""

import time

T0 = time.time()  # before importing torch: the clock includes start-up

import argparse  # noqa: E402
import os  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=4e-3)
    p.add_argument("--min-lr", type=float, default=4e-4)
    p.add_argument("--warmup-iters", type=int, default=30)
    p.add_argument("--max-iters", type=int, default=900, help="length of the cosine schedule")
    p.add_argument("--check-from", type=int, default=600, help="first step to evaluate at")
    p.add_argument("--check-every", type=int, default=60, help="steps between full-val checks")
    p.add_argument("--target", type=float, default=1.89)
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--data", help="path to input.txt (default: SHAKESPEARE_LM_DATA / cache)")
    args = p.parse_args()

    import torch

    from shakespeare_lm import GPT, CharTokenizer, get_preset, load_shakespeare, train_val_split
    from shakespeare_lm.evaluation import evaluate
    from shakespeare_lm.precision import resolve_dtype
    from shakespeare_lm.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    text = load_shakespeare(args.data, progress=False)
    tok = CharTokenizer.from_text(text)
    train_data, val_data = train_val_split(torch.tensor(tok.encode(text)))
    torch.manual_seed(args.seed)
    model = GPT(get_preset("cpu-small", vocab_size=tok.vocab_size, dropout=0.0))  # 4L/4H/128, block 64
    config = TrainConfig(
        batch_size=args.batch_size, block_size=64, max_iters=args.max_iters,
        eval_interval=args.max_iters, eval_iters=1, eval_batch_size=1,  # train()'s own estimate: negligible
        learning_rate=args.learning_rate, min_lr=args.min_lr, warmup_iters=args.warmup_iters,
        dtype=args.dtype, compile="off", device="cpu", seed=args.seed, progress=False,
    )
    dtype = resolve_dtype(args.dtype, torch.device("cpu"), model)
    result: dict = {}
    checks = []

    class StopAtTarget:
        def on_step(self, state):
            if state.step < args.check_from or state.step % args.check_every:
                return
            r = evaluate(state.model, val_data, 64, batch_size=256, dtype=dtype)
            state.model.train()
            now = time.time() - T0
            checks.append((state.step, r.loss, now))
            tps = state.step * args.batch_size * 64 / (time.time() - t_train)
            print(f"step {state.step}: full val loss {r.loss:.4f} at {now:.1f} s "
                  f"({tps:,.0f} tok/s so far, checks included)", flush=True)
            if r.loss <= args.target:
                result.update(seconds=now, step=state.step, val=r.loss)
                state.stop = True

    t_train = time.time()
    history = train(model, train_data, val_data, config, callbacks=[StopAtTarget()])
    train_s = time.time() - t_train
    steps = len(history.iter_losses)
    tokens = steps * args.batch_size * 64
    final = evaluate(model, val_data, 64, batch_size=256, dtype=dtype)
    print(f"config: batch {args.batch_size}, lr {args.learning_rate:g} -> {args.min_lr:g} over "
          f"{args.max_iters} steps, warmup {args.warmup_iters}, dtype {dtype}, threads {args.threads}")
    print(f"trained {steps} steps ({tokens:,} tokens) in {train_s:.1f} s including checks: "
          f"{tokens / train_s:,.0f} tokens/s")
    print(f"final full-val loss {final.loss:.4f} ({final.bits_per_char:.4f} bits/char) at step {steps}")
    if result:
        print(f"seconds to val {args.target}: {result['seconds']:.1f}")
    else:
        print(f"never reached val {args.target} (best full-val check "
              f"{min((c[1] for c in checks), default=float('nan')):.4f})")


if __name__ == "__main__":
    main()
