"""Interactive notebook UIs, each a thin ipywidgets layer over a plain function you can call directly.

The sampling playground (notebook 05) is a set of controls over `sampling.stream_text`; call
`sample_text` with `playground.settings()` to get the same text without the widget. ipywidgets is
imported only when a UI is built, so importing this module needs only torch.
"""

from __future__ import annotations

import html
import time

import torch
from torch import nn

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
