"""CharTokenizer: round trips, the unknown-character error, JSON save/load."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from shakespeare_lm import CharTokenizer

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
