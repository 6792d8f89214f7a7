"""Leaning statistics: where a community's votes sit on the individual-community axis.

Pure computation. Imports the standard library, numpy-free maths and ``scipy.special`` (for the
Student t quantile, a transitive dependency of scikit-learn; imported on the first period leaning, not
at start-up: a process that only takes votes never loads scipy); no discord, no database, no asyncio.

Vocabulary: an option has a *position* in [-1, +1] (-1 the individual first, 0 both equally,
+1 the community first); a vote is one member's choice of one option; the *leaning* is the mean
position of the votes, always reported with a 95% interval and the number of votes it rests on.

The interval for one poll
    A score interval (Wilson's, generalised from two options to positions on [-1, +1]): the means
    ``mu`` with ``|mean - mu| <= z * sqrt(r * (1 - mu^2) / n)``. ``1 - mu^2`` is the largest spread any
    votes on [-1, +1] with mean ``mu`` can have (everyone at the two ends); ``r`` is the share of it
    the votes show, ``r = (SSD + 1) / (n (1 - mean^2) + 1)`` (SSD: the squared deviations from the
    mean). With only the two end options ``r = 1`` and this is exactly Wilson's interval for a
    proportion; middle options make it narrower; unanimous votes (no spread seen) get Wilson's
    width, so five identical votes never look certain. The bounds stay inside [-1, +1] by
    construction. One vote gives the whole axis.

    Why not mean +/- t * s / sqrt(n) (used until the coverage test, tests/unit/test_leaning_coverage.py,
    measured it): with one pseudo-vote at each end it covered the true leaning 99-100 % of the time
    below 10 votes, and without them a unanimous sample gives a zero-width interval; the score
    interval covers 95-97 % from 5 votes to 500, across balanced and skewed distributions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import Any, TypeVar

__all__ = [
    "BANDS",
    "METHODOLOGY",
    "MIN_PLACEMENT_VOTERS",
    "MIN_SPREAD_VOTES",
    "SMALL_SAMPLE",
    "WEEK",
    "Leaning",
    "Moments",
    "OptionCheck",
    "PollShift",
    "SeriesPoint",
    "ShiftSummary",
    "combine",
    "label_for",
    "placement_checks",
    "poll_leaning",
    "series",
    "shift_counts",
    "spread",
    "unifying_and_divisive",
    "week_start",
]

#: Below this many votes a leaning is flagged as "a small sample".
SMALL_SAMPLE = 10
#: A poll needs this many votes before it can be called the most unifying or most divisive.
MIN_SPREAD_VOTES = 10
#: Length of a period in the weekly series; weeks start on Monday (ISO 8601), in UTC.
WEEK = timedelta(weeks=1)

_CONFIDENCE = 0.95

K = TypeVar("K", bound=Hashable)

#: (band edge, label, short phrase for ``Leaning.describe``), from -1 to +1; see ``label_for``.
BANDS: tuple[tuple[float, str, str], ...] = (
    (-0.6, "the individual first", "puts the individual first"),
    (-0.2, "leaning to the individual", "leans individual"),
    (0.2, "both equally", "sits at both equally"),
    (0.6, "leaning to the community", "leans community"),
    (1.0, "the community first", "puts the community first"),
)


def _clamp(x: float) -> float:
    return max(-1.0, min(1.0, x))


def _fmt(x: float) -> str:
    if abs(x) < 0.005:
        return "0.00"
    return f"{x:+.2f}"


def _t(df: float) -> float:
    from scipy.special import stdtrit  # ~40 MB and ~0.5 s: loaded only where a period leaning is computed

    return float(stdtrit(df, 0.5 + _CONFIDENCE / 2))


def load_period_maths() -> None:
    """Load what :func:`combine` needs (scipy.special) ahead of it: ~0.5 s of CPU the first time in a
    process, which a caller on an event loop spends in a worker thread rather than on the loop."""
    _t(2.0)


# The normal quantile from the standard library (Wichura's AS241, within an ulp of scipy's ndtri), so the
# interval of one poll, drawn on every closed poll, needs no scipy.
_Z = NormalDist().inv_cdf(0.5 + _CONFIDENCE / 2)


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of a set of positions: count, sum and sum of squares.

    Moments add (``a + b`` is the moments of both sets), so storage can keep them per poll and
    per period without keeping the votes.
    """

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @classmethod
    def of(cls, positions: Iterable[float]) -> Moments:
        n, total, total_sq = 0, 0.0, 0.0
        for x in positions:
            x = float(x)
            n += 1
            total += x
            total_sq += x * x
        return cls(n, total, total_sq)

    @classmethod
    def from_counts(cls, counts: Mapping[float, int] | Sequence[tuple[float, int]]) -> Moments:
        """Moments from ``{position: count}`` or ``[(position, count), ...]``; counts must be >= 0."""
        items = counts.items() if isinstance(counts, Mapping) else counts
        n, total, total_sq = 0, 0.0, 0.0
        for position, count in items:
            count = int(count)
            if count < 0:
                raise ValueError("a vote count cannot be negative")
            x = float(position)
            n += count
            total += count * x
            total_sq += count * x * x
        return cls(n, total, total_sq)

    def __add__(self, other: object) -> Moments:
        if not isinstance(other, Moments):
            return NotImplemented
        return Moments(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def sum_sq_dev(self) -> float:
        """Sum of squared deviations from the mean (never negative despite rounding)."""
        if self.n == 0:
            return 0.0
        return max(0.0, self.total_sq - self.total * self.total / self.n)


@dataclass(frozen=True)
class Leaning:
    """A mean position with its 95% interval, the votes it rests on and the polls they came from."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    polls: int = 1

    @classmethod
    def empty(cls, polls: int = 0) -> Leaning:
        return cls(None, None, None, 0, polls)

    @property
    def small(self) -> bool:
        return 0 < self.n < SMALL_SAMPLE

    @property
    def label(self) -> str:
        return label_for(self.mean)

    def describe(self) -> str:
        """One sentence for an embed, e.g. "leans community (+0.32, 95% CI +0.10 to +0.54), based on 57 votes"."""
        if self.n == 0 or self.mean is None or self.low is None or self.high is None:
            return "no votes yet"
        phrase = _band(self.mean)[2]
        votes = "1 vote" if self.n == 1 else f"{self.n} votes"
        if self.polls > 1:
            votes += f" in {self.polls} polls"
        text = f"{phrase} ({_fmt(self.mean)}, 95% CI {_fmt(self.low)} to {_fmt(self.high)}), based on {votes}"
        notes = []
        if self.small:
            notes.append("a small sample")
        elif self.low is not None and self.high is not None and self.low < 0 < self.high and abs(self.mean) > 0.2:
            notes.append("the interval spans both sides")
        if notes:
            text += " — " + "; ".join(notes)
        return text


def _band(mean: float) -> tuple[float, str, str]:
    # Symmetric bands: the middle one includes +/-0.2, the outer ones include +/-0.6.
    if mean <= -0.6:
        return BANDS[0]
    if mean < -0.2:
        return BANDS[1]
    if mean <= 0.2:
        return BANDS[2]
    if mean < 0.6:
        return BANDS[3]
    return BANDS[4]


def label_for(mean: float | None) -> str:
    """Five bands: the individual first (<= -0.6), leaning to the individual, both equally
    (-0.2 to +0.2), leaning to the community, the community first (>= +0.6)."""
    if mean is None:
        return "no votes yet"
    return _band(mean)[1]


def _regularised_var(sum_sq_dev: float, n_total: int, mean: float, groups: int) -> float:
    # One pseudo-vote at -1 and one at +1, measured from the observed mean: they add
    # (1 + mean)^2 + (1 - mean)^2 = 2 + 2 mean^2 to the squared deviations and 2 to the
    # degrees of freedom (n - groups). Used for the within-poll variance in tau^2 (see ``combine``).
    return (sum_sq_dev + 2.0 + 2.0 * mean * mean) / (n_total - groups + 2)


def _spread_share(sum_sq_dev: float, n: int, mean: float) -> float:
    """``r``: the observed spread as a share of the largest possible at this mean (one pseudo unit)."""
    return min(1.0, (sum_sq_dev + 1.0) / (n * (1.0 - mean * mean) + 1.0))


def _score_interval(
    mean: float, n: int, r: float, extra_var: float = 0.0, q: float | None = None
) -> tuple[float, float]:
    """The ``mu`` with ``(mean - mu)^2 <= q^2 (r (1 - mu^2) / n + extra_var)``: a quadratic in ``mu``."""
    q = _Z if q is None else q
    k = q * q * r
    disc = k * (n * (1.0 - mean * mean) + k) + (n + k) * q * q * n * extra_var
    half = math.sqrt(max(disc, 0.0))
    return _clamp((n * mean - half) / (n + k)), _clamp((n * mean + half) / (n + k))


def _interval(mean: float, var_of_mean: float, df: float) -> tuple[float, float]:
    half = _t(df) * math.sqrt(max(var_of_mean, 0.0))
    return _clamp(mean - half), _clamp(mean + half)


def _from_moments(m: Moments, polls: int = 1) -> Leaning:
    if m.n == 0:
        return Leaning.empty(polls)
    mean = _clamp(m.total / m.n)
    if m.n == 1:
        return Leaning(mean, -1.0, 1.0, 1, polls)
    low, high = _score_interval(mean, m.n, _spread_share(m.sum_sq_dev, m.n, mean))
    return Leaning(mean, min(low, mean), max(high, mean), m.n, polls)


def poll_leaning(counts: Mapping[float, int] | Sequence[tuple[float, int]] | Moments) -> Leaning:
    """The leaning of one poll from its counts per option position (or its ``Moments``)."""
    m = counts if isinstance(counts, Moments) else Moments.from_counts(counts)
    return _from_moments(m, 1)


def combine(polls: Sequence[Moments]) -> Leaning:
    """A period's leaning across several polls.

    Mean: the pooled mean of all votes, ``sum(total) / sum(n)``, so each poll weighs by its voters.

    Interval: the score interval of one poll (see the module docstring) on the pooled votes, with
    the spread share ``r`` taken from the spread *within* polls, plus a between-poll variance
    under a one-way random-effects model, in which poll j's true mean is ``mu + u_j`` with ``u_j``
    of variance ``tau^2`` (the dilemmas of a week are a sample of dilemmas, and they differ)::

        (mean - mu)^2 <= q^2 (r (1 - mu^2) / N + B)

    ``B`` is the larger of two estimates of the between-poll part of the variance of the mean:
    ``tau^2 * sum(n_j^2) / N^2`` with ``tau^2`` the ANOVA method-of-moments estimate (truncated at
    0), and the cluster-robust (sandwich) variance ``G/(G-1) * sum(n_j^2 (m_j - m)^2) / N^2`` less the
    within part. The quantile ``q`` is normal when ``B = 0``, else Student's t with ``G - 1``
    degrees of freedom.

    Why: a week has a handful of polls. The previous rule (ANOVA alone, t with Welch-Satterthwaite
    degrees of freedom) covered the dilemma population's leaning only 87-89 % of the time with
    three polls of 50-200 voters that differ (tests/unit/test_leaning_coverage.py); the sandwich
    is not zero when the ANOVA estimate is truncated, and G - 1 degrees of freedom price in how
    little a few polls say about the spread between dilemmas. With one poll, or polls that agree
    to within noise, ``B = 0`` and the result is ``poll_leaning`` of the pooled votes.

    Not modelled: the same member voting in several polls (we only have moments); such votes are
    usually positively correlated, so the interval may be somewhat narrow for a small, loyal crowd.
    """
    given = len(polls)  # a poll nobody voted in still counts as a poll held
    polls = [p for p in polls if p.n > 0]
    g = len(polls)
    total = sum(polls, Moments())
    if g <= 1 or total.n <= 1:
        return _from_moments(total, given)
    n = total.n
    mean = _clamp(total.total / n)
    within_ss = sum(p.sum_sq_dev for p in polls)
    r = _spread_share(within_ss, n, mean)
    within_var = r * (1.0 - mean * mean) / n
    s_w2 = _regularised_var(within_ss, n, mean, g)
    between_ss = sum(p.n * (p.total / p.n - mean) ** 2 for p in polls)
    sum_n2 = sum(p.n * p.n for p in polls)
    denom = n - sum_n2 / n
    tau2 = max(0.0, (between_ss - (g - 1) * s_w2) / denom) if denom > 0 else 0.0
    sandwich = g / (g - 1) * sum(p.n * p.n * (p.total / p.n - mean) ** 2 for p in polls) / (n * n)
    b = max(tau2 * sum_n2 / (n * n), sandwich - within_var, 0.0)
    # Between-poll spread seen: Student's t with G - 1 degrees of freedom (as Hartung and Knapp do for
    # a few studies in a meta-analysis); Welch's degrees of freedom, dominated by the many votes,
    # under-covered at three polls.
    q = _t(g - 1) if b > 0 else None
    low, high = _score_interval(mean, n, r, b, q)
    return Leaning(mean, min(low, mean), max(high, mean), n, given)


# --- unifying and divisive polls ---------------------------------------------------------------


def spread(counts: Mapping[float, int] | Sequence[tuple[float, int]]) -> float | None:
    """Standard deviation of the positions of the votes (0 = unanimous, 1 = split between the ends)."""
    m = Moments.from_counts(counts)
    if m.n == 0:
        return None
    return math.sqrt(m.sum_sq_dev / m.n)


def unifying_and_divisive(
    polls: Sequence[tuple[K, Mapping[float, int] | Sequence[tuple[float, int]]]],
    *,
    min_votes: int = MIN_SPREAD_VOTES,
) -> tuple[K | None, K | None]:
    """``(most_unifying, most_divisive)`` keys among polls with at least ``min_votes`` votes.

    Spread is the standard deviation of the positions, which (unlike entropy over options) counts how
    far apart the chosen options are: a split between the two ends is more divisive than one between
    two neighbouring options. Ties go to the poll with more votes, then the earlier one. With fewer
    than two eligible polls there is no comparison to make, and both are None.
    """
    scored = []
    for index, (key, counts) in enumerate(polls):
        m = Moments.from_counts(counts)
        if m.n < max(min_votes, 1):
            continue
        scored.append((math.sqrt(m.sum_sq_dev / m.n), -m.n, index, key))
    if len(scored) < 2:
        return None, None
    unifying = min(scored, key=lambda s: (round(s[0], 12), s[1], s[2]))
    divisive = min(scored, key=lambda s: (-round(s[0], 12), s[1], s[2]))
    if unifying[2] == divisive[2]:  # every poll equally spread: nothing stands out
        return None, None
    return unifying[3], divisive[3]


# --- changes of mind ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PollShift:
    """Changes of mind in one poll, counted per member from their first vote to their final one."""

    voters: int = 0  # members who voted at least once
    changed: int = 0  # final vote differs from first vote (withdrawals not included)
    withdrew: int = 0  # voted, then withdrew and did not vote again
    toward_community: int = 0  # changed to a higher position
    toward_individual: int = 0  # changed to a lower position

    @property
    def kept(self) -> int:
        return self.voters - self.changed - self.withdrew


@dataclass(frozen=True)
class ShiftSummary:
    """Per poll and overall; holds no user ids. ``members_changed`` counts distinct members."""

    per_poll: Mapping[Hashable, PollShift] = field(default_factory=dict)
    overall: PollShift = field(default_factory=PollShift)
    members_changed: int = 0
    members: int = 0


def shift_counts(events: Iterable[tuple[Hashable, Hashable, float | None, int]]) -> ShiftSummary:
    """Count members whose first vote differs from their final vote.

    ``events`` are ``(poll_id, user_id, position_or_None, ordinal)``; ``None`` is a withdrawal and
    ``ordinal`` orders a member's events within a poll. A member whose last event is a withdrawal
    counts as "withdrew"; A -> B -> A counts as kept (they ended where they began). Two options at
    the same position are told apart only by position, so a move between them is not a shift.
    """
    history: dict[tuple[Hashable, Hashable], list[tuple[int, int, float | None]]] = defaultdict(list)
    for seq, (poll_id, user_id, position, ordinal) in enumerate(events):
        history[(poll_id, user_id)].append((ordinal, seq, None if position is None else float(position)))

    counters: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    members: set[Hashable] = set()
    changed_members: set[Hashable] = set()
    for (poll_id, user_id), items in history.items():
        items.sort(key=lambda item: (item[0], item[1]))
        votes = [pos for _, _, pos in items if pos is not None]
        if not votes:
            continue  # only withdrawals: never voted
        c = counters[poll_id]
        members.add(user_id)
        c[0] += 1
        first, final = votes[0], items[-1][2]
        if final is None:
            c[2] += 1
        elif not math.isclose(final, first, abs_tol=1e-9):
            c[1] += 1
            c[3 if final > first else 4] += 1
            changed_members.add(user_id)
    per_poll = {poll: PollShift(*c) for poll, c in counters.items()}
    overall = PollShift(*(sum(c[i] for c in counters.values()) for i in range(5)))
    return ShiftSummary(per_poll, overall, len(changed_members), len(members))


# --- options whose voters disagree with their placement -----------------------------------------

#: An option needs this many voters (with other votes to lean by) before its placement is checked.
MIN_PLACEMENT_VOTERS = 20


@dataclass(frozen=True)
class OptionCheck:
    """One option of one poll: its position, and where its voters lean on the *other* polls."""

    poll: Hashable
    option: Hashable
    position: float
    voters: int  # voters of this option who voted in at least one other poll
    voter_leaning: float  # the mean, over those voters, of each one's mean position elsewhere
    flagged: bool = False  # another checked option of the poll sits on the other side of it
    against: tuple[Hashable, ...] = ()  # those options


def placement_checks(
    votes: Iterable[tuple[Hashable, Hashable, Hashable, float]], *, min_voters: int = MIN_PLACEMENT_VOTERS
) -> list[OptionCheck]:
    """Options with at least ``min_voters`` voters, each with the mean overall leaning of its voters.

    ``votes`` are ``(poll, user, option, position)``, one per member and poll. A voter's overall
    leaning leaves out the poll being checked (else every option would look right by construction),
    so only voters with another vote count. An option is *flagged* when another checked option of
    the same poll has a lower position but voters who lean further to the community, or a higher
    position and voters who lean further to the individual: the order of the options' voters
    contradicts the order of their positions, a hint that the option is placed wrongly on the axis
    (or worded so that it draws a different crowd). Returned per poll, options in axis order.
    """
    per_user: dict[Hashable, list[float]] = defaultdict(lambda: [0.0, 0.0])  # total, count
    rows = []
    for poll, user, option, position in votes:
        x = float(position)
        acc = per_user[user]
        acc[0] += x
        acc[1] += 1
        rows.append((poll, user, option, x))
    groups: dict[tuple[Hashable, Hashable], list[float]] = defaultdict(list)
    positions: dict[tuple[Hashable, Hashable], float] = {}
    for poll, user, option, x in rows:
        total, count = per_user[user]
        if count < 2:
            continue
        groups[(poll, option)].append((total - x) / (count - 1))
        positions[(poll, option)] = x
    by_poll: dict[Hashable, list[OptionCheck]] = defaultdict(list)
    for (poll, option), leanings in groups.items():
        if len(leanings) >= min_voters:
            by_poll[poll].append(
                OptionCheck(poll, option, positions[(poll, option)], len(leanings), sum(leanings) / len(leanings))
            )
    out: list[OptionCheck] = []
    for checks in by_poll.values():
        checks.sort(key=lambda c: (c.position, str(c.option)))
        for c in checks:
            against = tuple(
                o.option
                for o in checks
                if (o.position < c.position and o.voter_leaning > c.voter_leaning)
                or (o.position > c.position and o.voter_leaning < c.voter_leaning)
            )
            out.append(replace(c, flagged=bool(against), against=against))
    return out


# --- periods -----------------------------------------------------------------------------------


def week_start(dt: datetime | date) -> date:
    """The Monday (UTC) starting the ISO week of ``dt``; naive datetimes are taken as UTC."""
    if isinstance(dt, datetime):
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC)
        d = dt.date()
    else:
        d = dt
    return d - timedelta(days=d.weekday())


@dataclass(frozen=True)
class SeriesPoint:
    """One period of a series. ``voters`` is distinct members when the caller knows them, else votes."""

    period_start: date
    leaning: Leaning
    voters: int
    polls: int


def series(
    points: Mapping[date, Moments | Sequence[Moments]],
    *,
    voters: Mapping[date, int] | None = None,
    step: timedelta | None = WEEK,
) -> list[SeriesPoint]:
    """Periods in date order, each with its leaning.

    A value may be one ``Moments`` (the period's votes pooled; counted as one poll) or a sequence of
    per-poll ``Moments`` (combined with ``combine``, which widens the interval when polls differ).
    Empty periods are explicit: a period with no votes has ``leaning.mean is None``, and, when
    ``step`` is given (a week by default), missing periods between the first and last key are filled
    in as empty, so a chart shows a gap instead of a line bridging silent weeks. ``step=None`` keeps
    only the keys given.
    """
    if not points:
        return []
    keys = sorted(points)
    if step is not None and step > timedelta(0):
        filled: list[Any] = []
        d = keys[0]
        last = keys[-1]
        limit = 10_000  # a guard against a tiny step over a long range
        while d <= last and len(filled) < limit:
            filled.append(d)
            d = d + step
        keys = sorted(set(filled) | set(keys))
    out = []
    for d in keys:
        value = points.get(d)
        if value is None:
            per_poll: list[Moments] = []
        elif isinstance(value, Moments):
            per_poll = [value]
        else:
            per_poll = list(value)
        per_poll = [m for m in per_poll if m.n > 0]
        leaning = combine(per_poll) if per_poll else Leaning.empty(0)
        n_voters = voters.get(d, leaning.n) if voters is not None else leaning.n
        out.append(SeriesPoint(d, leaning, n_voters, len(per_poll)))
    return out


METHODOLOGY = """\
**How the numbers are made**

**Positions.** Each option of a poll sits on an axis from **-1** (the individual first) through \
**0** (both equally) to **+1** (the community first). A vote counts at its option's position.

**Option order.** A debate poll shows its options either from the individual to the community or \
the other way round: in every two polls of a server one is reversed, and a seeded coin picks which. \
People pick the first option they read a little more often; if the individual end always came first, \
that nudge would push every leaning the same way, and regulars would learn where each end sits. \
Votes are stored by option, never by where it was shown, and results and charts always list the \
options from the individual first (top) to the community first (bottom). Ad-hoc polls keep the order \
their moderator typed.

**A poll's leaning** is the average position of its votes. Bands: -1 to -0.6 *the individual \
first*, to -0.2 *leaning to the individual*, -0.2 to +0.2 *both equally*, to +0.6 *leaning to the \
community*, above *the community first*.

**The interval** (95% CI) is the range the leaning would plausibly fall in if a similar group voted \
again. It is Wilson's score interval, stretched from a yes/no question to positions from -1 to +1: \
how far the average can sit from a true value depends on how spread out votes *could* be there \
(most near the middle of the axis, none at an end) and how spread out these votes are. Five identical \
votes still get a wide interval; one vote gives the whole axis. A simulation checks that it covers \
the true leaning 95% of the time, from 5 votes to 500, for balanced and lopsided polls.

**A week or a theme** pools all its votes, so a poll with more voters weighs more. Its interval adds \
the differences *between* polls to the noise *within* them (a random-effects variance): if the week's \
dilemmas split the room in different directions, the interval widens, and with only a few polls it \
widens a lot. With one poll it equals that poll's interval. A member who votes in several polls \
counts once per poll.

**Small samples.** Below 10 votes a number is marked *a small sample*: read it as a hint, not a \
finding. Weeks with no votes are shown as gaps, never as zero.

**Unifying and divisive.** Spread is the standard deviation of the positions chosen: 0 when everyone \
picks the same option, 1 when the room splits between the two ends. Only polls with at least 10 votes \
are compared.

**Changes of mind** compare each member's first vote in a poll with their final one. Moving back to \
where you began is not a change; withdrawing your vote is counted separately as *withdrew*.

**Opinion groups** (as in Pol.is): members with at least 7 votes are placed on a map by how they \
voted (a missing vote counts as that poll's average; the map is a 2-D principal-component \
projection), then clustered with k-means, choosing 2 to 5 groups by silhouette score. Only groups \
of 5 or more are shown; if fewer than two remain, there are *no distinct groups*. *Consensus* polls \
are those where every group leans the same way and the groups sit close; *divisive* polls are where \
the groups sit furthest apart. The map shows no names and is not saved.

**What this is not.** These numbers describe how a community voted on particular dilemmas, worded \
in particular ways, by whoever chose to vote. They are not a measure of anyone's personality or \
values, nor of the server as a whole, and they change with the questions asked.
"""
