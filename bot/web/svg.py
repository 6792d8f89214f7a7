"""Charts for the site as inline SVG: no script, no external asset, sized by the viewBox so they shrink
to a phone's width, and each page also prints the same numbers as a table for screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from bot.domain.leaning import SeriesPoint

W, H = 480, 250
PAD_L, PAD_R, PAD_T, PAD_B = 36, 10, 14, 34


def _y(value: float) -> float:
    """-1 (the individual first) at the bottom, +1 (the community first) at the top."""
    return PAD_T + (1 - (value + 1) / 2) * (H - PAD_T - PAD_B)


def leaning_chart(points: Sequence[SeriesPoint]) -> Markup | None:
    """The leaning over time with its 95% interval as a band; hollow dots where the sample is small."""
    shown = [p for p in points if p.leaning.mean is not None]
    if not shown:
        return None
    n = len(shown)

    def x(i: int) -> float:
        return PAD_L + (i / max(n - 1, 1)) * (W - PAD_L - PAD_R)

    upper = " ".join(f"{x(i):.1f},{_y(p.leaning.high):.1f}" for i, p in enumerate(shown))
    lower = " ".join(f"{x(i):.1f},{_y(p.leaning.low):.1f}" for i, p in reversed(list(enumerate(shown))))
    line = " ".join(f"{x(i):.1f},{_y(p.leaning.mean):.1f}" for i, p in enumerate(shown))
    parts = [
        f'<svg viewBox="0 0 {W} {H}" class="chart" role="img" aria-labelledby="chart-title chart-desc" '
        'preserveAspectRatio="xMidYMid meet">',
        '<title id="chart-title">Leaning over time</title>',
        f'<desc id="chart-desc">Weekly leaning from {escape(shown[0].period_start.isoformat())} to '
        f"{escape(shown[-1].period_start.isoformat())}, between −1 (the individual first) and +1 (the community "
        "first), with its 95% interval as a band. The table below gives the same numbers.</desc>",
    ]
    for value, label in ((1, "+1"), (0, "0"), (-1, "−1")):
        y = _y(value)
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{label}</text>')
    parts.append(f'<polygon points="{upper} {lower}" class="band"/>')
    parts.append(f'<polyline points="{line}" class="line"/>')
    for i, p in enumerate(shown):
        cls = "dot small" if p.leaning.small else "dot"
        parts.append(f'<circle cx="{x(i):.1f}" cy="{_y(p.leaning.mean):.1f}" r="3.5" class="{cls}"/>')
    parts.append(
        f'<text x="{PAD_L}" y="{H - 10}" class="axis">{escape(shown[0].period_start.strftime("%d %b %Y"))}</text>'
    )
    parts.append(
        f'<text x="{W - PAD_R}" y="{H - 10}" class="axis" text-anchor="end">'
        f"{escape(shown[-1].period_start.strftime('%d %b %Y'))}</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # every interpolated text is escaped above


def _short(label: str, limit: int = 38) -> str:
    """Bar labels fit the drawing; the table beside it carries the full text."""
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def bars(final: Any) -> Markup | None:
    """A poll's final counts as horizontal bars (the table beside it carries the numbers)."""
    options = final.options
    total = sum(count for _, _, count in options)
    if not options:
        return None
    rows = []
    height = 22 * len(options) + 4
    for i, (label, _position, count) in enumerate(options):
        share = count / total if total else 0
        y = 4 + 22 * i
        rows.append(
            f'<rect x="0" y="{y}" width="{max(share * 300, 1):.1f}" height="16" class="bar"/>'
            f'<text x="306" y="{y + 13}" class="axis">{share:.0%} · {escape(_short(label))}</text>'
        )
    return Markup(  # labels are escaped above
        f'<svg viewBox="0 0 640 {height}" class="bars" aria-hidden="true" focusable="false">{"".join(rows)}</svg>'
    )
