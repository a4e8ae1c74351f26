"""The bundled model: loads offline through the verified checkpoint loader, refuses tampered files,
records how it was made; and the script that makes it. Nothing here depends on the model's quality."""

from __future__ import annotations

import importlib.util
import math
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch

from shakespeare_lm.bundled import PRETRAINED_MODELS, PROVENANCE_KEY, pretrained, pretrained_info
from shakespeare_lm.checkpoint import CheckpointError, save_checkpoint
from shakespeare_lm.data import train_val_split
from shakespeare_lm.evaluation import evaluate
from shakespeare_lm.model import GPT, get_preset
from shakespeare_lm.tokenizer import CharTokenizer
from shakespeare_lm.train_config import get_train_preset

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "shakespeare_lm" / "weights" / "cpu-small"
PROVENANCE = {"command": "python scripts/train_pretrained.py", "seed": 7, "package_version": "0.0.test",
              "torch_version": torch.__version__, "device": "cpu", "threads": 1, "train_seconds": 1.5,
              "max_iters": 3, "val_loss": 4.0, "bits_per_char": 4.0 / math.log(2), "val_tokens": 10}


@pytest.fixture()
def tiny_root(tmp_path):
    """A models directory holding a tiny GPT under the name cpu-small (fast; quality irrelevant)."""
    tok = CharTokenizer("\n abcdeEMOR:")
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", tok)).eval()
    save_checkpoint(tmp_path / "cpu-small", model, None, tok, step=3,
                    extra={"data": "tinyshakespeare", PROVENANCE_KEY: PROVENANCE})
    return tmp_path, model, tok


@pytest.fixture()
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pretrained() must not touch the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_loads_a_model_and_its_tokenizer(tiny_root, no_network):
    root, model, tok = tiny_root
    loaded, loaded_tok = pretrained("cpu-small", root=root)
    assert isinstance(loaded, GPT) and not loaded.training
    assert loaded_tok == tok
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    x = torch.tensor([tok.encode("ROMEO:")])
    assert torch.equal(model(x)[0], loaded(x)[0])


def test_info_is_the_recorded_provenance(tiny_root):
    root, model, _ = tiny_root
    info = pretrained_info("cpu-small", root=root)
    assert {k: info[k] for k in PROVENANCE} == PROVENANCE
    assert info["name"] == "cpu-small" and info["description"] == PRETRAINED_MODELS["cpu-small"]
    assert info["step"] == 3 and info["model_config"]["n_layer"] == model.config.n_layer


def test_unknown_name_lists_the_available_ones(tiny_root):
    with pytest.raises(ValueError, match=r"unknown pretrained model 'gpt-5'; available: cpu-small"):
        pretrained("gpt-5")
    with pytest.raises(ValueError, match="available: cpu-small"):
        pretrained_info("baby-gpt", root=tiny_root[0])


def test_missing_files_say_how_to_recreate_them(tmp_path):
    with pytest.raises(CheckpointError, match="missing from .*python scripts/train_pretrained.py --out"):
        pretrained("cpu-small", root=tmp_path)
    with pytest.raises(CheckpointError, match="missing"):
        pretrained_info("cpu-small", root=tmp_path)


def _flip_a_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("source", ["bundled", "tiny"])
def test_a_tampered_copy_is_refused_with_one_line(tiny_root, tmp_path, source):
    src = BUNDLED if source == "bundled" else tiny_root[0] / "cpu-small"
    root = tmp_path / "copy"
    shutil.copytree(src, root / "cpu-small")
    pretrained("cpu-small", root=root)  # the untouched copy loads
    weights = root / "cpu-small" / "model.safetensors"
    _flip_a_byte(weights, weights.stat().st_size - 10)  # inside the last tensor's data; same size
    with pytest.raises(CheckpointError) as e:
        pretrained("cpu-small", root=root)
    assert "corrupted: model.safetensors does not match its sha256" in str(e.value)
    assert "\n" not in str(e.value)
    weights.write_bytes(weights.read_bytes()[:-1])  # a truncated copy is refused before hashing
    with pytest.raises(CheckpointError, match=r"has \d+ bytes, expected \d+ \(truncated copy"):
        pretrained("cpu-small", root=root)


def test_the_bundled_model_loads_offline_and_fast(no_network):
    start = time.perf_counter()
    model, tok = pretrained("cpu-small")
    seconds = time.perf_counter() - start
    assert model.config == get_preset("cpu-small", tok)  # 4 layers, 4 heads, 128 channels, block 64
    assert tok.vocab_size == 65 and not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert seconds < 10  # about a second on a 2-core CPU; generous for a busy machine
    files = sorted(p.name for p in BUNDLED.iterdir())
    assert files == ["meta.json", "model.safetensors"]  # no optimizer or RNG state shipped
    assert sum((BUNDLED / f).stat().st_size for f in files) < 8 * 2**20  # a few MB


def test_the_bundled_model_records_how_it_was_made():
    info = pretrained_info("cpu-small")
    assert info["command"].startswith("python scripts/train_pretrained.py")
    assert isinstance(info["seed"], int) and info["max_iters"] == info["step"]
    assert info["bits_per_char"] == pytest.approx(info["val_loss"] / math.log(2))
    assert info["val_tokens"] > 100_000  # the whole validation split, not a batch estimate
    for key in ("package_version", "torch_version", "train_seconds", "device", "threads"):
        assert info[key] not in (None, "")


def _load_script():
    path = ROOT / "scripts" / "train_pretrained.py"
    spec = importlib.util.spec_from_file_location("train_pretrained", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_script_writes_a_slim_checkpoint_with_its_provenance(tmp_path, monkeypatch, capsys):
    script = _load_script()
    text = "ROMEO:\nIs the day so young?\nBENVOLIO:\nBut new struck nine.\n" * 60
    monkeypatch.setattr(script, "load_shakespeare", lambda: text)  # a small corpus: seconds, not minutes
    monkeypatch.setattr(script, "get_train_preset",  # the recipe, with loss estimates of one small batch
                        lambda name, **kw: get_train_preset(name, **kw, eval_iters=1, eval_batch_size=4))
    out = tmp_path / "models" / "cpu-small"
    argv = ["--out", str(out), "--max-iters", "2", "--threads", "1", "--seed", "3"]
    assert script.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "model.safetensors"]
    info = pretrained_info("cpu-small", root=out.parent)
    assert info["command"] == "python scripts/train_pretrained.py " + " ".join(argv)
    assert (info["seed"], info["max_iters"], info["step"], info["threads"]) == (3, 2, 2, 1)
    model, tok = pretrained("cpu-small", root=out.parent)
    assert model.config == get_preset("cpu-small", tok)
    _, val_data = train_val_split(torch.tensor(tok.encode(text)))
    assert evaluate(model, val_data).loss == pytest.approx(info["val_loss"], rel=1e-5)  # the full val split
    assert info["val_tokens"] == len(val_data) - 1
    assert f"loss {info['val_loss']:.4f}" in capsys.readouterr().out
