"""Pictures of training: loss curves (also live, while `train` runs) and attention heatmaps.

Follows the plots of the Zero-to-Hero lectures (loss vs step; the `wei` matrix as an image).
Shapes: T time. Importing this module does not import pyplot or touch matplotlib's backend.
"""

from __future__ import annotations

from collections.abc import Sequence


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


def plot_attention(
    weights, tokens: Sequence[str] | str, ax=None, *, title: str | None = None, cmap: str = "viridis"
):
    """Heatmap of one head's attention weights (T, T): row = query position, column = key -> (fig, ax).

    `tokens` labels both axes (a string is split into characters; newlines show as ⏎).
    """
    import numpy as np

    if hasattr(weights, "detach"):
        weights = weights.detach().float().cpu().numpy()
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"plot_attention expects one (T, T) matrix, got shape {tuple(w.shape)}; "
                         "pick one head, e.g. weights[0, head] of a (B, nh, T, T) tensor")
    labels = [{"\n": "⏎", " ": "␣"}.get(t, t) for t in tokens]
    if len(labels) != w.shape[0]:
        raise ValueError(f"got {len(labels)} tokens for a {w.shape[0]}x{w.shape[0]} attention matrix")
    side = min(max(3.0, 0.28 * len(labels)), 10.0)
    fig, ax = _new_axes(ax, (side + 1, side))
    im = ax.imshow(w, cmap=cmap, vmin=0.0, vmax=max(float(w.max()), 1e-9))
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
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
