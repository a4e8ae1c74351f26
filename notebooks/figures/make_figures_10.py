"""Draw notebook 10's diagrams as SVG files next to this script, the same bytes on every run.

Run `python notebooks/figures/make_figures_10.py`. It reuses the boxes, colours and SVG settings of
make_figures.py (the other notebooks' diagrams), so the series looks the same throughout. The names
follow the lecture and nanoGPT (token_embedding_table, sa, ffwd, ln_f, lm_head); RoPE follows RoFormer
(Su et al. 2021): each pair of query/key channels is rotated by position times its frequency.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from make_figures import (
    ATTN,
    DATA,
    EMBED,
    FFWD,
    HEAD,
    INK,
    MUTED,
    NORM,
    arrow,
    box,
    canvas,
    label,
    line,
    plus,
    save,
    title,
)
from matplotlib.patches import Arc, FancyBboxPatch

NEW = ("#fdf2f8", "#db2777")  # the callouts: what this notebook changes
Q_COLOR, K_COLOR = "#ea580c", "#2563eb"


def callout(ax, x, y, w, h, text, target):
    """A note box centred at (x, y) with a dashed line to the point `target` in the diagram."""
    fill, edge = NEW
    ax.add_patch(
        FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                       facecolor=fill, edgecolor=edge, lw=1.1)
    )
    ax.text(x - w / 2 + 0.1, y, text, ha="left", va="center", fontsize=8.5, color=INK, linespacing=1.35)
    ax.plot([x - w / 2, target[0]], [y, target[1]], color=edge, lw=1.0, ls=(0, (3, 2)))


def modern_gpt() -> Path:
    """The GPT of notebook 05, with the five places where notebook 10's changes act."""
    W, H = 9.0, 8.45
    fig, ax = canvas(W, H)
    title(ax, W / 2, H - 0.3, "The 2017 GPT, and where today's changes act")
    sx, bx, bw = 1.35, 2.85, 2.3  # residual stream x, branch box x, branch box width
    cx, cw = 6.75, 4.1  # callout column

    y = H - 0.85
    box(ax, sx + 0.6, y, 1.8, 0.36, "idx: token ids", DATA, size=9)
    ye = y - 0.75
    box(ax, 0.95, ye, 1.5, 0.5, "token_embedding\n_table", EMBED, size=8.5)
    box(ax, 2.85, ye, 1.6, 0.5, "position_embedding\n_table", EMBED, size=8.5)
    arrow(ax, (sx + 0.3, y - 0.18), (0.95, ye + 0.25))
    arrow(ax, (sx + 0.9, y - 0.18), (2.85, ye + 0.25))
    yp = ye - 0.6
    arrow(ax, (0.95, ye - 0.25), (sx - 0.1, yp + 0.11))
    arrow(ax, (2.85, ye - 0.25), (sx + 0.12, yp + 0.07))
    plus(ax, sx, yp)
    callout(ax, cx, ye, cw, 0.62,
            "positions: learned table (GPT-2) · sinusoidal\ntable (Vaswani et al. 2017) · none: RoPE\n"
            "rotates q and k instead (Su et al. 2021)", (3.65, ye))

    # one block: attention branch in detail, then the feed-forward branch
    top = yp - 0.3
    line(ax, [(sx, yp - 0.14), (sx, top)])
    fork = top - 0.1
    line(ax, [(sx, top), (sx, fork), (bx, fork)])
    yl = fork - 0.35
    arrow(ax, (bx, fork), (bx, yl + 0.15))
    box(ax, bx, yl, bw, 0.3, "ln1: LayerNorm", NORM, size=8.5)
    yq = yl - 0.55
    arrow(ax, (bx, yl - 0.15), (bx, yq + 0.2))
    box(ax, bx, yq, bw, 0.4, "query, key, value", ATTN, size=8.5)
    yn = yq - 0.6
    arrow(ax, (bx, yq - 0.2), (bx, yn + 0.2))
    box(ax, bx, yn, bw, 0.4, "q, k: [QK-norm] [RoPE]", ATTN, size=8.5)
    ys = yn - 0.6
    arrow(ax, (bx, yn - 0.2), (bx, ys + 0.2))
    box(ax, bx, ys, bw, 0.4, "softmax(q·kᵀ/√hs) v, proj", ATTN, size=8.5)
    y_plus = ys - 0.45
    line(ax, [(bx, ys - 0.2), (bx, y_plus)])
    arrow(ax, (bx, y_plus), (sx + 0.14, y_plus))
    arrow(ax, (sx, fork), (sx, y_plus + 0.14))
    plus(ax, sx, y_plus)
    callout(ax, cx, yn + 0.05, cw, 0.78,
            "QK-norm: every query and key scaled to\nroot-mean-square 1 (Dehghani et al. 2023)\n"
            "RoPE: each channel pair rotated by\nposition × frequency", (bx + bw / 2, yn))

    fork = y_plus - 0.3
    line(ax, [(sx, y_plus - 0.14), (sx, fork), (bx, fork)])
    yl = fork - 0.35
    arrow(ax, (bx, fork), (bx, yl + 0.15))
    box(ax, bx, yl, bw, 0.3, "ln2: LayerNorm", NORM, size=8.5)
    yf = yl - 0.6
    arrow(ax, (bx, yl - 0.15), (bx, yf + 0.25))
    box(ax, bx, yf, bw, 0.5, "Linear C→4C, activation,\nLinear 4C→C", FFWD, size=8.5)
    y_plus2 = yf - 0.5
    line(ax, [(bx, yf - 0.25), (bx, y_plus2)])
    arrow(ax, (bx, y_plus2), (sx + 0.14, y_plus2))
    arrow(ax, (sx, fork), (sx, y_plus2 + 0.14))
    plus(ax, sx, y_plus2)
    callout(ax, cx, yf, cw, 0.62,
            "activation: ReLU (2017, the lecture) · GELU\n(GPT-1/2, nanoGPT) · ReLU² (Primer,\n"
            "modded-nanogpt)", (bx + bw / 2, yf))
    ax.add_patch(
        FancyBboxPatch((0.2, y_plus2 - 0.22), 4.05, top - y_plus2 + 0.3,
                       boxstyle="round,pad=0,rounding_size=0.1", facecolor="none", edgecolor=MUTED, lw=1.1,
                       linestyle=(0, (4, 3)))
    )
    label(ax, 0.32, top - 0.05, "Block\n× n_layer", size=8.5, color=INK, ha="left", va="top")

    yh = y_plus2 - 0.75
    arrow(ax, (sx, y_plus2 - 0.14), (sx, yh + 0.18))
    box(ax, sx + 0.45, yh, 1.9, 0.36, "ln_f, lm_head: C → V", EMBED, size=8.5)
    yo = yh - 0.6
    arrow(ax, (sx, yh - 0.18), (sx, yo + 0.17))
    box(ax, sx + 0.45, yo, 1.2, 0.34, "logits", HEAD, size=9)
    callout(ax, cx, yh - 0.05, cw, 0.5,
            "lm_head: tied to the token embedding\n(GPT-2) · untied, its own matrix (LLaMA)", (sx + 1.4, yh))
    callout(ax, cx, (yn + yf) / 2, cw, 0.78,
            "optimizer: AdamW for everything · Muon\n(Jordan 2024) for the blocks' matrices —\n"
            "query, key, value, proj, feed-forward —\nAdamW for the rest", (4.25, (yn + yf) / 2))
    return save(fig, "modern_gpt.svg")


def rope_rotation() -> Path:
    """Two query/key pairs at different absolute positions but the same offset: the same angle between."""
    W, H = 8.4, 3.6
    fig, ax = canvas(W, H)
    title(ax, W / 2, H - 0.25, "RoPE: rotate one channel pair of q by m·θ and of k by n·θ", size=11)
    theta = 0.32  # radians per position for this pair
    q0, k0 = 0.35, -0.25  # the unrotated directions of the query and key pair
    r = 1.1
    for i, (m, n) in enumerate(((3, 1), (7, 5))):
        ox, oy = 1.9 + i * 4.3, 1.35
        line(ax, [(ox - 1.4, oy), (ox + 1.4, oy)], color="#d1d5db", lw=0.8)
        line(ax, [(ox, oy - 0.3), (ox, oy + 1.6)], color="#d1d5db", lw=0.8)
        for angle0, pos, color, name in ((q0, m, Q_COLOR, "q"), (k0, n, K_COLOR, "k")):
            a0, a1 = angle0, angle0 + pos * theta
            ax.plot([ox, ox + r * math.cos(a0)], [oy, oy + r * math.sin(a0)], color=color, lw=1.0,
                    ls=(0, (2, 2)), alpha=0.6)
            arrow(ax, (ox, oy), (ox + r * math.cos(a1), oy + r * math.sin(a1)), color=color, lw=1.8)
            ax.add_patch(Arc((ox, oy), 0.5 if name == "q" else 0.34, 0.5 if name == "q" else 0.34,
                             theta1=math.degrees(a0), theta2=math.degrees(a1), color=color, lw=1.0))
            lx, ly = ox + (r + 0.3) * math.cos(a1), oy + (r + 0.3) * math.sin(a1) + 0.08
            label(ax, lx, ly, f"{name} at {'m' if name == 'q' else 'n'} = {pos}", size=9, color=color)
        qa, ka = q0 + m * theta, k0 + n * theta
        mid = np.linspace(ka, qa, 20)
        ax.plot(ox + 0.75 * np.cos(mid), oy + 0.75 * np.sin(mid), color=INK, lw=1.6)
        lab = (ka + qa) / 2
        label(ax, ox + 0.62 * math.cos(lab), oy + 0.62 * math.sin(lab), f"{m - n}θ", size=9, color=INK)
        label(ax, ox, oy - 0.55, f"angle between them: (m − n)·θ = {m - n}θ, as in the other picture",
              size=8.5, color=INK)
    label(ax, W / 2, 0.25, "dashed: before rotation · the dot product q·k depends only on the angle between "
          "them, so only on m − n", size=8.5)
    return save(fig, "rope_rotation.svg")


def main() -> None:
    for make in (modern_gpt, rope_rotation):
        path = make()
        print(f"wrote {path.name} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
