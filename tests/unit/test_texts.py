"""Text and chart defects seen in `commonground demo`, each pinned by a test."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import matplotlib.image as mpimg
import numpy as np
import pytest

from bot.domain.leaning import PollShift, ShiftSummary
from bot.ui.leaning import FIELD_MAX, cut_lines, shift_chart, shift_embed
from bot.ui.polls import vote_reply

CLOSES = datetime(2026, 3, 2, 21, tzinfo=UTC)


@pytest.mark.parametrize("outcome", ["cast", "changed", "same", "withdrawn"])
def test_no_relative_timestamp_right_after_until(outcome: str) -> None:
    # <t:…:R> renders as "in 12 hours": "until in 12 hours" was the defect.
    text = vote_reply(outcome, "Me first", CLOSES)
    assert "<t:" in text and not re.search(r"until <t:", text)
    assert "until the poll closes <t:" in text
    assert "until the poll closes" in vote_reply(outcome, "Me first", None)


def test_shift_lists_whole_debates_only() -> None:
    long_question = "When relatives visit, your parents expect you to greet each one and sit with them. " * 3
    per_poll = {i: PollShift(22, 5 - (i % 3), 0, 1, 4 - (i % 3)) for i in range(1, 8)}
    summary = ShiftSummary(per_poll, PollShift(154, 20, 0, 7, 13), 12, 30)
    embed = shift_embed(summary, dict.fromkeys(per_poll, long_question), "the last month")
    value = embed.fields[0].value
    assert len(value) <= FIELD_MAX
    lines = value.splitlines()
    items = [line for line in lines if line.startswith("• ")]
    assert items and all(line.endswith("towards the individual.") for line in items)
    assert lines[-1].startswith("… and ") and lines[-1].endswith(" more")
    assert len(items) + int(lines[-1].split()[2]) == 5  # the five debates that moved most


def test_cut_lines_never_cuts_a_line() -> None:
    lines = [f"line {i} " + "x" * 40 for i in range(30)]
    text = cut_lines(lines, 300)
    assert len(text) <= 300
    *kept, more = text.splitlines()
    assert all(line in lines for line in kept) and more == f"… and {30 - len(kept)} more"
    assert cut_lines(lines[:2], 300) == "\n".join(lines[:2])


def _bar_colour(shift: PollShift) -> np.ndarray:
    png = shift_chart(ShiftSummary({1: shift}, shift, 0, shift.voters), {1: "Q"}, "Changes")
    image = mpimg.imread(io.BytesIO(png))[..., :3]
    # The top bar ("All debates") is fully one segment: sample the middle of the plot's width there.
    h, w, _ = image.shape
    column = image[:, int(w * 0.6)]
    bar_rows = [y for y in range(int(h * 0.15), int(h * 0.5)) if np.abs(column[y] - column[int(h * 0.12)]).sum() > 0.05]
    return image[bar_rows[len(bar_rows) // 4], int(w * 0.4) : int(w * 0.8)].mean(axis=0)


def test_kept_and_withdrew_look_different() -> None:
    kept = _bar_colour(PollShift(10, 0, 0, 0, 0))
    withdrew = _bar_colour(PollShift(10, 0, 10, 0, 0))
    # Both used to be greys (#4E5058 and #80848E), told apart only by a shade. Now "withdrew" has a hue
    # (its channels spread) where "kept" is grey, and it is clearly brighter.
    assert np.ptp(kept) < 0.08 and np.ptp(withdrew) > 0.2, (kept, withdrew)
    assert withdrew.mean() - kept.mean() > 0.15, (kept, withdrew)
