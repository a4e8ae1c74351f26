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
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle  # noqa: E402

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


def label(ax, x, y, text, size=8, color=MUTED, ha="center", va="center", **kwargs):
    """Text at (x, y), centred unless told otherwise: muted small print by default."""
    ax.text(x, y, text, ha=ha, va=va, fontsize=size, color=color, **kwargs)


def title(ax, x, y, text, size=12, **kwargs):
    """A bold heading, centred at (x, y) unless told otherwise."""
    label(ax, x, y, text, size=size, color=INK, fontweight="bold", **kwargs)


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
        label(ax, sx - 0.1, (fork + y_plus) / 2, "residual", ha="right", rotation=90)
        y = y_plus - 0.14
    return y


def gpt_architecture() -> Path:
    """Token ids in, logits out: the whole GPT with the tensor shape after every stage."""
    W, H = 6.0, 9.35
    fig, ax = canvas(W, H)
    sx, bx, bw = 2.0, 4.05, 2.5  # residual stream x, branch x, branch box width
    title(ax, W / 2, H - 0.3, "GPT: a decoder-only transformer")

    y = H - 0.85
    box(ax, 3.0, y, 2.2, 0.4, "idx: token ids", DATA)
    shape(ax, 4.2, y, "(B, T)")
    ye = y - 0.95
    tok_x, pos_x = 1.5, 4.35
    arrow(ax, (2.6, y - 0.2), (tok_x + 0.3, ye + 0.28))
    box(ax, tok_x, ye, 2.3, 0.55, "token_embedding_table\nV → C", EMBED, size=9)
    box(ax, pos_x, ye, 2.5, 0.55, "position_embedding_table\nblock_size → C", EMBED, size=9)
    label(ax, pos_x, ye + 0.42, "positions 0, 1, …, T−1")
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
    title(ax, 0.45, frame_top - 0.15, "Block\n× n_layer", size=10, ha="left", va="top")
    shape(ax, 0.45, frame_bottom + 0.3, "in and out:\n(B, T, C)")

    y = frame_bottom - 0.5
    arrow(ax, (sx, y_end), (sx, y + 0.19))
    box(ax, sx, y, 1.8, 0.38, "ln_f: LayerNorm", NORM, size=9)
    shape(ax, sx + 1.05, y, "(B, T, C)")
    arrow(ax, (sx, y - 0.19), (sx, y - 0.5))
    y -= 0.69
    box(ax, sx, y, 1.8, 0.38, "lm_head: C → V", EMBED, size=9)
    label(ax, sx + 1.05, y, "weight shared with\ntoken_embedding_table", ha="left")
    arrow(ax, (sx, y - 0.19), (sx, y - 0.5))
    y -= 0.69
    box(ax, sx, y, 1.8, 0.38, "logits", HEAD)
    shape(ax, sx + 1.05, y, "(B, T, V)")
    label(ax, W / 2, y - 0.45, "a score for every vocabulary entry: what comes after each position")
    return save(fig, "gpt_architecture.svg")


def transformer_block() -> Path:
    """One Block in detail: pre-LayerNorm, attention then feed-forward, each added to the residual stream."""
    W, H = 5.6, 6.3
    fig, ax = canvas(W, H)
    sx, bx, bw = 1.5, 3.75, 3.0
    title(ax, W / 2, H - 0.3, "Block: x = x + sa(ln1(x)); x = x + ffwd(ln2(x))", size=11)
    y = H - 0.8
    box(ax, sx, y, 0.9, 0.36, "x", DATA)
    shape(ax, sx - 0.5, y, "(B, T, C)", ha="right")
    y_end = residual_block(ax, sx, bx, y - 0.18, bw, with_detail=True)
    arrow(ax, (sx, y_end), (sx, y_end - 0.4))
    box(ax, sx, y_end - 0.58, 0.9, 0.36, "out", DATA)
    shape(ax, sx - 0.5, y_end - 0.58, "(B, T, C)", ha="right")
    label(
        ax,
        bx,
        y_end - 0.5,
        "attention: the positions talk to each other\nfeed-forward: each position thinks on its own",
    )
    return save(fig, "transformer_block.svg")


def generation_loop() -> Path:
    """The autoregressive loop of generate(): predict one token from the context, append it, repeat."""
    W, H = 8.3, 3.7
    fig, ax = canvas(W, H)
    title(ax, W / 2, H - 0.28, "generate(): one new token per turn of the loop")
    bw, bh = 1.7, 0.62
    xs = (1.05, 3.02, 4.98, 6.95)
    top, bottom = 2.45, 0.9
    steps_top = (
        ("idx\ncontext so far", "(B, T)", DATA),
        ("crop to the last\nblock_size tokens", "(B, ≤ block_size)", DATA),
        ("model(idx_cond)\nlogits", "(B, T, V)", HEAD),
        ("last position only\nlogits[:, -1, :]", "(B, V)", HEAD),
    )
    steps_bottom = (
        ("softmax\nprobs", "(B, V)", SAMPLE),
        ("torch.multinomial\nsample idx_next", "(B, 1)", SAMPLE),
        ("torch.cat\nappend to idx", "(B, T + 1)", DATA),
    )
    for x, (text, shp, colors) in zip(xs, steps_top, strict=True):
        box(ax, x, top, bw, bh, text, colors, size=9)
        shape(ax, x, top - bh / 2 - 0.17, shp, ha="center")
    for a, b in zip(xs, xs[1:], strict=False):
        arrow(ax, (a + bw / 2, top), (b - bw / 2, top))
    bottom_xs = xs[::-1][:3]
    for x, (text, shp, colors) in zip(bottom_xs, steps_bottom, strict=True):
        box(ax, x, bottom, bw, bh, text, colors, size=9)
        shape(ax, x, bottom - bh / 2 - 0.17, shp, ha="center")
    for a, b in zip(bottom_xs, bottom_xs[1:], strict=False):
        arrow(ax, (a - bw / 2, bottom), (b + bw / 2, bottom))
    # down the right side, and from the appended context back to the start
    arrow(ax, (xs[3] + bw / 2, top), (xs[3] + bw / 2 + 0.25, top), style="-")
    line(ax, [(xs[3] + bw / 2 + 0.25, top), (xs[3] + bw / 2 + 0.25, bottom)])
    arrow(ax, (xs[3] + bw / 2 + 0.25, bottom), (xs[3] + bw / 2, bottom))
    x_back = bottom_xs[2] - bw / 2
    line(ax, [(x_back, bottom), (xs[0], bottom)])
    arrow(ax, (xs[0], bottom), (xs[0], top - bh / 2 - 0.32))
    label(ax, (xs[1] + xs[2]) / 2, (top + bottom) / 2 + 0.02, "↻  repeat max_new_tokens times", 10, INK)
    return save(fig, "generation_loop.svg")


def causal_mask() -> Path:
    """The T x T attention matrix before and after softmax, with the future (upper triangle) masked."""
    tokens = list("First")
    T = len(tokens)
    scores = np.round(np.random.default_rng(1337).normal(size=(T, T)), 1)
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    masked = np.where(future, -np.inf, scores)
    weights = np.exp(masked - masked.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)

    W, H = 8.2, 4.5
    fig, ax = canvas(W, H)
    cell = 0.5
    panels = (
        (1.35, "scores with the mask: q @ kᵀ, future = −inf", masked),
        (5.35, "weights = softmax of each row", weights),
    )
    y0 = 3.3  # top edge of the grids
    for x0, heading, values in panels:
        title(ax, x0 + T * cell / 2, y0 + 0.75, heading, size=9.5)
        for j, tok in enumerate(tokens):
            shape(ax, x0 + (j + 0.5) * cell, y0 + 0.18, repr(tok)[1:-1], ha="center")
        for i, tok in enumerate(tokens):
            yc = y0 - (i + 0.5) * cell
            shape(ax, x0 - 0.15, yc, f"{i}: {tok}", ha="right")
            for j in range(T):
                if future[i, j]:
                    fill, text, ink = "#e5e7eb", "−∞" if values is masked else "0", MUTED
                elif values is masked:
                    fill, text, ink = ATTN[0], f"{values[i, j]:.1f}", INK
                else:
                    # darker for larger weights
                    level = values[i, j]
                    fill = (1 - 0.55 * level, 1 - 0.35 * level, 1 - 0.05 * level)
                    text, ink = f"{values[i, j]:.2f}", INK
                ax.add_patch(
                    Rectangle(
                        (x0 + j * cell, y0 - (i + 1) * cell),
                        cell,
                        cell,
                        facecolor=fill,
                        edgecolor="white",
                        lw=1.5,
                    )
                )
                label(ax, x0 + (j + 0.5) * cell, yc, text, 8.5, ink)
        label(ax, x0 + T * cell / 2, y0 + 0.4, "key (position s) →")
        if values is not masked:
            continue
        label(ax, x0 - 0.85, y0 - T * cell / 2, "query (position t) →", rotation=-90)
    arrow(ax, (1.35 + T * cell + 0.2, y0 - T * cell / 2), (5.35 - 0.65, y0 - T * cell / 2))
    label(ax, (1.35 + T * cell + 0.2 + 5.35 - 0.65) / 2, y0 - T * cell / 2 + 0.2, "softmax", 9, INK)
    label(
        ax,
        W / 2,
        0.38,
        'Row t is position t asking "whom do I listen to?" It may look at itself and the past only.\n'
        "Future scores become −inf, so after softmax their weights are exactly 0; each row still sums to 1.",
        8.5,
        INK,
    )
    return save(fig, "causal_mask.svg")


def attention_head() -> Path:
    """One head of causal self-attention: queries, keys and values, scores, mask, softmax, weighted sum."""
    W, H = 6.4, 6.6
    fig, ax = canvas(W, H)
    title(ax, W / 2, H - 0.3, "Head: one head of causal self-attention")
    y = H - 0.85
    box(ax, 3.0, y, 1.4, 0.38, "x", DATA)
    shape(ax, 3.8, y, "(B, T, C)")
    yl = y - 0.95
    qx, kx, vx = 1.2, 3.0, 5.0
    for x, text in ((qx, "query\nLinear C → hs"), (kx, "key\nLinear C → hs"), (vx, "value\nLinear C → hs")):
        arrow(ax, (3.0, y - 0.19), (x, yl + 0.29))
        box(ax, x, yl, 1.55, 0.55, text, HEAD, size=9)
    for x, text in (
        (qx, "q: what am I looking for?"),
        (kx, "k: what do I contain?"),
        (vx, "v: what I pass on if chosen"),
    ):
        label(ax, x, yl - 0.42, text, 7.5)
    shape(ax, 0.2, yl + 0.5, "q, k, v: (B, T, hs)", ha="left")
    sx = 2.1
    ys = yl - 1.15
    arrow(ax, (qx, yl - 0.55), (sx - 0.5, ys + 0.25))
    arrow(ax, (kx, yl - 0.55), (sx + 0.5, ys + 0.25))
    steps = (
        ("scores = q @ kᵀ · hs^−0.5", "(B, T, T)", ATTN),
        ("masked_fill(tril == 0, −inf)", "(B, T, T)", ATTN),
        ("wei = softmax(scores, dim=−1)", "(B, T, T)", ATTN),
    )
    for i, (text, shp, colors) in enumerate(steps):
        yy = ys - i * 0.8
        box(ax, sx, yy, 2.9, 0.46, text, colors, size=9)
        shape(ax, sx + 1.55, yy, shp)
        if i:
            arrow(ax, (sx, yy + 0.8 - 0.23), (sx, yy + 0.23))
    yo = ys - 3 * 0.8 - 0.25
    ox = 3.4
    arrow(ax, (sx, ys - 1.6 - 0.23), (ox - 0.5, yo + 0.23))
    line(ax, [(vx, yl - 0.55), (vx, yo + 0.6)])
    arrow(ax, (vx, yo + 0.6), (ox + 0.5, yo + 0.23))
    box(ax, ox, yo, 2.2, 0.46, "out = wei @ v", FFWD, size=10)
    shape(ax, ox + 1.2, yo, "(B, T, hs)")
    label(
        ax,
        W / 2,
        yo - 0.6,
        "each position's output is a weighted average of the values of itself and the\n"
        "positions before it; the weights come from how well its query matches their keys",
    )
    return save(fig, "attention_head.svg")


def main() -> None:
    for make in (gpt_architecture, transformer_block, generation_loop, causal_mask, attention_head):
        path = make()
        print(f"wrote {path.name} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
