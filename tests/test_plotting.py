"""Tests for plots: loss curves, attention heatmaps, and the live-plot callback in and outside notebooks."""

from __future__ import annotations

import io
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from shakespeare_lm import History, plotting
from shakespeare_lm.plotting import LivePlotCallback, plot_attention, plot_history

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
