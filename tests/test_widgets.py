"""The sampling playground: its plain functions, and the widget driven headlessly (no kernel, no browser)."""

from __future__ import annotations

import pytest
import torch

from shakespeare_lm import (
    GPT,
    CharTokenizer,
    SamplingPlayground,
    get_preset,
    playground_generate,
    playground_stream,
    sample_text,
    sampling_playground,
)

VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # Tiny Shakespeare's 65


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer(VOCAB)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(get_preset("tiny")).eval()


def test_generate_returns_prompt_plus_length_chars(model, tok):
    text = playground_generate(model, tok, "ROMEO:", temperature=1.0, length=25, seed=1)
    assert text.startswith("ROMEO:")
    assert len(text) == len("ROMEO:") + 25
    assert tok.unknown_chars(text) == []


def test_same_seed_same_text_and_matches_sample_text(model, tok):
    a = playground_generate(model, tok, "To be", temperature=0.9, top_k=10, top_p=0.9, length=30, seed=7)
    b = playground_generate(model, tok, "To be", temperature=0.9, top_k=10, top_p=0.9, length=30, seed=7)
    ref = sample_text(model, tok, "To be", 30, temperature=0.9, top_k=10, top_p=0.9, seed=7)
    assert a == b == ref


def test_stream_pieces_join_to_generate(model, tok):
    pieces = list(playground_stream(model, tok, "ab", temperature=1.0, length=12, seed=3))
    assert pieces[0] == "ab"  # the prompt comes first
    assert len(pieces) == 13  # then one piece per new character
    assert "".join(pieces) == playground_generate(model, tok, "ab", temperature=1.0, length=12, seed=3)


def test_off_values_mean_no_filter(model, tok):
    # the sliders' "off" positions: top_k=0 and top_p=1 mean no filtering
    off = playground_generate(model, tok, "a", temperature=1.0, top_k=0, top_p=1.0, length=40, seed=5)
    none = playground_generate(model, tok, "a", temperature=1.0, top_k=None, top_p=None, length=40, seed=5)
    assert off == none


def test_top_k_one_is_greedy(model, tok):
    greedy = playground_generate(model, tok, "KING", temperature=0.0, length=20, seed=11)
    top1 = playground_generate(model, tok, "KING", temperature=1.3, top_k=1, length=20, seed=99)
    assert greedy == top1


def test_negative_seed_uses_global_rng(model, tok):
    torch.manual_seed(123)
    a = playground_generate(model, tok, "a", length=30, seed=-1)
    torch.manual_seed(123)
    b = playground_generate(model, tok, "a", length=30, seed=-1)
    assert a == b


def test_bad_arguments_raise_at_once(model, tok):
    with pytest.raises(ValueError, match="not in the vocabulary: 'é'"):
        playground_stream(model, tok, "café", length=5)
    with pytest.raises(ValueError, match="temperature"):
        playground_generate(model, tok, "a", temperature=-1.0, length=5)


# --- the widget, headless -------------------------------------------------------------------------

ipywidgets = pytest.importorskip("ipywidgets")


def test_widget_builds_with_all_controls(model, tok):
    pg = sampling_playground(model, tok, prompt="JULIET:", temperature=0.7, top_k=5, top_p=0.9, length=40,
                             seed=2)
    assert isinstance(pg, SamplingPlayground)
    assert isinstance(pg.widget, ipywidgets.VBox)
    assert isinstance(pg.button, ipywidgets.Button)
    assert pg.settings() == {"prompt": "JULIET:", "temperature": 0.7, "top_k": 5, "top_p": 0.9,
                             "length": 40, "seed": 2}
    assert pg.top_k.max == tok.vocab_size
    bundle = pg._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert pg.output.value == "" and pg.text == ""


def test_button_click_fills_output_with_generated_text(model, tok):
    pg = sampling_playground(model, tok, prompt="ROMEO:", temperature=0.8, length=30, seed=42)
    pg.prompt.value = "HAMLET:"  # change controls the way a reader would
    pg.top_k.value = 8
    pg.button.click()
    expected = playground_generate(model, tok, "HAMLET:", temperature=0.8, top_k=8, top_p=1.0, length=30,
                                   seed=42)
    assert pg.text == expected
    assert "HAMLET:" in pg.output.value
    assert pg.output.value.startswith("<pre")
    assert "30 characters" in pg.status.value
    assert not pg.button.disabled


def test_output_is_streamed_and_html_escaped(model, tok):
    pg = sampling_playground(model, tok, prompt="a & b", length=45, seed=0, update_every=10)
    seen = []
    pg.output.observe(lambda change: seen.append(change["new"]), names="value")
    pg.button.click()
    assert len(seen) >= 4  # several partial updates, not one at the end
    assert all(len(a) <= len(b) for a, b in zip(seen, seen[1:], strict=False))
    assert "a &amp; b" in pg.output.value  # html.escape'd; the plain text keeps the ampersand
    assert pg.text.startswith("a & b")


def test_bad_prompt_shows_error_and_keeps_ui_alive(model, tok):
    pg = sampling_playground(model, tok, prompt="naïve", length=10, seed=0)
    pg.button.click()  # must not raise inside the click handler
    assert "not in the vocabulary" in pg.output.value
    assert "&#x27;ï&#x27;" in pg.output.value or "'ï'" in pg.output.value
    assert pg.status.value == "error"
    assert not pg.button.disabled
    pg.prompt.value = "nave"  # fixing the prompt makes the next click work
    pg.button.click()
    assert pg.text.startswith("nave") and len(pg.text) == 14
