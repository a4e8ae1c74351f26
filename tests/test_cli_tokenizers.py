"""Tests for the command line with any tokenizer (char, bpe, word) and the bundled models (--pretrained)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from shakespeare_lm import cli
from shakespeare_lm.__main__ import main
from shakespeare_lm.bpe import BPETokenizer
from shakespeare_lm.bundled import PRETRAINED_MODELS
from shakespeare_lm.checkpoint import load_checkpoint, read_meta
from shakespeare_lm.data import train_val_split
from shakespeare_lm.model import GPT, get_preset
from shakespeare_lm.tokenizer import CharTokenizer

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved.\n") * 12
TRAIN = ["--preset", "tiny", "--max-iters", "4", "--eval-interval", "2", "--eval-iters", "2",
         "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory, corpus):
    """A tiny GPT with a 300-token BPE vocabulary, trained for 4 steps: (run dir, train's stdout)."""
    run = tmp_path_factory.mktemp("bpe") / "run"
    out = _call_out(["train", *TRAIN, "--tokenizer", "bpe", "--vocab-size", "300", "--data", corpus,
                     "--out", run])
    return run, out


def _call_out(argv) -> str:
    """stdout of a command that must succeed (for module-scoped fixtures, which have no capsys)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([str(a) for a in argv]) == 0
    return buf.getvalue()


# --- arguments ----------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--vocab-size", "512"], "--vocab-size is for --tokenizer bpe or word"),
    (["--tokenizer", "char", "--vocab-size", "512"], "--vocab-size is for --tokenizer bpe or word"),
    (["--tokenizer", "bpe"], "--tokenizer bpe needs --vocab-size N"),
    (["--tokenizer", "word"], "--tokenizer word needs --vocab-size N"),
    (["--tokenizer", "wordpiece", "--vocab-size", "512"], "invalid choice: 'wordpiece'"),
    (["--tokenizer", "bpe", "--vocab-size", "0"], "--vocab-size: value must be a positive integer"),
])
def test_tokenizer_arguments_are_checked_before_anything_is_written(tmp_path, corpus, cli_call,
                                                                    one_error_line, extra, message):
    rc, _, err = cli_call(["train", "--out", tmp_path / "r", "--data", corpus, *extra])
    assert rc == 2 and message in one_error_line(err)
    assert not (tmp_path / "r").exists()


def test_a_bpe_vocabulary_below_the_256_bytes_is_one_line(tmp_path, corpus, cli_call, one_error_line):
    rc, _, err = cli_call(["train", *TRAIN, "--out", tmp_path / "r", "--data", corpus, "--tokenizer", "bpe",
                           "--vocab-size", "100"])
    assert rc == 2 and "--tokenizer bpe --vocab-size 100: vocab_size must be an integer >= 256" in (
        one_error_line(err))
    assert not (tmp_path / "r" / "checkpoint").exists()


@pytest.mark.slow
def test_char_tokens_are_the_same_as_splitting_the_encoded_text(tmp_path, corpus, cli_call):
    # Splitting the text first and encoding each part gives a char model exactly the tokens it had
    # when the encoded text was split.
    rc, out, _ = cli_call(["train", *TRAIN, "--max-iters", "1", "--out", tmp_path / "r", "--data", corpus])
    tok = CharTokenizer.from_text(TEXT)
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(TEXT)))
    assert rc == 0 and f"{len(train_ids):,} train / {len(val_ids):,} val tokens" in out
    assert f"tokenizer char: {tok.vocab_size} tokens (the corpus's characters); 1.000 tokens/char" in out
    _, saved, _ = load_checkpoint(tmp_path / "r")
    assert saved == tok


# --- bpe end to end -----------------------------------------------------------------------------

@pytest.mark.slow
def test_bpe_train_records_the_tokenizer_and_reports_its_training(bpe_run, corpus):
    run, out = bpe_run
    train_text, val_text = train_val_split(TEXT)
    expected = BPETokenizer.train(train_text, 300)  # learned from the train split only
    model, tok, meta = load_checkpoint(run)
    assert meta["tokenizer"]["kind"] == "bpe" and tok == expected and tok != BPETokenizer.train(TEXT, 300)
    assert model.config.vocab_size == 300 and model.lm_head.out_features == 300
    tpc_train = len(expected.encode(train_text)) / len(train_text)
    tpc_val = len(expected.encode(val_text)) / len(val_text)
    assert tpc_train < 0.9  # merges make tokens longer than a character
    assert ("tokenizer bpe: 300 tokens (trained on the train split in " in out
            and f" s); {tpc_train:.3f} tokens/char on train, {tpc_val:.3f} on val" in out), out
    n_train, n_val = len(expected.encode(train_text)), len(expected.encode(val_text))
    assert f"{n_train:,} train / {n_val:,} val tokens" in out


@pytest.mark.slow
def test_bpe_generate_from_the_checkpoint(bpe_run, cli_call):
    run, _ = bpe_run
    argv = ["generate", "--checkpoint", run, "--prompt", "ROMEO:", "--max-new-tokens", "12", "--seed", "3"]
    rc, first, err = cli_call(argv)
    assert rc == 0 and err == "" and first.startswith("ROMEO:")
    assert cli_call([*argv, "--stream"])[1] == first  # same seed, same tokens, streamed
    model, tok, _ = load_checkpoint(run)
    assert len(tok.encode(first.rstrip("\n"))) > len(tok.encode("ROMEO:"))


@pytest.mark.slow
def test_bpe_evaluate_reports_bits_per_character_computed_by_hand(bpe_run, cli_call):
    run, _ = bpe_run
    rc, out, _ = cli_call(["evaluate", "--checkpoint", run, "--json", "--batch-size", "3"])
    result = json.loads(out)
    # By hand: the val text is the last 10% of the characters; every token but the first is predicted
    # once, in non-overlapping windows of block_size; bits/char = mean nats per token x tokens per
    # character of the val text / ln 2.
    model, tok, _ = load_checkpoint(run)
    val_text = TEXT[int(0.9 * len(TEXT)):]
    ids = torch.tensor(tok.encode(val_text))
    T = model.config.block_size
    nats, predicted = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, T):
            x, y = ids[start:start + T], ids[start + 1:start + T + 1]
            x = x[:len(y)]
            logits, _ = model(x[None])  # (1, T, V)
            nats += F.cross_entropy(logits[0], y, reduction="sum").item()
            predicted += len(y)
    per_token = nats / predicted
    expected_bpc = per_token * len(ids) / len(val_text) / math.log(2)
    assert rc == 0 and result["tokenizer"] == "bpe" and result["vocab_size"] == 300
    assert result["tokens"] == predicted == len(ids) - 1 and result["chars"] == len(val_text)
    assert result["characters"] == len(val_text)  # characters, not tokens + 1
    assert result["loss"] == pytest.approx(per_token, rel=1e-5)
    assert result["bits_per_char"] == pytest.approx(expected_bpc, rel=1e-5)
    assert result["bits_per_char"] < result["loss"] / math.log(2)  # a token holds more than one character
    assert result["perplexity"] == pytest.approx(math.exp(per_token), rel=1e-5)

    rc, out, _ = cli_call(["evaluate", "--checkpoint", run])
    assert rc == 0 and "bpe tokenizer (300 tokens)" in out and f"{len(val_text):,} characters" in out
    assert (f"val loss {result['loss']:.4f} nats/token ({predicted:,} tokens) | "
            f"{result['bits_per_char']:.4f} bits/char | perplexity {result['perplexity']:.3f}") in out


@pytest.mark.slow
def test_bpe_resume_keeps_its_tokenizer_and_refuses_another(bpe_run, tmp_path, cli_call, one_error_line):
    run = shutil.copytree(bpe_run[0], tmp_path / "run")
    saved = read_meta(run)["tokenizer"]
    for extra, message in [(["--tokenizer", "char"], "was trained with --tokenizer bpe, not char"),
                           (["--tokenizer", "word", "--vocab-size", "300"], "--tokenizer bpe, not word"),
                           (["--vocab-size", "512"], "has a bpe vocabulary of 300 tokens, not 512")]:
        rc, _, err = cli_call(["train", "--out", run, "--resume", "--max-iters", "6", *extra])
        assert rc == 2 and message in one_error_line(err)
    assert read_meta(run)["step"] == 4
    rc, out, _ = cli_call(["train", "--out", run, "--resume", "--max-iters", "6", "--no-progress",
                           "--tokenizer", "bpe", "--vocab-size", "300"])  # repeating them is fine
    assert rc == 0 and "tokenizer bpe: 300 tokens (from the checkpoint)" in out and "at step 6" in out
    assert read_meta(run)["tokenizer"] == saved


@pytest.mark.slow
def test_word_tokenizer_end_to_end(tmp_path, corpus, cli_call):
    run = tmp_path / "run"
    rc, out, _ = cli_call(["train", *TRAIN, "--tokenizer", "word", "--vocab-size", "20", "--data", corpus,
                           "--out", run, "--final-eval"])
    assert rc == 0 and "tokenizer word: 20 tokens (trained on the train split in" in out
    assert "of val tokens are <unk>" in out and "bits/char" in out
    _, tok, meta = load_checkpoint(run)
    assert meta["tokenizer"]["kind"] == "word" and tok.vocab_size == 20
    rc, out, _ = cli_call(["generate", "--checkpoint", run, "--prompt", "All:", "--max-new-tokens", "8",
                           "--seed", "0"])
    assert rc == 0 and out.startswith("All:")


# --- bundled models -----------------------------------------------------------------------------

@pytest.fixture
def fake_pretrained(monkeypatch):
    """cli.pretrained -> a tiny BPE GPT, and Tiny Shakespeare -> TEXT: the wiring, without the real files."""
    tok = BPETokenizer.train(TEXT, 280)
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", tokenizer=tok)).eval()
    calls = []

    def fake(name, device="cpu"):
        calls.append((name, str(device)))
        return model, tok

    monkeypatch.setattr(cli, "pretrained", fake)
    monkeypatch.setattr(cli, "load_shakespeare", lambda: TEXT)
    return model, tok, calls


def test_generate_pretrained_samples_from_the_bundled_model(fake_pretrained, cli_call):
    model, tok, calls = fake_pretrained
    rc, out, err = cli_call(["generate", "--pretrained", "cpu-small", "--prompt", "All:",
                             "--max-new-tokens", "5", "--temperature", "0"])
    assert rc == 0 and err == "" and calls == [("cpu-small", "cpu")]
    ids = tok.encode("All:")
    with torch.no_grad():
        for _ in range(5):  # greedy, by hand
            ids.append(int(model(torch.tensor([ids]))[0][0, -1].argmax()))
    assert out == tok.decode(ids) + "\n"


def test_evaluate_pretrained_uses_the_tiny_shakespeare_val_split(fake_pretrained, cli_call):
    model, tok, calls = fake_pretrained
    rc, out, _ = cli_call(["evaluate", "--pretrained", "cpu-small", "--json"])
    result = json.loads(out)
    val_text = TEXT[int(0.9 * len(TEXT)):]
    assert rc == 0 and calls == [("cpu-small", "cpu")]
    assert result["pretrained"] == "cpu-small" and result["data"] == "tinyshakespeare"
    assert result["chars"] == result["characters"] == len(val_text)  # characters, not tokens + 1
    assert result["tokens"] == len(tok.encode(val_text)) - 1
    assert result["bits_per_char"] == pytest.approx(
        result["loss"] * len(tok.encode(val_text)) / len(val_text) / math.log(2))
    rc, out, _ = cli_call(["evaluate", "--pretrained", "cpu-small"])
    assert rc == 0 and out.startswith("pretrained model cpu-small, bpe tokenizer (280 tokens), val split of "
                                      "tinyshakespeare")


def test_an_unknown_pretrained_name_lists_the_available_ones(cli_call, one_error_line):
    for command in ("generate", "evaluate"):
        rc, _, err = cli_call([command, "--pretrained", "gpt-5"])
        assert rc == 2 and "invalid choice: 'gpt-5'" in one_error_line(err)
        assert all(name in err for name in PRETRAINED_MODELS)


@pytest.mark.slow
def test_the_real_bundled_model_generates(cli_call):
    rc, out, err = cli_call(["generate", "--pretrained", "cpu-small", "--prompt", "ROMEO:",
                             "--max-new-tokens", "40", "--seed", "1"])
    assert rc == 0 and err == "" and out.startswith("ROMEO:") and len(out) == len("ROMEO:") + 40 + 1
