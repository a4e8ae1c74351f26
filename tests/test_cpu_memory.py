"""Tests for cpu_memory.keep_freed_memory: glibc's malloc keeps freed blocks (fresh processes, as
malloc's options are process-wide), the opt-out, and that train() asks for it on a CPU."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from shakespeare_lm import cpu_memory, training

# In a fresh process: allocate and free a 4 MiB tensor; report how much of it glibc served with
# mmap and how much freed memory its heap kept afterwards (mallinfo2, glibc >= 2.33).
PROBE = """
import ctypes, json, sys, torch
from shakespeare_lm.cpu_memory import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == "call" else None
before = libc.mallinfo2().hblkhd
x = torch.ones(4 << 20, dtype=torch.uint8)
mmapped = libc.mallinfo2().hblkhd - before
del x
print(json.dumps({"kept": kept, "mmapped": mmapped, "free_in_heap": libc.mallinfo2().fordblks}))
"""


def _glibc_with_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


def probe(mode: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


needs_glibc = pytest.mark.skipif(not (sys.platform.startswith("linux") and _glibc_with_mallinfo2()),
                                 reason="malloc options are glibc's (Linux)")


@needs_glibc
def test_kept_memory_serves_large_blocks_from_the_heap_and_keeps_them_after_free():
    default, kept = probe("none", **{cpu_memory.ENV: "1"}), probe("call", **{cpu_memory.ENV: "1"})
    assert default["kept"] is None and kept["kept"] is True
    assert default["mmapped"] >= 4 << 20  # glibc as it comes: a fresh mapping, unmapped again on free
    assert kept["mmapped"] == 0  # from the heap ...
    assert kept["free_in_heap"] >= 4 << 20  # ... which keeps it, freed, for the next step
    assert default["free_in_heap"] < 4 << 20


@needs_glibc
def test_the_environment_variable_opts_out():
    result = probe("call", **{cpu_memory.ENV: "0"})
    assert result["kept"] is False and result["mmapped"] >= 4 << 20


def test_elsewhere_than_linux_it_does_nothing(monkeypatch):
    monkeypatch.setattr(cpu_memory.sys, "platform", "darwin")
    assert cpu_memory._set_malloc_options() is False


def test_train_keeps_freed_memory_on_a_cpu(monkeypatch, char_corpus, tiny_gpt):
    calls = []
    monkeypatch.setattr(training, "keep_freed_memory", lambda: calls.append(1) or True)
    tok, tr, va = char_corpus
    config = training.TrainConfig(batch_size=2, block_size=8, max_iters=1, eval_interval=1, eval_iters=1,
                                  device="cpu", progress=False, compile="off", dtype="float32")
    training.train(tiny_gpt(tok), tr, va, config)
    assert calls == [1]
