"""BPETokenizer: the toy example by hand, equality with a recount-every-merge BPE, round trips, JSON."""

from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shakespeare_lm.bpe import GPT2_SPLIT_PATTERN, BPETokenizer
from shakespeare_lm.tokenizer import load_tokenizer, tokenizer_from_dict

MIXED = ("Hello, world! Héllo wörld — ça va? 你好，世界。 😀👍🏽 e\u0301 x̃ 'tis banish'd 12,345 _x_\n\t") * 8
TOK = BPETokenizer.train(MIXED, 300)
TOK_WHOLE = BPETokenizer.train(MIXED, 300, pre_split=False)


def naive_bpe(text: str, vocab_size: int, pre_split: bool) -> tuple[dict, list[int]]:
    """BPE the slow, obvious way (a full recount per merge); ties go to the smallest pair of ids."""
    chunks = re.findall(GPT2_SPLIT_PATTERN, text) if pre_split else [text]
    seqs = [list(c.encode("utf-8")) for c in chunks]
    merges = {}
    for new_id in range(256, vocab_size):
        stats: dict[tuple[int, int], int] = {}
        for s in seqs:
            for pair in zip(s, s[1:], strict=False):
                stats[pair] = stats.get(pair, 0) + 1
        if not stats:
            break
        best = min(stats, key=lambda p: (-stats[p], p))
        merges[best] = new_id
        merged = []
        for s in seqs:
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            merged.append(out)
        seqs = merged
    return merges, [t for s in seqs for t in s]


def test_toy_example_known_answer():
    # "aaabdaaabac": (a, a) occurs 4 times -> 256. Then (97, 98) "ab" and (256, 97) "Za" tie at 2;
    # the smaller pair (97, 98) wins -> 257, then (256, 257) "aaab" -> 258: "XdXac" as on Wikipedia.
    tok = BPETokenizer.train("aaabdaaabac", 259)
    assert tok.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert list(tok.merges.values()) == [256, 257, 258]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.token_bytes(258) == b"aaab" and tok.token_str(257) == "ab"
    assert tok.vocab_size == len(tok) == 259


def test_toy_example_runs_out_of_pairs():
    # After the three merges above every pair occurs once; ties keep going to the smallest pair:
    # (97, 99) "ac" -> 259, (100, 258) "daaab" -> 260, (258, 260) -> 261, (261, 259) -> 262, one token.
    tok = BPETokenizer.train("aaabdaaabac", 1000, pre_split=False)
    assert list(tok.merges)[3:] == [(97, 99), (100, 258), (258, 260), (261, 259)]
    assert tok.vocab_size == 263  # stopped early: nothing left to merge
    assert tok.encode("aaabdaaabac") == [262]
    assert tok.token_str(262) == "aaabdaaabac"


@pytest.mark.parametrize("pre_split", [True, False])
def test_overlapping_pairs_merge_left_to_right(pre_split):
    tok = BPETokenizer.train("aaaaa", 257, pre_split=pre_split)
    assert tok.merges == {(97, 97): 256}
    assert tok.encode("aaaaa") == [256, 256, 97]


@pytest.mark.parametrize("pre_split", [True, False])
def test_equals_naive_bpe_on_mixed_text(pre_split):
    merges, ids = naive_bpe(MIXED, 330, pre_split)
    tok = BPETokenizer.train(MIXED, 330, pre_split=pre_split)
    assert list(tok.merges.items()) == list(merges.items())
    assert tok.encode(MIXED) == ids


@pytest.mark.parametrize("pre_split", [True, False])
def test_equals_naive_bpe_on_the_corpus(shakespeare_text, pre_split):
    text = shakespeare_text[:4000]
    merges, ids = naive_bpe(text, 320, pre_split)
    tok = BPETokenizer.train(text, 320, pre_split=pre_split)
    assert list(tok.merges.items()) == list(merges.items())
    assert tok.encode(text) == ids


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=60), st.booleans())
def test_training_equals_naive_bpe(text, pre_split):
    merges, ids = naive_bpe(text, 280, pre_split)
    tok = BPETokenizer.train(text, 280, pre_split=pre_split)
    assert list(tok.merges.items()) == list(merges.items())
    assert tok.encode(text) == ids
    assert tok.decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_unicode_round_trips(text):
    # st.text() draws any code point but surrogates: emoji, combining marks, CJK, controls.
    for tok in (TOK, TOK_WHOLE):
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
        assert tok.decode(torch.tensor(ids, dtype=torch.long)) == text


def test_compresses_its_training_text():
    assert len(TOK.encode(MIXED)) < 0.7 * len(MIXED.encode("utf-8"))
    assert [TOK.token_str(i) for i in TOK.encode("Hello")] == ["He", "llo"]


def test_pre_split_keeps_merges_inside_words():
    text = "the dog. the dog! the dog? a dog, " * 30
    split = BPETokenizer.train(text, 300)
    whole = BPETokenizer.train(text, 300, pre_split=False)

    def mixes_letters_and_punctuation(s: str) -> bool:
        return bool(re.search(r"[a-z]", s)) and bool(re.search(r"[.!?,]", s))

    assert not any(mixes_letters_and_punctuation(split.token_str(i)) for i in range(256, split.vocab_size))
    assert any(mixes_letters_and_punctuation(whole.token_str(i)) for i in range(256, whole.vocab_size))
    assert " dog" in {split.token_str(i) for i in range(split.vocab_size)}


def test_decode_of_a_split_character_replaces_instead_of_raising():
    ids = TOK.encode("é")
    assert TOK.decode(list("é".encode())[:1]) == "\ufffd"
    assert TOK.decode(ids) == "é"


def test_decode_rejects_out_of_range_ids():
    for bad in ([0, TOK.vocab_size], [-1]):
        with pytest.raises(ValueError, match="out of range for a vocabulary of 300") as exc:
            TOK.decode(bad)
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="1-D"):
        TOK.decode(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        TOK.token_str(TOK.vocab_size)


def test_bad_training_arguments():
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train("", 300)
    with pytest.raises(ValueError, match=">= 256"):
        BPETokenizer.train("abc", 255)
    with pytest.raises(TypeError, match="str"):
        BPETokenizer.train(b"abc", 300)
    with pytest.raises(TypeError, match="str"):
        TOK.encode(b"abc")


def test_save_load_round_trip(tmp_path):
    for tok in (TOK, TOK_WHOLE):
        path = tmp_path / f"{tok.pre_split}.json"
        tok.save(path)
        d = json.loads(path.read_text(encoding="utf-8"))
        assert d["kind"] == "bpe" and d["merges"][0] == list(next(iter(tok.merges)))
        assert all(isinstance(t, int) for pair in d["merges"] for t in pair)
        for loaded in (BPETokenizer.load(path), load_tokenizer(path), tokenizer_from_dict(d)):
            assert isinstance(loaded, BPETokenizer) and loaded == tok
            assert loaded.pre_split == tok.pre_split
            assert loaded.encode(MIXED) == tok.encode(MIXED)


def test_from_dict_rejects_bad_merges():
    good = TOK.to_dict()
    with pytest.raises(ValueError, match="not defined before id 256"):
        BPETokenizer.from_dict({**good, "merges": [[97, 256]]})
    with pytest.raises(ValueError, match="repeats merge 0"):
        BPETokenizer.from_dict({**good, "merges": [[97, 97], [97, 97]]})
    with pytest.raises(ValueError, match="pair of integer ids"):
        BPETokenizer.from_dict({**good, "merges": [[97, "a"]]})
    with pytest.raises(ValueError, match="BPETokenizer"):
        BPETokenizer.from_dict({"format": "shakespeare_lm.CharTokenizer", "chars": ["a"]})
    with pytest.raises(ValueError, match="pre-split pattern"):
        BPETokenizer.from_dict({**good, "pattern": "("})


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        BPETokenizer.load(tmp_path / "missing.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="BPETokenizer"):
        BPETokenizer.load(other)


def test_the_corpus(shakespeare_text):
    text = shakespeare_text[:200_000]
    tok = BPETokenizer.train(text, 512)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < 0.6 * len(text)  # about two characters per token at 512
    words = {tok.token_str(i).strip() for i in range(256, tok.vocab_size)}
    assert {"the", "and", "shall", "SICINIUS"} <= words
