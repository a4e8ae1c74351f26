"""Tests for checkpoints: round trip, safe formats only, corruption errors, atomic replacement."""

from __future__ import annotations

import errno
import json
import re

import pytest
import torch
from safetensors.torch import load_file

from shakespeare_lm import checkpoint as ckpt
from shakespeare_lm.bpe import BPETokenizer
from shakespeare_lm.checkpoint import (
    CheckpointError,
    capture_rng_state,
    find_resume_checkpoint,
    load_checkpoint,
    load_training_state,
    peek,
    read_meta,
    restore_rng_state,
    save_checkpoint,
)
from shakespeare_lm.model import GPT, BigramLanguageModel, get_preset
from shakespeare_lm.tokenizer import CharTokenizer
from shakespeare_lm.training import TrainConfig
from shakespeare_lm.word_tokenizer import WordTokenizer

TOK = CharTokenizer("\n !,.:?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def make(seed=0):
    torch.manual_seed(seed)
    model = GPT(get_preset("tiny", vocab_size=TOK.vocab_size))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    x = torch.randint(TOK.vocab_size, (2, 8))
    _, loss = model(x, x)
    loss.backward()
    opt.step()  # non-empty optimizer state
    return model, opt


def test_round_trip(tmp_path):
    model, opt = make()
    gen = torch.Generator().manual_seed(3)
    cfg = TrainConfig(batch_size=5)
    path = save_checkpoint(tmp_path / "ck", model, opt, TOK, cfg, step=7, best_val_loss=1.5,
                           rng_state=capture_rng_state(gen), extra={"data": "x.txt"})
    loaded, tok, meta = load_checkpoint(path)
    assert tok == TOK and not loaded.training
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert loaded.lm_head.weight.data_ptr() == loaded.token_embedding_table.weight.data_ptr()  # still tied
    assert meta["step"] == 7 and meta["best_val_loss"] == 1.5 and meta["extra"] == {"data": "x.txt"}
    assert meta["model"]["type"] == "GPT" and meta["model"]["config"]["n_layer"] == 2
    assert TrainConfig.from_dict(meta["train_config"]) == cfg
    assert meta["package_version"]


def test_optimizer_and_rng_round_trip(tmp_path):
    model, opt = make()
    gen = torch.Generator().manual_seed(3)
    save_checkpoint(tmp_path / "ck", model, opt, TOK, step=1, rng_state=capture_rng_state(gen))
    expected = (torch.rand(3), torch.rand(3, generator=gen))

    model2, opt2 = make(seed=1)
    gen2 = torch.Generator()
    meta = load_training_state(tmp_path / "ck", model2, opt2)
    restore_rng_state(meta["rng_state"], gen2)
    torch.testing.assert_close(torch.rand(3), expected[0])  # dropout stream
    torch.testing.assert_close(torch.rand(3, generator=gen2), expected[1])  # data order
    torch.testing.assert_close(model2.state_dict(), model.state_dict())
    sd1, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd1["param_groups"] == sd2["param_groups"]
    for i, st in sd1["state"].items():
        for k, v in st.items():
            torch.testing.assert_close(v, sd2["state"][i][k])


def test_opens_with_safetensors_and_json_alone(tmp_path):
    model, opt = make()
    save_checkpoint(tmp_path / "ck", model, opt, TOK, rng_state=capture_rng_state())
    files = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert files == ["meta.json", "model.safetensors", "optimizer.safetensors", "rng.safetensors"]
    meta = json.loads((tmp_path / "ck" / "meta.json").read_text())
    weights = load_file(tmp_path / "ck" / "model.safetensors")
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in weights)
    assert meta["tokenizer"]["chars"] == TOK.chars
    assert all(v.dtype != torch.uint8 for v in weights.values())
    load_file(tmp_path / "ck" / "optimizer.safetensors")


def test_compiled_or_wrapped_model_saves_bare_names(tmp_path):
    model, _ = make()

    class Wrapper(torch.nn.Module):  # stands in for torch.compile's OptimizedModule
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m

    save_checkpoint(tmp_path / "ck", Wrapper(model))
    assert set(load_file(tmp_path / "ck" / "model.safetensors")) <= set(model.state_dict())
    loaded, tok, _ = load_checkpoint(tmp_path / "ck")
    assert tok is None


def test_bigram_round_trip(tmp_path):
    torch.manual_seed(0)
    model = BigramLanguageModel(TOK.vocab_size)
    save_checkpoint(tmp_path / "ck", model, tokenizer=TOK)
    loaded, _, _ = load_checkpoint(tmp_path / "ck")
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_missing_truncated_and_mismatched(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="expected .*meta.json"):
        load_checkpoint(tmp_path / "empty")

    model, opt = make()
    path = save_checkpoint(tmp_path / "ck", model, opt, TOK)
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)
    weights.write_bytes(data[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_checkpoint(path)

    path = save_checkpoint(tmp_path / "ck", model, opt, TOK)
    (path / "meta.json").write_text('{"format": "shakespeare_lm.checkp')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)

    path = save_checkpoint(tmp_path / "ck2", model, opt, TOK)
    other = GPT(get_preset("tiny", vocab_size=TOK.vocab_size, n_embd=16))
    with pytest.raises(CheckpointError, match="different model config"):
        load_training_state(path, other)


def test_refuses_to_replace_a_non_checkpoint_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        save_checkpoint(tmp_path / "mine", make()[0])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize("error, message", [
    (OSError(errno.ENOSPC, "No space left on device"), "disk full while saving"),
    (ckpt.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
     "disk full while saving"),  # what safetensors really raises when the disk fills
    (OSError(errno.EIO, "Input/output error"), "could not save"),
])
def test_failed_save_says_so_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error, message):
    model, opt = make()
    path = save_checkpoint(tmp_path / "ck", model, opt, TOK, step=1)
    before = read_meta(path)

    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(ckpt, "save_file", boom)  # dies after model.safetensors, mid-save
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, model, opt, TOK, step=2)
    assert str(info.value).startswith(f"{message} {path}: ")
    assert "Error while serializing" not in str(info.value)
    assert str(info.value).endswith(f"; the previous checkpoint at {path} was kept")
    assert read_meta(path)["step"] == 1 and read_meta(path)["files"] == before["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary debris


def test_first_save_failing_says_nothing_was_lost(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_model", boom)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(tmp_path / "ck", make()[0])
    path = tmp_path / "ck"
    assert str(info.value) == f"disk full while saving {path}: No space left on device; nothing lost"
    assert list(tmp_path.iterdir()) == []


def test_kill_between_renames_is_recovered(tmp_path):
    model, opt = make()
    path = save_checkpoint(tmp_path / "ck", model, opt, TOK, step=1)
    path.rename(tmp_path / ".ck.old")  # as if killed after moving the old one aside
    assert read_meta(tmp_path / "ck")["step"] == 1
    save_checkpoint(tmp_path / "ck", model, opt, TOK, step=2)
    assert read_meta(tmp_path / "ck")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_stale_temporary_directories_are_cleaned_on_the_next_save(tmp_path):
    model, opt = make()
    save_checkpoint(tmp_path / "ck", model, opt, TOK, step=1)
    for name in (".ck.tmp-abc123", ".ck.tmp-zz"):  # what a SIGKILL in the middle of a save leaves
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".other.tmp-1").mkdir()  # another checkpoint's: not ours to touch
    save_checkpoint(tmp_path / "ck", model, opt, TOK, step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1", "ck"]
    assert read_meta(tmp_path / "ck")["step"] == 2


def test_size_mismatch_says_truncated_or_appended(tmp_path):
    path = save_checkpoint(tmp_path / "ck", *make(), TOK)
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data + b"extra")
    with pytest.raises(CheckpointError, match=r"has \d+ bytes, expected \d+ \(modified or appended to\?\)"):
        load_checkpoint(path)
    weights.write_bytes(data[:-5])
    with pytest.raises(CheckpointError, match=r"\(truncated copy\?\)"):
        load_checkpoint(path)


def test_a_file_instead_of_a_directory_names_the_directory(tmp_path):
    path = save_checkpoint(tmp_path / "ck", *make(), TOK)
    for name in ("model.safetensors", "meta.json"):
        expected = f"{path / name} is a file; pass the checkpoint directory that contains it ({path})"
        with pytest.raises(CheckpointError, match=re.escape(expected)):
            load_checkpoint(path / name)


def test_shape_mismatch_names_the_tensors_and_shapes(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck", torch.nn.Linear(4, 3))  # no config to compare: the weights must tell
    with pytest.raises(CheckpointError) as info:
        load_training_state(tmp_path / "ck", torch.nn.Linear(5, 2))
    msg = str(info.value)
    assert "\n" not in msg
    assert "weight is [3, 4] in the checkpoint but [2, 5] in the model" in msg
    assert "bias is [3] in the checkpoint but [2] in the model" in msg


def test_choosing_a_checkpoint_hashes_nothing_and_loading_hashes_each_file_once(tmp_path, monkeypatch):
    model, opt = make()
    save_checkpoint(tmp_path / "run" / "checkpoint", model, opt, TOK, step=3, rng_state=capture_rng_state())
    save_checkpoint(tmp_path / "run" / "interrupted", model, opt, TOK, step=5, rng_state=capture_rng_state())
    hashed = []
    monkeypatch.setattr(ckpt, "sha256_file", lambda p: hashed.append(p.name) or "0" * 64)
    path = find_resume_checkpoint(tmp_path / "run")
    assert path.name == "interrupted" and peek(path)["step"] == 5 and hashed == []
    with pytest.raises(CheckpointError, match="does not match its sha256"):  # the fake digest is checked
        load_training_state(path, *make(seed=1))
    assert hashed == ["model.safetensors"]
    monkeypatch.undo()
    hashed.clear()
    real = ckpt.sha256_file
    monkeypatch.setattr(ckpt, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    assert load_training_state(path, *make(seed=1))["step"] == 5
    assert sorted(hashed) == ["model.safetensors", "optimizer.safetensors", "rng.safetensors"]


def test_loads_an_older_checkpoint_with_python_and_numpy_rng_fields(tmp_path):
    model, opt = make()
    gen = torch.Generator().manual_seed(3)
    path = save_checkpoint(tmp_path / "ck", model, opt, TOK, step=4, rng_state=capture_rng_state(gen))
    expected = torch.rand(3, generator=gen)
    meta = json.loads((path / "meta.json").read_text())
    meta["rng"] = {"python": [3, [1, 2, 624], None],  # as format 1 wrote them before they were dropped
                   "numpy": {"kind": "MT19937", "keys": [1, 2], "pos": 624, "has_gauss": 0,
                             "cached_gaussian": 0.0}}
    (path / "meta.json").write_text(json.dumps(meta))
    gen2 = torch.Generator()
    state = load_training_state(path, *make(seed=1))
    restore_rng_state(state["rng_state"], gen2)
    assert state["step"] == 4 and set(state["rng_state"]) == {"torch_cpu", "data_generator", "cuda"}
    torch.testing.assert_close(torch.rand(3, generator=gen2), expected)


# --- any tokenizer ------------------------------------------------------------------------------

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 8


@pytest.mark.parametrize("tokenizer", [BPETokenizer.train(TEXT, 300), WordTokenizer.train(TEXT, 12)],
                         ids=["bpe", "word"])
def test_any_tokenizer_round_trips_with_its_model(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", tokenizer=tokenizer))
    path = save_checkpoint(tmp_path / "ck", model, tokenizer=tokenizer, step=3)
    assert json.loads((path / "meta.json").read_text())["tokenizer"]["kind"] == tokenizer.kind
    loaded, tok, meta = load_checkpoint(path)
    assert type(tok) is type(tokenizer) and tok == tokenizer and tok.vocab_size == tokenizer.vocab_size
    assert meta["model"]["config"]["vocab_size"] == tokenizer.vocab_size
    assert tok.encode(TEXT) == tokenizer.encode(TEXT)
    ids = torch.tensor([tokenizer.encode(TEXT)[:16]])  # (1, T)
    torch.testing.assert_close(loaded(ids)[0], model.eval()(ids)[0])


def test_a_char_tokenizer_saved_before_tokenizers_had_a_kind_still_loads(tmp_path):
    model, _ = make()
    path = save_checkpoint(tmp_path / "ck", model, tokenizer=TOK)
    meta = json.loads((path / "meta.json").read_text())
    del meta["tokenizer"]["kind"]  # what older versions wrote: format + version + chars
    (path / "meta.json").write_text(json.dumps(meta))
    _, tok, _ = load_checkpoint(path)
    assert isinstance(tok, CharTokenizer) and tok == TOK


def test_an_unknown_tokenizer_kind_is_a_checkpoint_error(tmp_path):
    model, _ = make()
    path = save_checkpoint(tmp_path / "ck", model, tokenizer=TOK)
    meta = json.loads((path / "meta.json").read_text())
    meta["tokenizer"]["kind"] = "sentencepiece"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="broken tokenizer: unknown tokenizer kind 'sentencepiece'"):
        load_checkpoint(path)
