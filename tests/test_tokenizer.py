"""CharTokenizer: round trips, the unknown-character error, JSON save/load; the protocol and registry."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from shakespeare_lm import CharTokenizer
from shakespeare_lm.tokenizer import (
    TOKENIZERS,
    BPETokenizer,
    Tokenizer,
    WordTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)

ALPHABET = "abcdefghijklmnopqrstuvwxyz ABC!?\n'é"
TOK = CharTokenizer.from_text(ALPHABET)


def test_vocab_is_sorted_distinct_chars():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert tok.vocab_size == len(tok) == 8
    assert tok.stoi["h"] == tok.chars.index("h")
    assert all(tok.itos[i] == c for c, i in tok.stoi.items())


@given(st.text(alphabet=ALPHABET, max_size=200))
def test_round_trip(text):
    ids = TOK.encode(text)
    assert all(0 <= i < TOK.vocab_size for i in ids)
    assert len(ids) == len(text)
    assert TOK.decode(ids) == text
    assert TOK.decode(torch.tensor(ids, dtype=torch.long)) == text


def test_unknown_characters_are_named():
    with pytest.raises(ValueError, match="not in the vocabulary") as exc:
        TOK.encode("hello € world ¥ €")
    msg = str(exc.value)
    assert "'€'" in msg and "'¥'" in msg
    assert msg.count("€") == 1  # each offending character named once


def test_decode_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="out of range"):
        TOK.decode([0, TOK.vocab_size])


def test_decode_rejects_2d_tensor():
    with pytest.raises(ValueError, match="1-D"):
        TOK.decode(torch.zeros(2, 3, dtype=torch.long))


def test_bad_vocabularies_raise():
    with pytest.raises(ValueError):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="duplicate"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "tok.json"
    TOK.save(path)
    loaded = CharTokenizer.load(path)
    assert loaded == TOK
    assert loaded.encode("abc é") == TOK.encode("abc é")
    assert json.loads(path.read_text(encoding="utf-8"))["chars"] == TOK.chars


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        CharTokenizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CharTokenizer.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="CharTokenizer"):
        CharTokenizer.load(other)


def test_shakespeare_vocab(shakespeare_text):
    tok = CharTokenizer.from_text(shakespeare_text)
    assert tok.vocab_size == 65
    assert "".join(tok.chars[:13]) == "\n !$&',-.3:;?"
    assert tok.decode(tok.encode(shakespeare_text[:1000])) == shakespeare_text[:1000]


def test_every_tokenizer_follows_the_protocol():
    toks = [TOK, BPETokenizer.train(ALPHABET * 3, 260), WordTokenizer.train(ALPHABET, 10)]
    assert [t.kind for t in toks] == ["char", "bpe", "word"]
    for tok in toks:
        assert isinstance(tok, Tokenizer)
        assert TOKENIZERS[tok.kind] is type(tok)
        assert tok.to_dict()["kind"] == tok.kind
        assert tok.decode(tok.encode("ABC!")) == "ABC!"


def test_tokenizer_from_dict_dispatches_on_kind(tmp_path):
    for tok in (TOK, BPETokenizer.train(ALPHABET * 3, 260), WordTokenizer.train(ALPHABET, 10)):
        d = json.loads(json.dumps(tok.to_dict()))  # what a checkpoint's JSON gives back
        assert type(tokenizer_from_dict(d)) is type(tok) and tokenizer_from_dict(d) == tok
        tok.save(tmp_path / f"{tok.kind}.json")
        assert load_tokenizer(tmp_path / f"{tok.kind}.json") == tok


def test_old_char_tokenizer_dicts_still_load():
    # What checkpoints written before tokenizers recorded their kind hold.
    old = {"format": "shakespeare_lm.CharTokenizer", "version": 1, "chars": TOK.chars}
    assert tokenizer_from_dict(old) == TOK
    assert CharTokenizer.from_dict(old) == TOK


def test_tokenizer_from_dict_errors():
    with pytest.raises(ValueError, match="kind 'sentencepiece': expected one of bpe, char, word"):
        tokenizer_from_dict({"kind": "sentencepiece"})
    with pytest.raises(ValueError, match="unknown tokenizer kind None"):
        tokenizer_from_dict({"hello": 1})
    with pytest.raises(ValueError, match="must be a dict"):
        tokenizer_from_dict(["a"])
    with pytest.raises(ValueError, match="BPETokenizer"):  # kind and contents disagree
        tokenizer_from_dict({**TOK.to_dict(), "kind": "bpe"})


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_tokenizer(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "nope"}))
    with pytest.raises(ValueError, match="other.json: unknown tokenizer kind 'nope'"):
        load_tokenizer(other)
