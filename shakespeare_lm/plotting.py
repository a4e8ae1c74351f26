"""Pictures of training and of a trained model: loss curves (also live, while `train` runs), attention
heatmaps (one head, or every head of a layer), next-character probabilities and embeddings in 2-D.

Follows the plots of the Zero-to-Hero lectures (loss vs step; the `wei` matrix as an image).
Shapes: T time, nh heads, V vocab size. Importing this module does not import pyplot or touch
matplotlib's backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .explorer import CHAR_CLASSES, char_class, show_char


def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def plot_history(history, ax=None, *, show_iters: bool = True, log_y: bool = False, title: str | None = None):
    """Train and val loss against step (and, faintly, every step's train loss) -> (fig, ax).

    `history` is a train.History (or anything with steps / train_loss / val_loss / iter_losses).
    """
    fig, ax = _new_axes(ax, (6, 3.5))
    ax.clear()
    iters = list(getattr(history, "iter_losses", []) or [])
    if show_iters and iters:
        ax.plot(range(1, len(iters) + 1), iters, color="tab:blue", alpha=0.25, lw=0.8,
                label="train (per step)")
    if len(history):
        ax.plot(history.steps, history.train_loss, "o-", color="tab:blue", ms=3, label="train (estimate)")
        ax.plot(history.steps, history.val_loss, "o-", color="tab:orange", ms=3, label="val (estimate)")
        best = history.best_val_loss
        if best is not None:  # None when no evaluation had a val split
            ax.axhline(best, color="tab:orange", ls=":", lw=0.8)
            ax.annotate(f"best val {best:.3f}", (1.0, best), xycoords=("axes fraction", "data"),
                        ha="right", va="bottom", fontsize=8, color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    if log_y:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="upper right", fontsize=8)
    return fig, ax


def _as_numpy(weights):
    import numpy as np

    if hasattr(weights, "detach"):
        weights = weights.detach().float().cpu().numpy()
    return np.asarray(weights, dtype=float)


def plot_attention(
    weights, tokens: Sequence[str] | str, ax=None, *, title: str | None = None, cmap: str = "viridis",
    highlight: int | None = None, colorbar: bool = True,
):
    """Heatmap of one head's attention weights (T, T): row = query position, column = key -> (fig, ax).

    `tokens` labels both axes (a string is split into characters; newlines show as ⏎, spaces as ␣).
    `highlight` outlines one query row (the position the explorer looks at).
    """
    w = _as_numpy(weights)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"plot_attention expects one (T, T) matrix, got shape {tuple(w.shape)}; "
                         "pick one head, e.g. weights[0, head] of a (B, nh, T, T) tensor")
    labels = [show_char(t) for t in tokens]
    if len(labels) != w.shape[0]:
        raise ValueError(f"got {len(labels)} tokens for a {w.shape[0]}x{w.shape[0]} attention matrix")
    side = min(max(3.0, 0.28 * len(labels)), 10.0)
    fig, ax = _new_axes(ax, (side + 1, side))
    im = ax.imshow(w, cmap=cmap, vmin=0.0, vmax=max(float(w.max()), 1e-9))
    fontsize = 8 if len(labels) <= 40 else 5
    ax.set_xticks(range(len(labels)), labels, fontsize=fontsize)
    ax.set_yticks(range(len(labels)), labels, fontsize=fontsize)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if highlight is not None:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((-0.5, highlight - 0.5), len(labels), 1, fill=False, ec="red", lw=1.2))
    if title:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig, ax


def plot_attention_grid(weights, tokens: Sequence[str] | str, fig=None, *, title: str | None = None,
                        ncols: int = 4, cmap: str = "viridis"):
    """Every head of one layer side by side: weights (nh, T, T) -> (fig, axes), one heatmap per head.

    Every character labels the axes of a short text (up to 24 tokens), only the line breaks (⏎) of a
    longer one; the colour scale is 0..1 for every head.
    """
    w = _as_numpy(weights)
    if w.ndim != 3 or w.shape[1] != w.shape[2]:
        raise ValueError(f"plot_attention_grid expects (nh, T, T) weights of one layer, got {tuple(w.shape)}")
    labels = [show_char(t) for t in tokens]
    if len(labels) != w.shape[1]:
        raise ValueError(f"got {len(labels)} tokens for {w.shape[1]}x{w.shape[1]} attention matrices")
    nh = w.shape[0]
    ncols = max(1, min(ncols, nh))
    nrows = math.ceil(nh / ncols)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(2.2 * ncols + 0.6, 2.3 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for h, ax in enumerate(axes):
        if h >= nh:
            ax.set_axis_off()
            continue
        im = ax.imshow(w[h], cmap=cmap, vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=9)
        # every character for a short text; for a long one only the line breaks, to read by
        ticks = range(len(labels)) if len(labels) <= 24 else [i for i, t in enumerate(labels) if t == "⏎"]
        ax.set_xticks(ticks, [labels[i] for i in ticks], fontsize=6)
        ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=6)
    fig.colorbar(im, ax=list(axes), fraction=0.02, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, axes[:nh]


def plot_next_char_probs(probs: Sequence[tuple[str, float]], ax=None, *, title: str | None = None):
    """Bar chart of [(char, probability)] (next_char_probs' output), most likely on the left -> (fig, ax)."""
    fig, ax = _new_axes(ax, (7, 3))
    labels = [show_char(c) for c, _ in probs]
    ax.bar(range(len(probs)), [p for _, p in probs], color="tab:blue")
    ax.set_xticks(range(len(probs)), labels, fontsize=10)
    ax.set_ylabel("probability")
    ax.set_xlabel("next character")
    ax.set_ylim(0, 1)
    for i, (_, p) in enumerate(probs):
        ax.annotate(f"{p:.2f}", (i, p), ha="center", va="bottom", fontsize=8)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


_CLASS_COLORS = {"vowel": "tab:red", "consonant": "tab:blue", "capital": "tab:green",
                 "punctuation": "tab:orange", "space": "tab:purple"}


def plot_embedding_pca(coords, labels: Sequence[str], ax=None, *, title: str | None = None):
    """Scatter of embeddings in 2-D (embedding_pca's output), each point written as its character and
    coloured by char_class: vowel, consonant, capital, punctuation, space -> (fig, ax)."""
    c = _as_numpy(coords)
    if c.ndim != 2 or c.shape[1] != 2 or c.shape[0] != len(labels):
        raise ValueError(f"expected (V, 2) coordinates for {len(labels)} labels, got {tuple(c.shape)}")
    fig, ax = _new_axes(ax, (7, 5))
    classes = [char_class(t) for t in labels]
    for cls in CHAR_CLASSES:
        pts = [i for i, k in enumerate(classes) if k == cls]
        if pts:
            ax.scatter(c[pts, 0], c[pts, 1], s=90, color=_CLASS_COLORS[cls], alpha=0.25, label=cls)
    for i, t in enumerate(labels):
        ax.annotate(show_char(t), (c[i, 0], c[i, 1]), ha="center", va="center", fontsize=9,
                    color=_CLASS_COLORS[classes[i]])
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig, ax


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LivePlotCallback:
    """A `train` callback that redraws the loss curves in a notebook at every evaluation.

    Updates one display in place (an IPython display handle, no clear_output), so the cell keeps
    a single final figure. Outside a Jupyter kernel it does nothing.
    """

    def __init__(self, every: int = 1, show_iters: bool = True, figsize: tuple[float, float] = (6, 3.5)):
        self.every = every  # redraw at every `every`-th evaluation
        self.show_iters = show_iters  # also draw the per-step train loss
        self.figsize = figsize
        self.enabled = _in_notebook()
        self._fig = self._ax = self._handle = None
        self._evals = 0

    def _draw(self, history) -> None:
        if not self.enabled:
            return
        import io

        from IPython.display import Image, display
        from matplotlib.figure import Figure

        if self._fig is None:
            self._fig = Figure(figsize=self.figsize)  # not pyplot: no second copy at the end of the cell
            self._ax = self._fig.add_subplot()
        plot_history(history, self._ax, show_iters=self.show_iters)
        # Render the PNG here rather than rely on the kernel's matplotlib formatter, which is not
        # registered until pyplot has been used once in the session.
        buf = io.BytesIO()
        self._fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        image = Image(data=buf.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)

    def on_eval(self, state) -> None:
        self._evals += 1
        if (self._evals - 1) % self.every == 0:
            self._draw(state.history)

    def on_train_end(self, state) -> None:
        self._draw(state.history)
