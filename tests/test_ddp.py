"""DDP on CPU: two gloo processes under torchrun end with identical weights; only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                       reason="torch.distributed with gloo is not available"),
]

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    from shakespeare_lm import CharTokenizer, GPT, get_preset, train_val_split
    from shakespeare_lm.training import TrainConfig, train

    corpus, out, schedule = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    rank = int(os.environ["RANK"])
    text = open(corpus, encoding="utf-8").read()
    tok = CharTokenizer.from_text(text)
    tr, va = train_val_split(torch.tensor(tok.encode(text)))
    torch.manual_seed(rank)  # different init per rank: DDP must broadcast rank 0's weights
    model = GPT(get_preset("tiny", vocab_size=tok.vocab_size))
    # max_time with no warmup: the ranks agree on a schedule fitted to the budget after 4 steps
    config = TrainConfig(batch_size=4, block_size=16, max_iters=4, eval_interval=2, eval_iters=2,
                         grad_accum_steps=2, device="cpu", dtype="float32", compile="off", progress=False,
                         warmup_iters=0, max_time=3600, checkpoint="last", depth_schedule=schedule,
                         out_dir=f"{out}/run{rank}")  # per rank, to see who writes
    history = train(model, tr, va, config, tokenizer=tok)
    assert not dist.is_initialized(), "train() must destroy the process group it created"
    save_file({k: v.clone() for k, v in model.state_dict().items()}, f"{out}/weights{rank}.safetensors")
    with open(f"{out}/losses{rank}.json", "w") as f:
        json.dump(history.iter_losses, f)
""")


@pytest.mark.parametrize("schedule", [None, [[0, 1], [2, 2]]])  # with progressive stacking: unused blocks
def test_two_process_gloo(tmp_path, tiny_text, schedule):
    (tmp_path / "corpus.txt").write_text(tiny_text, encoding="utf-8")
    (tmp_path / "worker.py").write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(tmp_path / "worker.py"), str(tmp_path / "corpus.txt"), str(tmp_path), json.dumps(schedule)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    w0 = load_file(tmp_path / "weights0.safetensors")
    w1 = load_file(tmp_path / "weights1.safetensors")
    for name in w0:
        torch.testing.assert_close(w0[name], w1[name], rtol=0, atol=0, msg=name)
    if schedule:  # block 1 was an identity for 2 steps, then grew from block 0 and trained
        assert w0["blocks.1.sa.proj.weight"].abs().sum() > 0
        assert not torch.equal(w0["blocks.1.sa.proj.weight"], w0["blocks.0.sa.proj.weight"])
    losses0 = json.loads((tmp_path / "losses0.json").read_text())
    losses1 = json.loads((tmp_path / "losses1.json").read_text())
    assert len(losses0) == 4 and losses0 != losses1  # each rank saw its own batches

    assert (tmp_path / "run0" / "checkpoint" / "meta.json").is_file()
    assert not (tmp_path / "run1").exists()  # rank 1 wrote nothing
    meta = json.loads((tmp_path / "run0" / "checkpoint" / "meta.json").read_text())
    assert meta["step"] == 4 and meta["extra"]["world_size"] == 2
    assert meta["extra"]["time_fit"]["end"] == 4  # the budget allows every step
    rng = load_file(tmp_path / "run0" / "checkpoint" / "rng.safetensors")
    assert {"data_generator.0", "data_generator.1"} <= set(rng)  # both ranks' data order, for resume
