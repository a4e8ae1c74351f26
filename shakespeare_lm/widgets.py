"""Interactive notebook UIs, each a thin ipywidgets layer over a plain function you can call directly.

The sampling playground (notebook 05) is a set of controls over `sampling.stream_text`; call
`sample_text` with `playground.settings()` to get the same text without the widget. The attention
explorer (notebook 08) draws `explorer.attention_maps` with plotting's heatmaps and lists
`explorer.top_attended`. ipywidgets is imported only when a UI is built, so importing this module
needs only torch (and matplotlib's non-pyplot Figure for the explorer's images).
"""

from __future__ import annotations

import html
import io
import time

import torch
from torch import nn

from .explorer import attention_maps, show_char, token_strings, top_attended
from .plotting import plot_attention, plot_attention_grid
from .sampling import default_prompt, stream_text

SHAKESPEARE_PROMPT = "ROMEO:"


def _start_prompt(tokenizer) -> str:
    """"ROMEO:" when the tokenizer can write it, else a start that works for any vocabulary."""
    try:
        if tokenizer.decode(tokenizer.encode(SHAKESPEARE_PROMPT)) == SHAKESPEARE_PROMPT:
            return SHAKESPEARE_PROMPT
    except ValueError:
        pass
    return default_prompt(tokenizer)


class SamplingPlayground:
    """Prompt, temperature, top-k, top-p, length and seed controls with a Generate button (notebook 05).

    Display it as the last expression of a cell. `generate()` (or `button.click()`) samples with the
    current control values and streams the text into `output`; `text` holds the plain result, equal to
    `sample_text(model, tokenizer, **playground.settings())`. The prompt starts at "ROMEO:" when the
    tokenizer can encode it, else at `default_prompt(tokenizer)`.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        prompt: str | None = None,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        length: int = 300,
        seed: int = 1337,
        device: str | torch.device | None = None,
        update_every: int = 10,
    ):
        import ipywidgets as W

        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.update_every = max(1, int(update_every))
        self.text = ""
        wide = W.Layout(width="95%")
        style = {"description_width": "110px"}
        prompt = _start_prompt(tokenizer) if prompt is None else prompt
        self.prompt = W.Textarea(value=prompt, description="prompt", layout=wide, style=style)
        self.temperature = W.FloatSlider(
            value=temperature, min=0.0, max=2.0, step=0.05, description="temperature", style=style
        )
        self.top_k = W.IntSlider(
            value=top_k, min=0, max=tokenizer.vocab_size, description="top-k (0 = off)", style=style
        )
        self.top_p = W.FloatSlider(
            value=top_p, min=0.05, max=1.0, step=0.05, description="top-p (1 = off)", style=style
        )
        self.length = W.IntSlider(value=length, min=1, max=2000, description="length", style=style)
        self.seed = W.IntText(value=seed, description="seed (-1 = random)", style=style)
        self.button = W.Button(description="Generate", button_style="primary", icon="play")
        self.status = W.Label(value="")
        self.output = W.HTML(value="")
        self.button.on_click(lambda _button: self.generate())
        self.widget = W.VBox(
            [
                self.prompt,
                W.HBox([self.temperature, self.length]),
                W.HBox([self.top_k, self.top_p]),
                W.HBox([self.seed, self.button, self.status]),
                self.output,
            ]
        )

    def settings(self) -> dict:
        """The current control values as keyword arguments of `sample_text` / `stream_text`.

        The controls' "off" positions become None: top-k 0, top-p 1 and a negative seed (which
        samples from torch's global RNG).
        """
        top_k, top_p, seed = int(self.top_k.value), float(self.top_p.value), int(self.seed.value)
        return {
            "prompt": self.prompt.value,
            "max_new_tokens": int(self.length.value),
            "temperature": float(self.temperature.value),
            "top_k": top_k if top_k > 0 else None,
            "top_p": top_p if top_p < 1.0 else None,
            "seed": seed if seed >= 0 else None,
        }

    def _show(self, text: str) -> None:
        self.output.value = f"<pre style='white-space: pre-wrap; margin: 0'>{html.escape(text)}</pre>"

    def generate(self) -> str:
        """Sample with the current settings, streaming into `output`; errors are shown, not raised."""
        self.button.disabled = True
        self.status.value = "generating..."
        self.text = ""
        start = time.perf_counter()
        try:
            pieces = stream_text(self.model, self.tokenizer, device=self.device, **self.settings())
            for i, piece in enumerate(pieces):
                self.text += piece
                if i % self.update_every == 0:
                    self._show(self.text)
            self._show(self.text)
            n_new = int(self.length.value)
            self.status.value = f"{n_new} characters in {time.perf_counter() - start:.1f} s"
        except (ValueError, TypeError) as e:  # bad settings: tell the reader, keep the UI alive
            self._show(f"{type(e).__name__}: {e}")
            self.status.value = "error"
        finally:
            self.button.disabled = False
        return self.text

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def sampling_playground(model: nn.Module, tokenizer, **defaults) -> SamplingPlayground:
    """Build the sampling playground for `model`; `defaults` set the controls' starting values."""
    return SamplingPlayground(model, tokenizer, **defaults)


# Two speakers, so newline and speaker-name heads have something to show; 60 characters (block 64).
EXPLORER_TEXT = "ROMEO:\nIs the day so young?\n\nBENVOLIO:\nBut new struck nine.\n"
ALL_HEADS = "all"


def _start_text(tokenizer, block_size: int) -> str:
    """EXPLORER_TEXT when it fits the vocabulary and the context, else the vocabulary's first tokens."""
    try:
        if len(tokenizer.encode(EXPLORER_TEXT)) <= block_size:
            return EXPLORER_TEXT
    except ValueError:
        pass
    return tokenizer.decode(list(range(min(tokenizer.vocab_size, block_size, 32))))


def _shaded(tokens: list[str], weights, position: int) -> str:
    """The text as HTML, each character shaded by the weight `position` gives it (outlined: position)."""
    spans = []
    for j, tok in enumerate(tokens[: position + 1]):
        a = float(weights[j])
        border = "outline: 1px solid red;" if j == position else ""
        spans.append(f"<span title='{j}: {a:.3f}' style='background: rgba(255,140,0,{min(1.0, a):.3f});"
                     f"{border}'>{html.escape(show_char(tok))}</span>")
    return "<span style='font-family: monospace'>" + "".join(spans) + "</span>"


class AttentionExplorer:
    """Text box, layer and head dropdowns ("all heads" = a grid) and a position slider over a GPT's
    attention weights (notebook 08).

    Display it as the last expression of a cell. `maps` holds attention_maps(model, tokenizer, text)
    (n_layer, nh, T, T); `shown` the weights in the current image, (T, T) for one head or (nh, T, T);
    `top` the current top_attended list per head shown; `image` the PNG. Changing a control calls
    `on_text_change` or `on_selection_change`, which a test (or a reader) can also call directly.
    """

    def __init__(self, model: nn.Module, tokenizer, *, text: str | None = None, layer: int = 0,
                 head: int | str = ALL_HEADS, position: int | None = None, k: int = 5, dpi: int = 100):
        import ipywidgets as W

        self.model, self.tokenizer, self.k, self.dpi = model, tokenizer, k, dpi
        text = _start_text(tokenizer, getattr(model, "block_size", None) or 64) if text is None else text
        # (n_layer, nh, T, T); a model without attention or a text it cannot read raises here
        self.maps = attention_maps(model, tokenizer, text)
        n_layer, nh = self.maps.shape[:2]
        self.tokens = token_strings(tokenizer, tokenizer.encode(text))
        T = len(self.tokens)
        self.shown = None
        self.top: dict[int, list] = {}
        self._quiet = False  # set while on_text_change moves the slider itself
        style = {"description_width": "70px"}
        self.text = W.Textarea(value=text, description="text", continuous_update=False,
                               layout=W.Layout(width="95%", height="70px"), style=style)
        self.layer = W.Dropdown(options=[(f"layer {i}", i) for i in range(n_layer)], value=layer,
                                description="layer", style=style)
        self.head = W.Dropdown(options=[("all heads", ALL_HEADS)] + [(f"head {h}", h) for h in range(nh)],
                               value=head, description="head", style=style)
        self.position = W.IntSlider(value=T - 1 if position is None else position, min=0, max=T - 1,
                                    description="position", continuous_update=False, style=style)
        self.status = W.Label(value="")
        # shown at its own size: stretched to the full width it would blur
        self.image = W.Image(format="png", layout=W.Layout(align_self="flex-start", max_width="100%"))
        self.attended = W.HTML(value="")
        self.text.observe(self.on_text_change, names="value")
        for control in (self.layer, self.head, self.position):
            control.observe(self.on_selection_change, names="value")
        self.widget = W.VBox([self.text, W.HBox([self.layer, self.head, self.position]), self.status,
                              self.attended, self.image])
        self.update()

    def on_text_change(self, change=None) -> None:
        """New text: recompute the maps; a text the model cannot read is reported, keeping the old view."""
        text = self.text.value
        try:
            maps = attention_maps(self.model, self.tokenizer, text)
        except ValueError as e:
            self.status.value = f"error: {e}"
            return
        self.maps, self.tokens = maps, token_strings(self.tokenizer, self.tokenizer.encode(text))
        T = len(self.tokens)
        self._quiet = True  # one redraw below, not one per slider trait
        try:
            self.position.max = T - 1
            self.position.value = T - 1
        finally:
            self._quiet = False
        self.update()

    def on_selection_change(self, change=None) -> None:
        if not self._quiet:
            self.update()

    def heads(self) -> list[int]:
        """The heads on show: one, or all of the layer."""
        head = self.head.value
        return list(range(self.maps.size(1))) if head == ALL_HEADS else [int(head)]

    def update(self) -> None:
        """Redraw the image and the top attended characters for the current controls."""
        from matplotlib.figure import Figure

        layer, pos = int(self.layer.value), min(int(self.position.value), len(self.tokens) - 1)
        heads = self.heads()
        self.top = {h: top_attended(self.maps, self.tokens, layer, h, pos, self.k) for h in heads}
        if self.head.value == ALL_HEADS:
            self.shown = self.maps[layer].clone()  # (nh, T, T)
            fig = Figure(figsize=(2.2 * min(4, len(heads)) + 0.6, 2.3 * -(-len(heads) // 4) + 0.4))
            plot_attention_grid(self.shown, self.tokens, fig, title=f"layer {layer}, all heads")
        else:
            self.shown = self.maps[layer, heads[0]].clone()  # (T, T)
            fig = Figure(figsize=(6, 5))
            plot_attention(self.shown, self.tokens, fig.add_subplot(), highlight=pos,
                           title=f"layer {layer}, head {heads[0]}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi, bbox_inches="tight")
        self.image.value = buf.getvalue()
        rows = []
        for h, top in self.top.items():
            listed = ", ".join(f"{html.escape(repr(show_char(c)))}@{j} {w:.2f}" for c, j, w in top)
            rows.append(f"<div><b>head {h}</b>: {_shaded(self.tokens, self.maps[layer, h, pos], pos)}"
                        f" &nbsp; top: {listed}</div>")
        self.attended.value = "".join(rows)
        self.status.value = (f"position {pos} ({show_char(self.tokens[pos])!r}) attends to "
                             f"(orange = more attention):")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def attention_explorer(model: nn.Module, tokenizer, text: str | None = None, **options) -> AttentionExplorer:
    """Build the attention explorer for a GPT; `options` set layer, head ("all" or a number), position, k."""
    return AttentionExplorer(model, tokenizer, text=text, **options)
