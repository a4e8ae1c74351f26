"""Corpus loading and verification, the 90/10 split, random batches and the ordered evaluation windows."""

from __future__ import annotations

import hashlib

import pytest
import torch

from shakespeare_lm import utils
from shakespeare_lm.data import (
    SHAKESPEARE_SHA256,
    SHAKESPEARE_SIZE,
    CorpusMismatchError,
    get_batch,
    iter_eval_batches,
    load_shakespeare,
    load_text,
    train_val_split,
)
from shakespeare_lm.tokenizer import CharTokenizer
from shakespeare_lm.utils import atomic_write, pick, pick_device, set_seed


def test_load_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_text(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_text(empty)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_text(latin)
    with pytest.raises(IsADirectoryError):
        load_text(tmp_path)


def test_load_text_reads_utf8_and_drops_bom(tmp_path):
    p = tmp_path / "mine.txt"
    p.write_bytes("\ufeffÀ bientôt\n".encode())
    assert load_text(p) == "À bientôt\n"


BODY = "ROMEO:\nBut, soft! what light through yonder window breaks?\n" * 20
DIGEST = hashlib.sha256(BODY.encode()).hexdigest()


@pytest.mark.parametrize(
    "text, hint",
    [
        (BODY[:-7], " (truncated copy?)"),
        (BODY + "THE END\n", " (modified or appended?)"),
        (BODY.replace("soft", "SOFT", 1), ""),  # same size: no guess
    ],
)
def test_a_copy_that_is_not_the_corpus_is_refused(tmp_path, monkeypatch, text, hint):
    monkeypatch.delenv("SHAKESPEARE_LM_DATA", raising=False)
    copy = tmp_path / "input.txt"
    copy.write_text(text)
    actual = hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(CorpusMismatchError) as exc:
        load_shakespeare(copy, sha256=DIGEST, size=len(BODY))
    message = str(exc.value)
    assert isinstance(exc.value, ValueError) and "\n" not in message  # one line a learner can act on
    expected = f"sha256 {actual}, {len(text):,} bytes{hint}; expected sha256 {DIGEST}, {len(BODY):,} bytes"
    assert expected in message
    assert "load_text(path)" in message and "--data PATH" in message
    assert ("truncated" in message) == (len(text) < len(BODY))
    assert ("appended" in message) == (len(text) > len(BODY))
    monkeypatch.setenv("SHAKESPEARE_LM_DATA", str(copy))
    with pytest.raises(CorpusMismatchError, match="not Tiny Shakespeare"):
        load_shakespeare(sha256=DIGEST)  # the environment variable is checked the same way
    assert load_text(copy) == text  # the way to train on an edited text


def test_the_real_corpus_is_verified(shakespeare_path, tmp_path, monkeypatch):
    monkeypatch.delenv("SHAKESPEARE_LM_DATA", raising=False)
    assert utils.sha256_file(shakespeare_path) == SHAKESPEARE_SHA256
    assert len(load_shakespeare(shakespeare_path)) == SHAKESPEARE_SIZE
    cut = tmp_path / "input.txt"
    cut.write_bytes(shakespeare_path.read_bytes()[:-100])
    with pytest.raises(CorpusMismatchError, match=r"1,115,294 bytes \(truncated copy\?\); expected sha256 "
                       + SHAKESPEARE_SHA256 + ", 1,115,394 bytes"):
        load_shakespeare(cut)
    one_byte = tmp_path / "edited.txt"
    one_byte.write_bytes(shakespeare_path.read_bytes().replace(b"First", b"Frist", 1))
    with pytest.raises(CorpusMismatchError, match="not Tiny Shakespeare") as exc:
        load_shakespeare(one_byte)
    assert "truncated" not in str(exc.value) and "appended" not in str(exc.value)


def test_split_sizes_and_contiguity():
    data = torch.arange(1000)
    train, val = train_val_split(data)
    assert (len(train), len(val)) == (900, 100)
    assert torch.equal(torch.cat([train, val]), data)
    with pytest.raises(ValueError):
        train_val_split(data, val_fraction=1.5)
    with pytest.raises(ValueError, match="too short"):
        train_val_split("a")


def test_shakespeare_split_matches_published_figures(shakespeare_path, monkeypatch):
    monkeypatch.setenv("SHAKESPEARE_LM_DATA", str(shakespeare_path))
    text = load_shakespeare()
    assert len(text) == 1_115_394
    tok = CharTokenizer.from_text(text)
    train, val = train_val_split(torch.tensor(tok.encode(text)))
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert tok.vocab_size == 65


def test_get_batch_targets_are_inputs_shifted():
    data = torch.arange(100)
    x, y = get_batch(data, 8, 16, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    assert x.dtype == torch.long
    assert torch.equal(y, x + 1)  # data is arange, so the next token is +1
    assert int(y.max()) <= 99


def test_get_batch_is_reproducible_with_a_generator():
    data = torch.randint(0, 65, (500,))
    a = get_batch(data, 4, 8, generator=torch.Generator().manual_seed(42))
    b = get_batch(data, 4, 8, generator=torch.Generator().manual_seed(42))
    c = get_batch(data, 4, 8, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_get_batch_bad_arguments():
    with pytest.raises(ValueError, match="too few"):
        get_batch(torch.arange(8), 2, 8)
    with pytest.raises(ValueError):
        get_batch(torch.arange(100), 0, 8)
    with pytest.raises(TypeError, match="1-D tensor"):
        get_batch([1, 2, 3], 1, 1)


def test_eval_batches_cover_every_target_once():
    data = torch.arange(103)
    batches = list(iter_eval_batches(data, batch_size=3, block_size=10))
    targets = torch.cat([y.reshape(-1) for _, y in batches])
    assert torch.equal(targets, torch.arange(1, 103))
    for x, y in batches:
        assert torch.equal(y, x + 1)
    assert batches[0][0].shape == (3, 10)
    assert batches[-1][0].shape == (1, 2)  # the remainder window


def test_eval_batches_every_nth_window():
    data = torch.arange(103)  # 10 full windows of 10, then a remainder
    batches = list(iter_eval_batches(data, batch_size=2, block_size=10, every=3))
    xs = torch.cat([x for x, _ in batches])
    assert torch.equal(xs[:, 0], torch.tensor([0, 30, 60, 90]))  # windows 0, 3, 6, 9; no remainder
    assert all(torch.equal(y, x + 1) for x, y in batches)
    with pytest.raises(ValueError, match="every"):
        next(iter_eval_batches(data, batch_size=2, block_size=10, every=0))


def test_pick_reads_quick_mode(monkeypatch):
    monkeypatch.delenv("SHAKESPEARE_LM_QUICK", raising=False)
    assert pick(full=5000, quick=40) == 5000
    monkeypatch.setenv("SHAKESPEARE_LM_QUICK", "1")
    assert pick(full=5000, quick=40) == 40
    monkeypatch.setenv("SHAKESPEARE_LM_QUICK", "0")
    assert pick(full=5000, quick=40) == 5000


def test_set_seed_makes_torch_reproducible():
    set_seed(7)
    a = torch.rand(3)
    g = set_seed(7)
    assert torch.equal(a, torch.rand(3))
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(7)))


def _machine(monkeypatch, cuda: int, mps: bool) -> None:
    """Pretend to be a machine with `cuda` GPUs and (or not) Apple's MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_pick_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _machine(monkeypatch, cuda=0, mps=False)
    assert pick_device() == pick_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        pick_device("mps")
    _machine(monkeypatch, cuda=0, mps=True)
    assert pick_device() == torch.device("mps")
    _machine(monkeypatch, cuda=2, mps=True)
    assert pick_device() == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda:1")
    assert pick_device("cpu") == torch.device("cpu")  # asked for, even with a GPU
    with pytest.raises(ValueError, match="only 2 CUDA device"):
        pick_device("cuda:2")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu-please")


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "f.json"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(p) as f:
        f.write("half-written")
        raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["f.json"]
    with atomic_write(p) as f:
        f.write("new")
    assert p.read_text() == "new"
