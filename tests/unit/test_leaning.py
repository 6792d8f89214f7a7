"""Leaning statistics: hand-computed cases and properties."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import stdtrit

from bot.domain.leaning import (
    METHODOLOGY,
    MIN_PLACEMENT_VOTERS,
    Leaning,
    Moments,
    SeriesPoint,
    combine,
    label_for,
    placement_checks,
    poll_leaning,
    series,
    shift_counts,
    spread,
    unifying_and_divisive,
    week_start,
)

T975 = lambda df: float(stdtrit(df, 0.975))  # noqa: E731

positions = st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0])
counts = st.dictionaries(positions, st.integers(min_value=0, max_value=300), max_size=5)
moments = st.lists(st.floats(min_value=-1, max_value=1, allow_nan=False), max_size=40).map(Moments.of)


# --- hand-computed -----------------------------------------------------------------------------


def test_no_votes():
    lean = poll_leaning({})
    assert lean == Leaning(None, None, None, 0, 1)
    assert lean.describe() == "no votes yet"


def test_one_vote_is_the_whole_axis():
    lean = poll_leaning({0.5: 1})
    assert (lean.mean, lean.low, lean.high, lean.n) == (0.5, -1.0, 1.0, 1)
    assert "based on 1 vote" in lean.describe()
    assert "a small sample" in lean.describe()


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson's score interval for a proportion, mapped from [0, 1] to [-1, +1]."""
    z = 1.959963984540054
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 2 * (centre - half) - 1, 2 * (centre + half) - 1


def test_all_votes_on_one_option():
    # 57 votes at +1: no spread seen, so r = 1 and the interval is Wilson's for 57 out of 57.
    lean = poll_leaning({1.0: 57, -1.0: 0})
    assert lean.mean == 1.0
    low, high = wilson(57, 57)
    assert lean.low == pytest.approx(low)
    assert lean.high == pytest.approx(high) == 1.0
    assert lean.low < 1.0  # never a zero-width interval
    five = poll_leaning({-1.0: 5})
    assert (five.low, five.high) == pytest.approx(wilson(0, 5))  # five identical votes: [-1, -0.13]


def test_two_options_fifty_fifty():
    # 10 at -1, 10 at +1: only the two ends, so r = 1 and it is exactly Wilson's interval for 10 of 20.
    lean = poll_leaning([(-1.0, 10), (1.0, 10)])
    assert lean.mean == 0.0
    assert (lean.low, lean.high) == pytest.approx(wilson(10, 20))
    skewed = poll_leaning([(-1.0, 3), (1.0, 17)])
    assert (skewed.low, skewed.high) == pytest.approx(wilson(17, 20))


def test_middle_options_narrow_the_interval():
    # Same mean (0), less spread: 20 votes at 0 give a narrower interval than 10 at each end.
    ends = poll_leaning([(-1.0, 10), (1.0, 10)])
    middle = poll_leaning([(0.0, 20)])
    assert middle.high - middle.low < ends.high - ends.low
    assert middle.low < 0 < middle.high


def test_describe_format():
    lean = Leaning(0.32, 0.10, 0.54, 57)
    assert lean.describe() == "leans community (+0.32, 95% CI +0.10 to +0.54), based on 57 votes"
    assert Leaning(-0.7, -0.9, -0.5, 8).describe().endswith("based on 8 votes — a small sample")
    assert "in 3 polls" in Leaning(0.0, -0.1, 0.1, 40, polls=3).describe()


@pytest.mark.parametrize(
    ("mean", "label"),
    [
        (-1.0, "the individual first"),
        (-0.6, "the individual first"),
        (-0.4, "leaning to the individual"),
        (0.0, "both equally"),
        (0.2, "both equally"),
        (0.3, "leaning to the community"),
        (0.6, "the community first"),
        (1.0, "the community first"),
        (None, "no votes yet"),
    ],
)
def test_label_for(mean, label):
    assert label_for(mean) == label


def test_combine_of_one_poll_equals_the_poll():
    m = Moments.from_counts({-1: 4, 0: 9, 1: 20})
    assert combine([m]) == poll_leaning(m)
    with_empty = combine([m, Moments()])  # an empty poll adds no votes but was a poll held
    assert with_empty == Leaning(**{**poll_leaning(m).__dict__, "polls": 2})


def test_combine_weights_by_voters():
    big = Moments.from_counts({1.0: 90})
    small = Moments.from_counts({-1.0: 10})
    lean = combine([big, small])
    assert lean.mean == pytest.approx(0.8)  # (90 - 10) / 100, not the mean of means (0)
    assert lean.n == 100
    assert lean.polls == 2


def test_combine_widens_when_polls_disagree():
    agree = [Moments.from_counts({0.5: 15, 0.0: 5})] * 5
    differ = [Moments.from_counts({1.0: 15, 0.5: 5}), Moments.from_counts({-1.0: 15, -0.5: 5})] * 2
    differ.append(Moments.from_counts({0.5: 15, 0.0: 5}))
    a, d = combine(agree), combine(differ)
    assert a.high - a.low < d.high - d.low
    # polls that agree: no between-poll component, same as the pooled votes' within-poll interval
    pooled = poll_leaning(sum(agree, Moments()))
    assert a.mean == pytest.approx(pooled.mean)
    assert a.high - a.low == pytest.approx(pooled.high - pooled.low, rel=0.05)


def test_empty_combine():
    assert combine([]).mean is None
    assert combine([Moments(), Moments()]).n == 0


def test_spread_and_unifying_divisive():
    polls = [
        ("unanimous", {0.5: 30}),
        ("split", {-1.0: 15, 1.0: 15}),
        ("mild", {0.0: 10, 0.5: 10}),
        ("tiny-split", {-1.0: 2, 1.0: 2}),  # below the vote threshold
    ]
    assert unifying_and_divisive(polls) == ("unanimous", "split")
    assert spread({-1.0: 1, 1.0: 1}) == pytest.approx(1.0)
    assert spread({}) is None
    assert unifying_and_divisive(polls[:1]) == (None, None)


def test_shift_counts():
    events = [
        ("p1", "ann", -1.0, 1),
        ("p1", "ann", 1.0, 2),  # changed toward community
        ("p1", "bob", 0.0, 1),
        ("p1", "bob", 1.0, 2),
        ("p1", "bob", 0.0, 3),  # back where he began: kept
        ("p1", "cat", 0.5, 1),
        ("p1", "cat", None, 2),  # withdrew
        ("p2", "ann", 0.5, 5),
        ("p2", "ann", 0.0, 3),  # ordinal decides: first 0.0, final 0.5
        ("p2", "dan", 1.0, 1),
    ]
    summary = shift_counts(events)
    p1, p2 = summary.per_poll["p1"], summary.per_poll["p2"]
    assert (p1.voters, p1.changed, p1.withdrew, p1.kept) == (3, 1, 1, 1)
    assert (p1.toward_community, p1.toward_individual) == (1, 0)
    assert (p2.voters, p2.changed, p2.toward_community) == (2, 1, 1)
    assert summary.overall.changed == 2
    assert summary.members_changed == 1  # ann, in two polls
    assert summary.members == 4


def test_week_start_is_monday_utc():
    assert week_start(date(2024, 3, 10)) == date(2024, 3, 4)  # Sunday -> Monday before
    assert week_start(date(2024, 3, 11)) == date(2024, 3, 11)
    # Monday 01:00 in UTC+3 is still Sunday in UTC
    local = datetime(2024, 3, 11, 1, 0, tzinfo=timezone(timedelta(hours=3)))
    assert week_start(local) == date(2024, 3, 4)
    assert week_start(datetime(2024, 3, 11, 0, 0, tzinfo=UTC)) == date(2024, 3, 11)


def test_series_fills_empty_weeks_and_orders():
    w1, w3 = date(2024, 1, 1), date(2024, 1, 15)
    pts = series({w3: [Moments.from_counts({1: 5})], w1: Moments.from_counts({-1: 3, 0: 3})})
    assert [p.period_start for p in pts] == [w1, date(2024, 1, 8), w3]
    assert pts[1] == SeriesPoint(date(2024, 1, 8), Leaning.empty(0), 0, 0)
    assert pts[0].voters == 6
    assert pts[2].polls == 1
    assert len(series({w3: Moments(), w1: Moments()}, step=None)) == 2
    assert series({}) == []
    assert series({w1: Moments.from_counts({1: 5})}, voters={w1: 3})[0].voters == 3


def test_methodology_fits_an_embed():
    assert len(METHODOLOGY) <= 4000
    for word in ("interval", "small sample", "groups", "personality", "first vote", "Option order", "reversed"):
        assert word in METHODOLOGY


# --- properties --------------------------------------------------------------------------------


@given(counts)
def test_poll_leaning_bounds(c):
    lean = poll_leaning(c)
    if lean.n == 0:
        assert lean.mean is None
        return
    assert -1.0 <= lean.low <= lean.mean <= lean.high <= 1.0


@given(st.lists(counts, max_size=8))
def test_combine_bounds(many):
    lean = combine([Moments.from_counts(c) for c in many])
    assert lean.n == sum(sum(c.values()) for c in many)
    if lean.n:
        assert -1.0 <= lean.low <= lean.mean <= lean.high <= 1.0


@given(moments, moments, moments)
def test_moments_addition_is_associative(a, b, c):
    left, right = (a + b) + c, a + (b + c)
    assert left.n == right.n
    assert left.total == pytest.approx(right.total, abs=1e-9)
    assert left.total_sq == pytest.approx(right.total_sq, abs=1e-9)


@given(st.lists(st.floats(min_value=-1, max_value=1, allow_nan=False), max_size=30), st.data())
def test_moments_sum_equals_recomputation(xs, data):
    cut = data.draw(st.integers(min_value=0, max_value=len(xs)))
    whole, parts = Moments.of(xs), Moments.of(xs[:cut]) + Moments.of(xs[cut:])
    assert whole.n == parts.n == len(xs)
    assert whole.total == pytest.approx(parts.total, abs=1e-9)
    assert whole.total_sq == pytest.approx(parts.total_sq, abs=1e-9)


@given(counts)
def test_combine_of_one_equals_poll_property(c):
    m = Moments.from_counts(c)
    assert combine([m]) == poll_leaning(m)
    assert combine([]).polls == 0


# --- options whose voters disagree with their placement --------------------------------------------


def _ballots(poll: str, option: str, position: float, users: range) -> list[tuple[str, int, str, float]]:
    return [(poll, u, option, position) for u in users]


def test_placement_check_leaves_the_poll_out_and_flags_an_inverted_pair():
    individualists, communitarians, newcomers = range(25), range(100, 125), range(200, 230)
    votes = [
        # Elsewhere, the two camps vote at opposite ends.
        *_ballots("other", "me", -1.0, individualists),
        *_ballots("other", "us", 1.0, communitarians),
        # In "swapped", "keep it" is placed at +1 but the individualists chose it.
        *_ballots("swapped", "keep it", 1.0, individualists),
        *_ballots("swapped", "share it", -1.0, communitarians),
        # Voters with no other vote have no overall leaning to compare: left out.
        *_ballots("swapped", "keep it", 1.0, newcomers),
    ]
    checks = {(c.poll, c.option): c for c in placement_checks(votes)}
    keep, share = checks[("swapped", "keep it")], checks[("swapped", "share it")]
    assert (keep.voters, keep.voter_leaning, keep.flagged, keep.against) == (25, -1.0, True, ("share it",))
    assert (share.voters, share.voter_leaning, share.flagged, share.against) == (25, 1.0, True, ("keep it",))
    # In "other", each option's voters lean (on "swapped") the way its position says: not flagged.
    assert checks[("other", "me")].voter_leaning == 1.0  # they chose +1 in "swapped" (the misplaced one)
    assert checks[("other", "me")].flagged and checks[("other", "us")].flagged
    # Order: per poll, options in axis order.
    assert [c.option for c in placement_checks(votes) if c.poll == "swapped"] == ["share it", "keep it"]


def test_placement_check_agrees_when_voters_lean_as_placed():
    individualists, communitarians = range(30), range(100, 130)
    votes = [
        *_ballots("a", "me", -1.0, individualists),
        *_ballots("a", "us", 1.0, communitarians),
        *_ballots("b", "mine", -0.5, individualists),
        *_ballots("b", "ours", 0.5, communitarians),
    ]
    checks = placement_checks(votes)
    assert len(checks) == 4 and not any(c.flagged for c in checks)
    assert {c.option: c.voter_leaning for c in checks} == {"me": -0.5, "us": 0.5, "mine": -1.0, "ours": 1.0}


def test_placement_check_needs_enough_voters():
    votes = [*_ballots("a", "me", -1.0, range(19)), *_ballots("b", "x", 1.0, range(19))]
    assert placement_checks(votes) == []
    assert len(placement_checks(votes, min_voters=19)) == 2
    assert MIN_PLACEMENT_VOTERS == 20
