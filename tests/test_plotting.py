"""Tests for plots: loss curves, attention heatmaps and grids, next-character bars, embedding scatters,
and the live-plot callback in and outside notebooks."""

from __future__ import annotations

import io
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from shakespeare_lm import History, plotting
from shakespeare_lm.plotting import (
    LivePlotCallback,
    plot_attention,
    plot_attention_grid,
    plot_embedding_pca,
    plot_history,
    plot_next_char_probs,
)

matplotlib.use("Agg")  # no window; pyplot picks its backend at the first figure


def history(n_evals: int = 3) -> History:
    records = [{"step": step, "train_loss": tr, "val_loss": va, "lr": 1e-3, "tokens_per_sec": 1.0,
                "elapsed": 0.1} for step, tr, va in [(0, 4.2, 4.2), (2, 3.2, 3.3), (4, 2.7, 2.9)][:n_evals]]
    return History.from_dict({"records": records, "iter_losses": [4.0, 3.5, 3.0, 2.8]})


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_history_draws_train_and_val():
    fig, ax = plot_history(history(), title="run 1", log_y=True)
    lines = {line.get_label(): line for line in ax.lines}
    assert {"train (per step)", "train (estimate)", "val (estimate)"} <= set(lines)
    assert list(lines["val (estimate)"].get_xdata()) == [0, 2, 4]
    assert list(lines["val (estimate)"].get_ydata()) == [4.2, 3.3, 2.9]
    assert list(lines["train (per step)"].get_ydata()) == [4.0, 3.5, 3.0, 2.8]
    assert [t.get_text() for t in ax.texts] == ["best val 2.900"]
    assert ax.get_title() == "run 1" and ax.get_yscale() == "log"
    _, ax2 = plt.subplots()
    fig2, same = plot_history(history(), ax=ax2, show_iters=False)
    assert same is ax2 and len(ax2.lines) == 3  # train, val, best-val line: no per-step curve
    plot_history(history(1), ax=ax2)  # redrawing into the same axes replaces the curves
    assert list({line.get_label(): line for line in ax2.lines}["val (estimate)"].get_xdata()) == [0]


def test_plot_history_without_evaluations_or_val_loss():
    _, ax = plot_history(History())
    assert len(ax.lines) == 0 and ax.get_legend() is None
    no_val = History.from_dict({"records": [{"step": 0, "train_loss": 4.0, "val_loss": None, "lr": 1e-3,
                                             "tokens_per_sec": 1.0, "elapsed": 0.1}]})
    _, ax = plot_history(no_val)
    assert len(ax.texts) == 0  # no "best val" line to draw


def test_plot_attention():
    w = torch.tril(torch.ones(4, 4))
    w = w / w.sum(-1, keepdim=True)
    fig, ax = plot_attention(w, "ab\nc", title="head 0")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "⏎", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "⏎", "c"]
    np.testing.assert_allclose(ax.images[0].get_array(), w.numpy())  # row = query, column = key
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert ax.get_title() == "head 0"
    with pytest.raises(ValueError, match="pick one head"):
        plot_attention(torch.ones(2, 4, 4), "abcd")
    with pytest.raises(ValueError, match="3 tokens"):
        plot_attention(w, "abc")


def _record_displays(monkeypatch) -> list:
    import IPython.display

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=False):
        shown.append(("display", obj))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    return shown


def test_live_plot_shows_nothing_outside_a_notebook(monkeypatch):
    pytest.importorskip("IPython")
    shown = _record_displays(monkeypatch)
    figures = plt.get_fignums()
    cb = LivePlotCallback()
    state = SimpleNamespace(history=history())
    cb.on_eval(state)
    cb.on_train_end(state)
    assert shown == [] and plt.get_fignums() == figures


def test_live_plot_updates_one_display_in_a_notebook(monkeypatch):
    pytest.importorskip("IPython")
    shown = _record_displays(monkeypatch)
    monkeypatch.setattr(plotting, "_in_notebook", lambda: True)
    figures = plt.get_fignums()
    cb = LivePlotCallback(every=2)
    for n in (1, 2, 3):  # evaluations 1 and 3 redraw; 2 is skipped
        cb.on_eval(SimpleNamespace(history=history(n)))
    cb.on_train_end(SimpleNamespace(history=history(3)))
    assert [kind for kind, _ in shown] == ["display", "update", "update"]  # one output, redrawn in place
    assert all(obj.data.startswith(b"\x89PNG") for _, obj in shown)  # a picture, not a Figure repr
    first, last = (plt.imread(io.BytesIO(obj.data))[..., :3] for obj in (shown[0][1], shown[-1][1]))
    orange = np.array(matplotlib.colors.to_rgb("tab:orange"))
    assert (np.abs(last - orange).sum(-1) < 0.1).sum() > 20  # the val curve is drawn
    assert not np.array_equal(first, last)  # a later redraw shows the new points
    assert plt.get_fignums() == figures  # no pyplot figure left to print a second copy


def test_plot_attention_highlights_the_chosen_row_and_labels_spaces():
    w = torch.eye(3)
    _, ax = plot_attention(w, "a b", highlight=1, colorbar=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "␣", "b"]
    (box,) = ax.patches
    assert box.get_xy() == (-0.5, 0.5) and (box.get_width(), box.get_height()) == (3, 1)  # row 1, all keys
    assert len(ax.figure.axes) == 1  # no colorbar axes


def test_plot_attention_grid_draws_every_head_of_a_layer():
    w = torch.rand(6, 5, 5).tril()
    fig, axes = plot_attention_grid(w, "ab\ncd", title="layer 2")
    assert len(axes) == 6 and [ax.get_title() for ax in axes] == [f"head {h}" for h in range(6)]
    for h, ax in enumerate(axes):
        np.testing.assert_allclose(ax.images[0].get_array(), w[h].numpy())
        assert ax.images[0].get_clim() == (0.0, 1.0)  # one colour scale for every head
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["a", "b", "⏎", "c", "d"]
    assert fig._suptitle.get_text() == "layer 2"
    _, long_axes = plot_attention_grid(torch.eye(30).expand(2, 30, 30), "ab\ncd" * 6)
    assert list(long_axes[1].get_yticks()) == [2, 7, 12, 17, 22, 27]  # a long text: line breaks only
    assert {t.get_text() for t in long_axes[1].get_xticklabels()} == {"⏎"}
    spare = [ax for ax in fig.axes if ax not in list(axes) and not ax.images and not ax.axison]
    assert len(spare) == 2  # 6 heads in a 2 x 4 grid: two empty cells switched off
    with pytest.raises(ValueError, match="one layer"):
        plot_attention_grid(torch.ones(5, 5), "abcde")
    with pytest.raises(ValueError, match="4 tokens"):
        plot_attention_grid(w, "abcd")


def test_plot_next_char_probs_bars_in_the_given_order():
    probs = [("e", 0.5), (" ", 0.3), ("\n", 0.1)]
    _, ax = plot_next_char_probs(probs, title="after 'th'")
    assert [b.get_height() for b in ax.patches] == [0.5, 0.3, 0.1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["e", "␣", "⏎"]
    assert [t.get_text() for t in ax.texts] == ["0.50", "0.30", "0.10"]
    assert ax.get_title() == "after 'th'"


def test_plot_embedding_pca_colours_points_by_character_class():
    labels = list("aeb\n A!")
    coords = torch.arange(14, dtype=torch.float).view(7, 2)
    _, ax = plot_embedding_pca(coords, labels)
    groups = {c.get_label(): c.get_offsets().tolist() for c in ax.collections}
    assert groups == {"vowel": [[0, 1], [2, 3]], "consonant": [[4, 5]], "capital": [[10, 11]],
                      "punctuation": [[12, 13]], "space": [[6, 7], [8, 9]]}
    assert [t.get_text() for t in ax.texts] == ["a", "e", "b", "⏎", "␣", "A", "!"]
    with pytest.raises(ValueError, match="7 labels"):
        plot_embedding_pca(torch.zeros(7, 3), labels)
