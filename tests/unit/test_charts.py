"""Charts: valid PNGs of the expected size, and hostile titles don't crash or get interpreted."""

from __future__ import annotations

import io
from datetime import date, timedelta

import numpy as np
import pytest
from matplotlib import image as mimage

from bot.domain.groups import GroupsResult, opinion_groups
from bot.domain.leaning import Leaning, Moments, poll_leaning, series
from bot.ui import charts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = ["$x^2$", "line one\nline two\\n", "A" * 500, "$\\alpha$ \\frac{1}{2} $", "emoji 🎉 and \x00 nul", ""]


def assert_png(data: bytes) -> None:
    assert data[:8] == PNG_MAGIC
    img = mimage.imread(io.BytesIO(data), format="png")
    assert img.shape[:2] == (450, 800)


OPTIONS = [("Me first", -1.0, 5), ("Both", 0.0, 12), ("Us first", 1.0, 8)]


def weekly_points(weeks: int = 20):
    rng = np.random.default_rng(0)
    start = date(2024, 1, 1)
    data = {
        start + timedelta(weeks=w): [Moments.of(rng.choice([-1, 0, 1], size=int(rng.integers(1, 30))))]
        for w in range(weeks)
        if w != 5
    }
    return series(data)


def planted_groups() -> GroupsResult:
    rng = np.random.default_rng(1)
    centres = np.array([[-1.0] * 10, [1.0] * 10, [1.0, -1.0] * 5])
    rows = [np.clip(c + rng.normal(0, 0.2, 10), -1, 1) for c in centres for _ in range(10)]
    return opinion_groups(np.array(rows), seed=0)


def test_tally_chart():
    assert_png(charts.tally_chart("Which comes first?", OPTIONS, poll_leaning({-1: 5, 0: 12, 1: 8})))


def test_tally_chart_without_votes_or_options():
    assert_png(charts.tally_chart("Q", [("a", -1.0, 0), ("b", 1.0, 0)], poll_leaning({})))
    assert_png(charts.tally_chart("Q", [], poll_leaning({})))


def test_leaning_chart():
    pts = weekly_points()
    assert_png(charts.leaning_chart(pts, "Server leaning", [(pts[3].period_start, "A debate")]))
    assert_png(charts.leaning_chart([], "Nothing"))
    assert_png(charts.leaning_chart(weekly_points(1), "One week"))


def test_themes_chart():
    rows = [("freedom", poll_leaning({1: 10, 0: 4})), ("duty", Leaning.empty()), ("work", poll_leaning({-1: 1}))]
    assert_png(charts.themes_chart(rows))
    assert_png(charts.themes_chart([]))


def test_groups_chart():
    result = planted_groups()
    assert result.groups
    assert_png(charts.groups_chart(result))
    assert_png(charts.groups_chart(opinion_groups(np.full((30, 10), 1.0))))
    assert_png(charts.groups_chart(opinion_groups(np.empty((0, 0)))))


def test_empty_chart():
    assert_png(charts.empty_chart("No votes yet"))


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_does_not_crash(text):
    lean = poll_leaning({-1: 2, 1: 3})
    assert_png(charts.tally_chart(text, [(text, -1.0, 2), (text, 1.0, 3)], lean))
    pts = weekly_points(4)
    assert_png(charts.leaning_chart(pts, text, [(pts[1].period_start, text)]))
    assert_png(charts.themes_chart([(text, lean)], title=text))
    assert_png(charts.groups_chart(planted_groups(), title=text))
    assert_png(charts.empty_chart(text, title=text))


def test_math_is_never_parsed():
    fig_text = charts._clean("$x^2$ costs \\$5\nnext")
    assert fig_text == "$x^2$ costs \\$5 next"
    # A lone "$" would raise in mathtext; it must render as typed.
    assert_png(charts.tally_chart("price: $5 or $", OPTIONS, poll_leaning({0: 1})))
