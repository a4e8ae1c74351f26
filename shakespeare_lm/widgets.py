"""Interactive notebook UIs, each a thin ipywidgets layer over a plain function you can call directly.

Follows GUIDE §5 (widgets are built on tested functions); the sampling playground is used in
notebook 05. ipywidgets is imported only when a UI is built, so importing this module needs only torch.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator

import torch
from torch import nn

from .sampling import stream_text


def _sampling_args(top_k: int | None, top_p: float | None, seed: int | None):
    """Map the controls' "off" values to None: top_k 0, top_p 1 and a negative seed."""
    top_k = None if top_k is None or int(top_k) == 0 else int(top_k)
    top_p = None if top_p is None or float(top_p) >= 1.0 else float(top_p)
    seed = None if seed is None or int(seed) < 0 else int(seed)
    return top_k, top_p, seed


def playground_stream(
    model: nn.Module,
    tokenizer,
    prompt: str = "",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    length: int = 300,
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> Iterator[str]:
    """Yield the prompt, then `length` sampled characters one piece at a time.

    The same settings as the playground's controls: top_k=0 (or None) and top_p=1 (or None) switch
    those filters off, temperature=0 is greedy, seed=None (or a negative seed) samples from torch's
    global RNG. Bad arguments (unknown characters, temperature < 0, ...) raise ValueError at once.
    """
    top_k, top_p, seed = _sampling_args(top_k, top_p, seed)
    return stream_text(
        model,
        tokenizer,
        prompt,
        max_new_tokens=length,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        device=device,
    )


def playground_generate(
    model: nn.Module,
    tokenizer,
    prompt: str = "",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    length: int = 300,
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> str:
    """Return the prompt followed by `length` sampled characters (what the playground shows)."""
    pieces = playground_stream(model, tokenizer, prompt, temperature, top_k, top_p, length, seed, device)
    return "".join(pieces)


class SamplingPlayground:
    """Prompt, temperature, top-k, top-p, length and seed controls with a Generate button (notebook 05).

    Display it as the last expression of a cell. `generate()` (or `button.click()`) samples with the
    current control values and streams the text into `output`; `text` holds the plain result.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        prompt: str = "ROMEO:",
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
        """The current control values, as keyword arguments of `playground_generate`."""
        return {
            "prompt": self.prompt.value,
            "temperature": float(self.temperature.value),
            "top_k": int(self.top_k.value),
            "top_p": float(self.top_p.value),
            "length": int(self.length.value),
            "seed": int(self.seed.value),
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
            pieces = playground_stream(self.model, self.tokenizer, device=self.device, **self.settings())
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
