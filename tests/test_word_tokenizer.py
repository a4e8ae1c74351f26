"""WordTokenizer: splitting, the frequency cut, <unk> for unknown words, the unknown rate, JSON."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shakespeare_lm.tokenizer import load_tokenizer, tokenizer_from_dict
from shakespeare_lm.word_tokenizer import UNK, WordTokenizer, split_words

TEXT = "the cat sat on the mat.\nThe dog sat, too!\n"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_split_words_covers_every_character(text):
    parts = split_words(text)
    assert "".join(parts) == text
    assert all(parts)


def test_split_words_examples():
    assert split_words("O, banish'd  Romeo!\n'Tis 42_x") == [
        "O", ",", " ", "banish'd", "  ", "Romeo", "!", "\n", "'", "Tis", " ", "42", "_", "x"]


def test_vocabulary_is_most_frequent_first():
    tok = WordTokenizer.train(TEXT, 5)
    # " " occurs 8 times; "\n", "sat" and "the" twice each (ties go to the smaller string); the rest once.
    assert tok.tokens == [UNK, " ", "\n", "sat", "the"]
    assert tok.vocab_size == len(tok) == 5
    assert tok.stoi[UNK] == tok.unk_id == 0
    assert all(tok.itos[i] == t for t, i in tok.stoi.items())


def test_in_vocabulary_text_round_trips():
    tok = WordTokenizer.train(TEXT, 1000)
    assert tok.vocab_size == 1 + len(set(split_words(TEXT)))  # the cut is larger than the vocabulary
    ids = tok.encode(TEXT)
    assert UNK not in [tok.itos[i] for i in ids]
    assert tok.decode(ids) == TEXT
    assert tok.decode(torch.tensor(ids)) == TEXT


def test_unknown_words_map_to_unk():
    tok = WordTokenizer.train(TEXT, 1000)
    ids = tok.encode("the zebra sat on the émeu")
    assert ids.count(tok.unk_id) == 2
    assert tok.decode(ids) == "the <unk> sat on the <unk>"  # lossy: the unknown words are gone
    assert tok.unknown_words("the zebra, the émeu, the zebra") == ["zebra", "émeu"]


def test_unknown_rate():
    tok = WordTokenizer.train(TEXT, 1000)
    assert tok.unknown_rate("the dog sat") == 0.0
    assert tok.unknown_rate("the fox sat") == pytest.approx(1 / 5)  # the, " ", fox, " ", sat
    assert tok.unknown_rate("the fox sat", words_only=True) == pytest.approx(1 / 3)
    assert tok.unknown_rate("") == 0.0
    small = WordTokenizer.train(TEXT, 3)  # <unk>, " ", "\n": every word is unknown
    assert small.unknown_rate("the dog sat", words_only=True) == 1.0


def test_decode_rejects_out_of_range_ids():
    tok = WordTokenizer.train(TEXT, 5)
    with pytest.raises(ValueError, match="out of range for a vocabulary of 5"):
        tok.decode([0, 5])


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        WordTokenizer.train("", 10)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        WordTokenizer.train(TEXT, 0)
    with pytest.raises(ValueError, match="duplicate"):
        WordTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="<unk>"):
        WordTokenizer([UNK])
    with pytest.raises(TypeError, match="str"):
        WordTokenizer.train(TEXT, 5).encode(["the"])


def test_save_load_round_trip(tmp_path):
    tok = WordTokenizer.train(TEXT, 8)
    path = tmp_path / "words.json"
    tok.save(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["kind"] == "word" and d["tokens"] == tok.tokens[1:]
    for loaded in (WordTokenizer.load(path), load_tokenizer(path), tokenizer_from_dict(d)):
        assert isinstance(loaded, WordTokenizer) and loaded == tok
        assert loaded.encode("the fox sat") == tok.encode("the fox sat")
    with pytest.raises(ValueError, match="WordTokenizer"):
        WordTokenizer.from_dict({"format": "shakespeare_lm.CharTokenizer", "chars": ["a"]})


def test_the_corpus(shakespeare_text):
    train, val = shakespeare_text[:1_000_000], shakespeare_text[1_000_000:]
    small, large = WordTokenizer.train(train, 1000), WordTokenizer.train(train, 10_000)
    assert small.unknown_rate(val) > large.unknown_rate(val) > 0.0
    assert small.unknown_rate(val, words_only=True) > small.unknown_rate(val)  # spaces are never unknown
