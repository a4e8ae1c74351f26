"""The sampling playground and the attention explorer, driven headlessly (no kernel, no browser)."""

from __future__ import annotations

import pytest
import torch

from shakespeare_lm.explorer import attention_maps, top_attended
from shakespeare_lm.model import GPT, BigramLanguageModel, get_preset
from shakespeare_lm.sampling import sample_text
from shakespeare_lm.tokenizer import CharTokenizer
from shakespeare_lm.widgets import (
    AttentionExplorer,
    SamplingPlayground,
    attention_explorer,
    sampling_playground,
)

ipywidgets = pytest.importorskip("ipywidgets")

VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # Tiny Shakespeare's 65


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer(VOCAB)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(get_preset("tiny")).eval()


def test_controls_start_at_the_given_values_and_map_to_sample_text(model, tok):
    pg = sampling_playground(model, tok, prompt="JULIET:", temperature=0.7, top_k=5, top_p=0.9, length=40,
                             seed=2)
    assert isinstance(pg, SamplingPlayground)
    assert pg.settings() == {"prompt": "JULIET:", "max_new_tokens": 40, "temperature": 0.7, "top_k": 5,
                             "top_p": 0.9, "seed": 2}
    assert pg.top_k.max == tok.vocab_size  # top-k can reach "every token"
    assert pg.output.value == "" and pg.text == ""  # nothing is sampled before a click
    assert "application/vnd.jupyter.widget-view+json" in pg._repr_mimebundle_()  # displays as a widget


def test_off_positions_mean_no_filter_and_the_global_rng(model, tok):
    pg = sampling_playground(model, tok, prompt="a", top_k=0, top_p=1.0, seed=-1, length=40)
    settings = pg.settings()
    assert (settings["top_k"], settings["top_p"], settings["seed"]) == (None, None, None)
    torch.manual_seed(123)
    first = pg.generate()
    torch.manual_seed(123)
    assert pg.generate() == first == pg.text  # seed -1 follows torch's global RNG
    torch.manual_seed(123)
    assert first == sample_text(model, tok, "a", 40, temperature=0.8)  # the slider's starting value


def test_button_click_gives_the_text_of_sample_text(model, tok):
    pg = sampling_playground(model, tok, prompt="ROMEO:", temperature=0.8, length=30, seed=42)
    pg.prompt.value = "HAMLET:"  # change controls the way a reader would
    pg.top_k.value = 8
    pg.button.click()
    expected = sample_text(model, tok, "HAMLET:", 30, temperature=0.8, top_k=8, seed=42)
    assert pg.text == expected == sample_text(model, tok, **pg.settings())
    assert expected in pg.output.value
    assert "30 characters" in pg.status.value
    assert not pg.button.disabled


def test_prompt_starts_at_romeo_only_when_the_vocabulary_has_it(model, tok):
    assert sampling_playground(model, tok).prompt.value == "ROMEO:"
    lower = CharTokenizer("\nabc de")  # no capitals, no colon: "ROMEO:" cannot be encoded
    torch.manual_seed(0)
    small = GPT(get_preset("tiny", lower))
    pg = sampling_playground(small, lower, length=12, seed=0)
    assert pg.prompt.value == "\n"  # default_prompt: the newline this vocabulary has
    pg.button.click()
    assert pg.status.value != "error" and pg.text.startswith("\n") and len(pg.text) == 13
    no_newline = CharTokenizer("xyz")
    assert sampling_playground(GPT(get_preset("tiny", no_newline)), no_newline).prompt.value == "x"


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


# --- the attention explorer (notebook 08) -------------------------------------------------------

EXPLORER_TEXT = "ROMEO:\nIs it so?"  # 16 characters: the tiny preset's block_size


@pytest.fixture()
def explorer(model, tok):
    return attention_explorer(model, tok, text=EXPLORER_TEXT, head=0)


def test_explorer_starts_with_the_models_attention(explorer, model, tok):
    assert isinstance(explorer, AttentionExplorer)
    assert torch.equal(explorer.maps, attention_maps(model, tok, EXPLORER_TEXT))
    assert torch.equal(explorer.shown, explorer.maps[0, 0])  # layer 0, head 0
    assert explorer.position.value == explorer.position.max == 15  # the last character
    assert explorer.top == {0: top_attended(explorer.maps, EXPLORER_TEXT, 0, 0, 15, 5)}
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "head 0" in explorer.attended.value and "position 15" in explorer.status.value
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_explorer_reacts_to_layer_head_and_position(explorer):
    image, attended = explorer.image.value, explorer.attended.value
    explorer.layer.value = 1  # the observer calls on_selection_change
    assert torch.equal(explorer.shown, explorer.maps[1, 0]) and explorer.image.value != image
    image = explorer.image.value
    explorer.head.value = 1
    assert torch.equal(explorer.shown, explorer.maps[1, 1]) and explorer.image.value != image
    assert explorer.attended.value != attended
    image, top = explorer.image.value, explorer.top
    explorer.position.value = 6  # the newline after "ROMEO:"
    assert explorer.top == {1: top_attended(explorer.maps, EXPLORER_TEXT, 1, 1, 6, 5)} != top
    assert all(j <= 6 for _, j, _ in explorer.top[1])
    assert explorer.image.value != image  # the highlighted row moved
    explorer.head.value = "all"
    assert explorer.shown.shape == (2, 16, 16) and torch.equal(explorer.shown, explorer.maps[1])
    assert set(explorer.top) == {0, 1} and "head 1" in explorer.attended.value


def test_explorer_handlers_can_be_called_directly(explorer, model, tok):
    explorer.text.value = "JULIET:\nAy me"  # fires on_text_change
    assert torch.equal(explorer.maps, attention_maps(model, tok, "JULIET:\nAy me"))
    assert explorer.position.max == explorer.position.value == 12 and len(explorer.tokens) == 13
    before = explorer.image.value
    explorer.layer.value = 1
    explorer.on_selection_change()
    assert explorer.image.value != before and torch.equal(explorer.shown, explorer.maps[1, 0])


def test_explorer_reports_bad_text_and_keeps_the_last_view(explorer):
    maps, image = explorer.maps, explorer.image.value
    explorer.text.value = "x" * 40  # longer than block_size 16
    assert explorer.status.value.startswith("error:") and "block_size" in explorer.status.value
    assert explorer.maps is maps and explorer.image.value == image
    explorer.text.value = "naïve"
    assert "not in the vocabulary" in explorer.status.value
    explorer.text.value = "fine"  # fixing the text brings the explorer back
    assert explorer.maps.shape[-1] == 4 and not explorer.status.value.startswith("error")


def test_explorer_needs_a_gpt(tok):
    with pytest.raises(TypeError, match="needs a GPT"):
        attention_explorer(BigramLanguageModel(65), tok, text="ab")
