"""Draw the notebooks' diagrams as SVG files next to this script, the same bytes on every run.

Run `python notebooks/figures/make_figures.py` to regenerate them all after a change. The names follow
the lecture ("Let's build GPT") and nanoGPT: block_size, n_embd (C), n_head, ln_f, lm_head.
Shape letters: B batch, T time (positions), C channels (n_embd), V vocabulary size, hs head size.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script: no window, and the same backend everywhere

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent

# Deterministic, small SVGs: a fixed salt for the ids matplotlib generates, text kept as <text>
# (not glyph outlines), and no creation date (see save()).
plt.rcParams.update(
    {
        "svg.hashsalt": "shakespeare_lm",
        "svg.fonttype": "none",
        "font.family": "DejaVu Sans",
        "font.size": 10,
    }
)

INK = "#1f2937"
MUTED = "#6b7280"
# (fill, edge) per kind of box, the same colours in every diagram
DATA = ("#f3f4f6", "#4b5563")
EMBED = ("#dbeafe", "#2563eb")
NORM = ("#f1f5f9", "#64748b")
ATTN = ("#ffedd5", "#ea580c")
FFWD = ("#dcfce7", "#16a34a")
HEAD = ("#ede9fe", "#7c3aed")
SAMPLE = ("#fef9c3", "#ca8a04")


def canvas(width: float, height: float):
    """A figure whose data coordinates are inches, so boxes can be placed by hand."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def box(
    ax, x, y, w, h, text, colors=DATA, size=10, weight="normal", style="round,pad=0.02,rounding_size=0.08"
):
    """A rounded box centred at (x, y) with centred text."""
    fill, edge = colors
    ax.add_patch(
        FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style, facecolor=fill, edgecolor=edge, lw=1.3)
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=size, color=INK, fontweight=weight)


def arrow(ax, start, end, color=INK, style="-|>", lw=1.3, rad=0.0):
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops=dict(
            arrowstyle=style,
            color=color,
            lw=lw,
            shrinkA=0,
            shrinkB=0,
            mutation_scale=12,
            connectionstyle=f"arc3,rad={rad}",
        ),
    )


def line(ax, points, color=INK, lw=1.3):
    xs, ys = zip(*points, strict=True)
    ax.plot(xs, ys, color=color, lw=lw, solid_capstyle="round")


def plus(ax, x, y, r=0.14):
    """The circled plus of a residual (or embedding) sum."""
    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor=INK, lw=1.3))
    ax.text(x, y - 0.01, "+", ha="center", va="center", fontsize=12, color=INK)


def shape(ax, x, y, text, ha="left"):
    """A tensor-shape annotation beside an arrow."""
    ax.text(x, y, text, ha=ha, va="center", fontsize=9, color=MUTED, family="DejaVu Sans Mono")


def save(fig, name: str) -> Path:
    path = HERE / name
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path


def residual_block(ax, sx, bx, top, w, with_detail: bool) -> float:
    """Draw one Block downwards from y=top on a residual stream at x=sx; return the y where it ends.

    The residual stream runs straight down; each branch (LayerNorm, then attention or feed-forward)
    forks off to the right at x=bx and adds its result back into the stream at a circled plus.
    """
    y = top
    h = 0.62 if with_detail else 0.42
    branches = (
        (
            "ln1: LayerNorm",
            "sa: MultiHeadAttention\n(n_head heads, concat, proj)"
            if with_detail
            else "sa: multi-head attention",
            ATTN,
        ),
        (
            "ln2: LayerNorm",
            "ffwd: FeedForward\nLinear C→4C, ReLU, Linear 4C→C" if with_detail else "ffwd: feed-forward",
            FFWD,
        ),
    )
    for norm, layer, colors in branches:
        fork = y - 0.12
        line(ax, [(sx, y), (sx, fork), (bx, fork)])
        y_norm = fork - 0.45
        arrow(ax, (bx, fork), (bx, y_norm + 0.19))
        box(ax, bx, y_norm, w, 0.38, norm, NORM, size=9)
        y_layer = y_norm - 0.28 - h / 2 - 0.1
        arrow(ax, (bx, y_norm - 0.19), (bx, y_layer + h / 2))
        box(ax, bx, y_layer, w, h, layer, colors, size=9)
        y_plus = y_layer - h / 2 - 0.3
        line(ax, [(bx, y_layer - h / 2), (bx, y_plus)])
        arrow(ax, (bx, y_plus), (sx + 0.14, y_plus))
        arrow(ax, (sx, fork), (sx, y_plus + 0.14))
        plus(ax, sx, y_plus)
        ax.text(
            sx - 0.1,
            (fork + y_plus) / 2,
            "residual",
            rotation=90,
            ha="right",
            va="center",
            fontsize=8,
            color=MUTED,
        )
        y = y_plus - 0.14
    return y


def gpt_architecture() -> Path:
    """Token ids in, logits out: the whole GPT with the tensor shape after every stage."""
    W, H = 6.0, 9.35
    fig, ax = canvas(W, H)
    sx, bx, bw = 2.0, 4.05, 2.5  # residual stream x, branch x, branch box width
    ax.text(
        W / 2,
        H - 0.3,
        "GPT: a decoder-only transformer",
        ha="center",
        va="center",
        fontsize=12,
        fontweight="bold",
        color=INK,
    )

    y = H - 0.85
    box(ax, 3.0, y, 2.2, 0.4, "idx: token ids", DATA)
    shape(ax, 4.2, y, "(B, T)")
    ye = y - 0.95
    tok_x, pos_x = 1.5, 4.35
    arrow(ax, (2.6, y - 0.2), (tok_x + 0.3, ye + 0.28))
    box(ax, tok_x, ye, 2.3, 0.55, "token_embedding_table\nV → C", EMBED, size=9)
    box(ax, pos_x, ye, 2.5, 0.55, "position_embedding_table\nblock_size → C", EMBED, size=9)
    ax.text(pos_x, ye + 0.42, "positions 0, 1, …, T−1", ha="center", va="center", fontsize=8, color=MUTED)
    yp = ye - 0.75
    arrow(ax, (tok_x + 0.3, ye - 0.28), (sx - 0.1, yp + 0.11))
    arrow(ax, (pos_x - 0.5, ye - 0.28), (sx + 0.13, yp + 0.05))
    plus(ax, sx, yp)
    shape(ax, sx - 0.25, yp, "(B, T, C)", ha="right")

    frame_top = yp - 0.35
    line(ax, [(sx, yp - 0.14), (sx, frame_top - 0.1)])
    y_end = residual_block(ax, sx, bx, frame_top - 0.1, bw, with_detail=False)
    frame_bottom = y_end - 0.2
    ax.add_patch(
        FancyBboxPatch(
            (0.3, frame_bottom),
            5.4,
            frame_top - frame_bottom,
            boxstyle="round,pad=0,rounding_size=0.12",
            facecolor="none",
            edgecolor=MUTED,
            lw=1.2,
            linestyle=(0, (4, 3)),
        )
    )
    ax.text(
        0.45,
        frame_top - 0.15,
        "Block\n× n_layer",
        ha="left",
        va="top",
        fontsize=10,
        color=INK,
        fontweight="bold",
    )
    shape(ax, 0.45, frame_bottom + 0.3, "in and out:\n(B, T, C)")

    y = frame_bottom - 0.5
    arrow(ax, (sx, y_end), (sx, y + 0.19))
    box(ax, sx, y, 1.8, 0.38, "ln_f: LayerNorm", NORM, size=9)
    shape(ax, sx + 1.05, y, "(B, T, C)")
    arrow(ax, (sx, y - 0.19), (sx, y - 0.5))
    y -= 0.69
    box(ax, sx, y, 1.8, 0.38, "lm_head: C → V", EMBED, size=9)
    ax.text(
        sx + 1.05,
        y,
        "weight shared with\ntoken_embedding_table",
        ha="left",
        va="center",
        fontsize=8,
        color=MUTED,
    )
    arrow(ax, (sx, y - 0.19), (sx, y - 0.5))
    y -= 0.69
    box(ax, sx, y, 1.8, 0.38, "logits", HEAD)
    shape(ax, sx + 1.05, y, "(B, T, V)")
    ax.text(
        W / 2,
        y - 0.45,
        "a score for every vocabulary entry: what comes after each position",
        ha="center",
        va="center",
        fontsize=8,
        color=MUTED,
    )
    return save(fig, "gpt_architecture.svg")


def transformer_block() -> Path:
    """One Block in detail: pre-LayerNorm, attention then feed-forward, each added to the residual stream."""
    W, H = 5.6, 6.3
    fig, ax = canvas(W, H)
    sx, bx, bw = 1.5, 3.75, 3.0
    ax.text(
        W / 2,
        H - 0.3,
        "Block: x = x + sa(ln1(x)); x = x + ffwd(ln2(x))",
        ha="center",
        va="center",
        fontsize=11,
        fontweight="bold",
        color=INK,
    )
    y = H - 0.8
    box(ax, sx, y, 0.9, 0.36, "x", DATA)
    shape(ax, sx - 0.5, y, "(B, T, C)", ha="right")
    y_end = residual_block(ax, sx, bx, y - 0.18, bw, with_detail=True)
    arrow(ax, (sx, y_end), (sx, y_end - 0.4))
    box(ax, sx, y_end - 0.58, 0.9, 0.36, "out", DATA)
    shape(ax, sx - 0.5, y_end - 0.58, "(B, T, C)", ha="right")
    ax.text(
        bx,
        y_end - 0.5,
        "attention: the positions talk to each other\nfeed-forward: each position thinks on its own",
        ha="center",
        va="center",
        fontsize=8,
        color=MUTED,
    )
    return save(fig, "transformer_block.svg")


def main() -> None:
    for make in (gpt_architecture, transformer_block):
        path = make()
        print(f"wrote {path.name} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
