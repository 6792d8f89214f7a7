"""Charts as PNG bytes, drawn for Discord's dark theme at the size Discord shows them (800x450).

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, never ``pyplot``: no global figure
registry and no global rc changes, so charts can be rendered concurrently in ``asyncio.to_thread``.
Every text that may come from users (questions, option labels, themes, debate titles) goes through
``_clean`` (control characters and newlines flattened, length capped, wrapped) and is drawn with
``parse_math=False``, so ``$...$`` is printed as typed and never parsed as mathtext.

Colours: amber for the individual side, blue for the community side (a pair distinguishable with
the common colour-vision deficiencies), Okabe-Ito hues for opinion groups, light text on #313338.
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
import unicodedata
from collections.abc import Sequence
from datetime import date

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import dates as mdates
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

from bot.domain.groups import GroupsResult
from bot.domain.leaning import SMALL_SAMPLE, Leaning, SeriesPoint, label_for

__all__ = ["empty_chart", "groups_chart", "leaning_chart", "tally_chart", "themes_chart"]

WIDTH, HEIGHT, DPI = 8.0, 4.5, 100

BG = "#313338"
PANEL = "#2B2D31"
TEXT = "#F2F3F5"
MUTED = "#B5BAC1"
GRID = "#4E5058"
INDIVIDUAL = "#F2A541"
COMMUNITY = "#5DADE2"
NEUTRAL = "#C9CDD4"
GROUP_COLOURS = ("#E69F00", "#56B4E9", "#2FC59A", "#F0E442", "#CC79A7")  # Okabe-Ito, lifted for dark bg
UNGROUPED = "#80848E"

# Sizes in points; at 100 dpi one point is 1.39 px, so 9 pt is 12.5 px (Discord's floor is ~11 px).
FS_TITLE = 14
FS_TEXT = 11
FS_SMALL = 9.5

_position_cmap = mcolors.LinearSegmentedColormap.from_list("position", [INDIVIDUAL, NEUTRAL, COMMUNITY])


def position_colour(position: float | None) -> tuple[float, float, float, float]:
    """Amber at -1, light grey at 0, blue at +1."""
    if position is None or math.isnan(position):
        return mcolors.to_rgba(UNGROUPED)
    return _position_cmap((max(-1.0, min(1.0, position)) + 1) / 2)


@functools.cache
def _glyphs() -> frozenset[int]:
    """Code points the default font can draw."""
    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return frozenset(FT2Font(path).get_charmap())


def _clean(text: object, limit: int = 200) -> str:
    """One line of plain text: control characters and newlines become spaces, glyphs the font lacks
    (emoji, most CJK) become a box, length capped."""
    s = str(text) if text is not None else ""
    glyphs = _glyphs()
    s = "".join(" " if unicodedata.category(ch)[0] == "C" else (ch if ord(ch) in glyphs else "□") for ch in s)
    s = " ".join(s.split())
    if len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return s


def _wrap(text: object, width: int, max_lines: int, limit: int = 300) -> str:
    lines = textwrap.wrap(_clean(text, limit), width=width, break_long_words=True) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(width - 1, 1)].rstrip() + "…"
    return "\n".join(lines)


def _fig(**kw) -> Figure:
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, facecolor=BG, **kw)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor=BG)
    return buf.getvalue()


def _text(target, x, y, s, *, size=FS_TEXT, color=TEXT, **kw):
    """Text that is never parsed as mathtext."""
    return target.text(x, y, s, fontsize=size, color=color, parse_math=False, **kw)


def _fit(target, x, y, raw: object, *, max_px: float, width: int, max_lines: int, **kw):
    """Draw wrapped text and re-wrap narrower until it fits ``max_px`` (glyph widths vary a lot)."""
    fig = target if isinstance(target, Figure) else target.figure
    renderer = fig.canvas.get_renderer()
    t = _text(target, x, y, _wrap(raw, width, max_lines), **kw)
    for _ in range(6):
        if t.get_window_extent(renderer).width <= max_px or width <= 4:
            break
        width = max(4, int(width * 0.85))
        t.set_text(_wrap(raw, width, max_lines))
    return t


def _title(fig: Figure, title: object, y: float = 0.955, width: int = 64, max_px: float = 750, lines: int = 2):
    _fit(
        fig,
        0.03,
        y,
        title,
        max_px=max_px,
        width=width,
        max_lines=lines,
        size=FS_TITLE,
        weight="bold",
        va="top",
        ha="left",
    )


def _style(ax, *, grid_axis: str | None = "x") -> None:
    ax.set_facecolor(BG)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=FS_SMALL, length=0)
    if grid_axis:
        ax.grid(axis=grid_axis, color=GRID, linewidth=0.8, alpha=0.8)
        ax.set_axisbelow(True)


def _signed(x: float) -> str:
    return "0.00" if abs(x) < 0.005 else f"{x:+.2f}"


def _axis_strip(fig: Figure, rect: Sequence[float], leaning: Leaning) -> None:
    """A gradient strip from -1 to +1 with the leaning marked and its interval as a whisker."""
    ax = fig.add_axes(rect)
    ax.set_facecolor(BG)
    ax.imshow(
        np.linspace(0, 1, 256)[None, :],
        cmap=_position_cmap,
        aspect="auto",
        extent=(-1, 1, -0.18, 0.18),
        alpha=0.55,
        interpolation="bilinear",
    )
    ax.set_xlim(-1.02, 1.02)
    ax.set_ylim(-0.6, 0.6)
    ax.axis("off")
    for x, label, ha in (
        (-1, "the individual first", "left"),
        (0, "both equally", "center"),
        (1, "the community first", "right"),
    ):
        _text(ax, x, -0.3, label, size=FS_SMALL, color=MUTED, ha=ha, va="top")
    if leaning.mean is not None:
        ax.plot([leaning.low, leaning.high], [0, 0], color=TEXT, linewidth=2.2, solid_capstyle="butt")
        for end in (leaning.low, leaning.high):
            ax.plot([end, end], [-0.14, 0.14], color=TEXT, linewidth=2)
        ax.plot([leaning.mean], [0], marker="D", markersize=10, color=TEXT, markeredgecolor=BG)


def empty_chart(message: object, title: object = "") -> bytes:
    """A plain card with a message, for when there is nothing to draw."""
    fig = _fig()
    if title:
        _title(fig, title)
    _text(fig, 0.5, 0.5, _wrap(message, 60, 4), size=FS_TITLE, color=MUTED, ha="center", va="center")
    return _png(fig)


def tally_chart(question: str, options: Sequence[tuple[str, float, int]], leaning: Leaning) -> bytes:
    """Horizontal bars per option with percentages, coloured by position, and the leaning marked."""
    options = list(options)[:10]
    if not options:
        return empty_chart("This poll has no options.", question)
    fig = _fig()
    _title(fig, question, width=78)
    total = sum(max(int(c), 0) for _, _, c in options)
    n = len(options)
    ax = fig.add_axes((0.34, 0.30, 0.54, 0.49))
    _style(ax, grid_axis="x")
    ys = np.arange(n)[::-1]
    shares = [(max(int(c), 0) / total * 100) if total else 0.0 for _, _, c in options]
    ax.barh(ys, shares, height=0.62, color=[position_colour(p) for _, p, _ in options])
    top = max([*shares, 1.0])
    ax.set_xlim(0, min(100.0, top * 1.28 + 4))
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(lambda v, _pos: f"{v:.0f}%")
    width = 30 if n <= 5 else 34
    lines = 2 if n <= 5 else 1
    for y, (label, _position, count), share in zip(ys, options, shares, strict=True):
        _fit(
            fig,
            0.325,
            y,
            label,
            max_px=250,
            width=width,
            max_lines=lines,
            size=FS_TEXT if n <= 5 else FS_SMALL,
            ha="right",
            va="center",
            transform=_blend(fig, ax),
            linespacing=1.1,
        )
        _text(ax, share + top * 0.02, y, f"{share:.0f}%  ({int(count)})", size=FS_TEXT, va="center")
    # Polls show their options in varying order; results always run along the axis, and say so.
    note = "options listed from the individual first (top) to the community first (bottom)"
    _text(fig, 0.03, 0.845, note, size=FS_SMALL, color=MUTED, ha="left", va="top")
    summary = leaning.describe() if total else "no votes yet"
    _text(fig, 0.5, 0.205, _wrap(summary, 95, 2), size=FS_SMALL, color=MUTED, ha="center", va="top")
    _axis_strip(fig, (0.12, 0.02, 0.76, 0.11), leaning)
    return _png(fig)


def _blend(fig: Figure, ax):
    from matplotlib.transforms import blended_transform_factory

    return blended_transform_factory(fig.transFigure, ax.transData)


def leaning_chart(points: Sequence[SeriesPoint], title: str, marks: Sequence[tuple[date, str]] = ()) -> bytes:
    """Weekly leaning with its 95% band, participation beneath, and marked debates."""
    points = sorted(points, key=lambda p: p.period_start)
    if not any(p.leaning.mean is not None for p in points):
        return empty_chart("No votes in this period yet.", title)
    fig = _fig()
    _title(fig, title, width=70, lines=1)
    ax = fig.add_axes((0.17, 0.34, 0.80, 0.46))
    bx = fig.add_axes((0.17, 0.09, 0.80, 0.19), sharex=ax)
    _style(ax, grid_axis="y")
    _style(bx, grid_axis="y")

    x = np.array([mdates.date2num(p.period_start) for p in points])
    nan = float("nan")
    mean = np.array([p.leaning.mean if p.leaning.mean is not None else nan for p in points])
    low = np.array([p.leaning.low if p.leaning.low is not None else nan for p in points])
    high = np.array([p.leaning.high if p.leaning.high is not None else nan for p in points])
    voters = np.array([p.voters for p in points], dtype=float)
    small = np.array([0 < p.leaning.n < SMALL_SAMPLE for p in points])
    step = float(np.median(np.diff(x))) if len(x) > 1 else 7.0

    ax.axhspan(0, 1.05, color=COMMUNITY, alpha=0.07, linewidth=0)
    ax.axhspan(-1.05, 0, color=INDIVIDUAL, alpha=0.07, linewidth=0)
    ax.axhline(0, color=GRID, linewidth=1)
    ax.fill_between(x, low, high, color=NEUTRAL, alpha=0.22, linewidth=0, step=None)
    ax.plot(x, mean, color=TEXT, linewidth=1.8)
    ok = ~np.isnan(mean)
    big = ok & ~small
    ax.scatter(x[big], mean[big], s=16, c=[position_colour(m) for m in mean[big]], zorder=3, linewidths=0)
    if np.any(ok & small):
        ax.scatter(x[ok & small], mean[ok & small], s=20, facecolors=BG, edgecolors=MUTED, zorder=3, linewidths=1.2)
    ax.set_ylim(-1.05, 1.05)
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.set_yticklabels(["the individual\nfirst", "", "both\nequally", "", "the community\nfirst"])
    for tick, colour in zip(ax.get_yticklabels(), (INDIVIDUAL, MUTED, MUTED, MUTED, COMMUNITY), strict=True):
        tick.set_color(colour)
    ax.tick_params(axis="x", labelbottom=False)
    ax.set_xlim(x[0] - step * 0.6, x[-1] + step * 0.6)

    # One PolyCollection instead of bar(): 104 separate patches cost ~100 ms in limit updates alone.
    half = step * 0.375
    bx.add_collection(
        PolyCollection(
            [((xi - half, 0), (xi - half, v), (xi + half, v), (xi + half, 0)) for xi, v in zip(x, voters, strict=True)],
            facecolors=MUTED,
            alpha=0.55,
            linewidths=0,
        )
    )
    bx.set_ylim(0, max(float(voters.max()), 1.0) * 1.15)
    bx.yaxis.set_major_locator(_int_locator())
    bx.set_ylabel("voters", color=MUTED, fontsize=FS_SMALL)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    bx.xaxis.set_major_locator(locator)
    bx.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))

    legend = "line: weekly leaning · band: 95% interval"
    if np.any(ok & small):
        legend += f" · hollow: under {SMALL_SAMPLE} votes"
    _text(fig, 0.03, 0.885, legend, size=FS_SMALL, color=MUTED, ha="left", va="top")

    _marks(ax, marks, x[0] - step, x[-1] + step)
    return _png(fig)


def _int_locator():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=3, integer=True, min_n_ticks=1)


def _marks(ax, marks: Sequence[tuple[date, str]], lo: float, hi: float) -> None:
    """Dotted lines at the debates that moved the leaning most, labels staggered to avoid overlap."""
    shown = [(mdates.date2num(d), label) for d, label in list(marks)[:5] if lo <= mdates.date2num(d) <= hi]
    shown.sort()
    span = max(hi - lo, 1.0)
    for i, (xm, label) in enumerate(shown):
        ax.axvline(xm, color=TEXT, linewidth=0.9, linestyle=":", alpha=0.8)
        right = (xm - lo) / span > 0.7
        _fit(
            ax,
            xm + (-1 if right else 1) * span * 0.006,
            0.97 - 0.13 * (i % 3),
            label,
            max_px=220,
            width=26,
            max_lines=1,
            size=FS_SMALL,
            color=TEXT,
            ha="right" if right else "left",
            va="top",
            transform=_blend_x(ax),
            bbox={"boxstyle": "round,pad=0.2", "facecolor": BG, "edgecolor": "none", "alpha": 0.8},
        )


def _blend_x(ax):
    from matplotlib.transforms import blended_transform_factory

    return blended_transform_factory(ax.transData, ax.transAxes)


def themes_chart(rows: Sequence[tuple[str, Leaning]], title: str = "Leaning by theme") -> bytes:
    """Diverging bars per theme from 0 to its leaning, with interval whiskers and vote counts."""
    rows = list(rows)[:12]
    if not rows:
        return empty_chart("No themes with votes yet.", title)
    fig = _fig()
    _title(fig, title, width=70, lines=1)
    n = len(rows)
    ax = fig.add_axes((0.27, 0.14, 0.62, 0.68))
    _style(ax, grid_axis="x")
    ys = np.arange(n)[::-1]
    for y, (theme, lean) in zip(ys, rows, strict=True):
        _fit(
            fig,
            0.255,
            y,
            theme,
            max_px=190,
            width=28,
            max_lines=1 if n > 6 else 2,
            size=FS_TEXT if n <= 9 else FS_SMALL,
            ha="right",
            va="center",
            transform=_blend(fig, ax),
        )
        _text(
            fig, 0.90, y, f"n={lean.n}", size=FS_SMALL, color=MUTED, ha="left", va="center", transform=_blend(fig, ax)
        )
        if lean.mean is None:
            _text(ax, 0, y, "no votes", size=FS_SMALL, color=MUTED, ha="center", va="center")
            continue
        faded = lean.n < SMALL_SAMPLE
        ax.barh(y, lean.mean, height=0.6, color=position_colour(lean.mean), alpha=0.45 if faded else 0.95)
        ax.plot([lean.low, lean.high], [y, y], color=TEXT, linewidth=1.3, alpha=0.9)
        for end in (lean.low, lean.high):
            ax.plot([end, end], [y - 0.14, y + 0.14], color=TEXT, linewidth=1.3, alpha=0.9)
    ax.axvline(0, color=MUTED, linewidth=1)
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_yticks([])
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.set_xticklabels(["−1", "−0.5", "0", "+0.5", "+1"])
    _text(
        ax,
        -1.05,
        -0.09,
        "← the individual first",
        size=FS_SMALL,
        color=INDIVIDUAL,
        ha="left",
        va="top",
        transform=_blend_x(ax),
    )
    _text(
        ax,
        1.05,
        -0.09,
        "the community first →",
        size=FS_SMALL,
        color=COMMUNITY,
        ha="right",
        va="top",
        transform=_blend_x(ax),
    )
    _text(
        fig,
        0.03,
        0.885,
        f"bar: mean position · whiskers: 95% interval · faded: under {SMALL_SAMPLE} votes",
        size=FS_SMALL,
        color=MUTED,
        ha="left",
        va="top",
    )
    return _png(fig)


def groups_chart(result: GroupsResult, title: str = "Opinion groups") -> bytes:
    """Members as dots on the 2-D opinion map, coloured by group; no names."""
    pts = result.coords_for_map
    if not pts:
        return empty_chart(result.reason or "Not enough votes to draw a map yet.", title)
    fig = _fig()
    _title(fig, title)
    ax = fig.add_axes((0.04, 0.13, 0.64, 0.72))
    _style(ax, grid_axis=None)
    ax.set_facecolor(PANEL)
    ax.set_xticks([])
    ax.set_yticks([])
    xy = np.array([(a, b) for a, b, _ in pts], dtype=float)
    labels = [lab for *_, lab in pts]
    span = np.ptp(xy, axis=0) if len(xy) > 1 else np.ones(2)
    span[span == 0] = 1.0
    # Votes are discrete, so many members share a point; a little fixed jitter shows how many.
    jitter = np.random.default_rng(0).normal(0, 0.012, xy.shape) * span
    xy = xy + jitter
    letters = [g.label for g in result.groups]
    colour = {lab: GROUP_COLOURS[i % len(GROUP_COLOURS)] for i, lab in enumerate(letters)}
    size = 34 if len(xy) <= 100 else 18
    none = np.array([lab is None for lab in labels])
    if none.any():
        ax.scatter(xy[none, 0], xy[none, 1], s=size, c=UNGROUPED, alpha=0.6, linewidths=0)
    for lab in letters:
        sel = np.array([x == lab for x in labels])
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, c=colour[lab], alpha=0.85, linewidths=0)
        cx, cy = np.median(xy[sel], axis=0)
        _text(
            ax,
            cx,
            cy,
            lab,
            size=FS_TITLE + 2,
            weight="bold",
            color=BG,
            ha="center",
            va="center",
            bbox={"boxstyle": "circle,pad=0.25", "facecolor": colour[lab], "edgecolor": BG},
        )
    pad = 0.08 * span
    ax.set_xlim(xy[:, 0].min() - pad[0], xy[:, 0].max() + pad[0])
    ax.set_ylim(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1])
    _text(
        fig,
        0.36,
        0.085,
        "← votes more for the individual       votes more for the community →",
        size=FS_SMALL,
        color=MUTED,
        ha="center",
        va="top",
    )
    _text(
        fig,
        0.36,
        0.035,
        "Each dot is a member; members who vote alike sit close. No names are shown.",
        size=FS_SMALL,
        color=MUTED,
        ha="center",
        va="top",
    )

    # Legend column: one block per group with its size and leaning.
    y = 0.83
    if not result.groups:
        reason = result.reason or "no distinct groups"
        _fit(
            fig,
            0.71,
            y,
            reason[:1].upper() + reason[1:] + ".",
            max_px=220,
            width=28,
            max_lines=6,
            size=FS_TEXT,
            color=MUTED,
            va="top",
        )
    for g in result.groups:
        _text(fig, 0.71, y, f"● {g.name}", size=FS_TEXT, color=colour[g.label], weight="bold", va="top")
        _text(fig, 0.735, y - 0.055, _wrap(label_for(g.leaning.mean), 28, 1), size=FS_SMALL, color=TEXT, va="top")
        if g.leaning.mean is not None:
            _text(
                fig,
                0.735,
                y - 0.105,
                f"mean {_signed(g.leaning.mean)}, {g.leaning.n} votes",
                size=FS_SMALL,
                color=MUTED,
                va="top",
            )
        y -= 0.16
    extra = []
    if result.consensus:
        extra.append(f"{len(result.consensus)} poll{'s' if len(result.consensus) != 1 else ''} all groups agree on")
    if result.divisive:
        extra.append(f"{len(result.divisive)} that divide them")
    if extra and y > 0.12:
        _text(fig, 0.71, y, _wrap("; ".join(extra), 34, 2), size=FS_SMALL, color=MUTED, va="top")
    return _png(fig)
