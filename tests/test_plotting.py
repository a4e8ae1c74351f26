"""Tests for plots: loss curves, attention heatmaps, and the live-plot callback outside notebooks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from shakespeare_lm.plotting import LivePlotCallback, plot_attention, plot_history  # noqa: E402
from shakespeare_lm.train import History, TrainState  # noqa: E402


def history():
    h = History(iter_losses=[4.0, 3.5, 3.0, 2.8])
    for step, tr, va in [(0, 4.2, 4.2), (2, 3.2, 3.3), (4, 2.7, 2.9)]:
        h.records.append({"step": step, "train_loss": tr, "val_loss": va, "lr": 1e-3, "tokens_per_sec": 1.0,
                          "elapsed": 0.1})
    return h


def test_plot_history_draws_train_and_val():
    fig, ax = plot_history(history())
    labels = [line.get_label() for line in ax.lines]
    assert "train (estimate)" in labels and "val (estimate)" in labels and "train (per step)" in labels
    val = next(line for line in ax.lines if line.get_label() == "val (estimate)")
    assert list(val.get_xdata()) == [0, 2, 4] and list(val.get_ydata()) == [4.2, 3.3, 2.9]
    _, ax2 = plt.subplots()
    fig2, same = plot_history(history(), ax=ax2, show_iters=False)
    assert same is ax2 and len(ax2.lines) == 3  # train, val, best-val line
    plt.close("all")


def test_plot_attention():
    w = torch.tril(torch.ones(4, 4))
    w = w / w.sum(-1, keepdim=True)
    fig, ax = plot_attention(w, "ab\nc")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "⏎", "c"]
    assert ax.images[0].get_array().shape == (4, 4)
    with pytest.raises(ValueError, match="pick one head"):
        plot_attention(torch.ones(2, 4, 4), "abcd")
    with pytest.raises(ValueError, match="3 tokens"):
        plot_attention(w, "abc")
    plt.close("all")


def test_live_plot_is_a_no_op_outside_ipython():
    cb = LivePlotCallback()
    assert not cb.enabled
    state = TrainState(config=None, model=None, optimizer=None, history=history())
    cb.on_eval(state)
    cb.on_train_end(state)
    assert cb._fig is None


def test_live_plot_updates_one_display_in_a_notebook(monkeypatch):
    pytest.importorskip("IPython")
    import IPython.display

    from shakespeare_lm import plotting

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=False):
        shown.append(("display", obj))
        return Handle()

    monkeypatch.setattr(plotting, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    cb = LivePlotCallback()
    state = TrainState(config=None, model=None, optimizer=None, history=history())
    cb.on_eval(state)
    cb.on_eval(state)
    cb.on_train_end(state)
    assert [kind for kind, _ in shown] == ["display", "update", "update"]  # one output, redrawn in place
    assert all(isinstance(obj, IPython.display.Image) for _, obj in shown)
    assert all(obj.data.startswith(b"\x89PNG") for _, obj in shown)  # a picture, not a Figure repr
    assert cb._ax.lines  # the curves were drawn
