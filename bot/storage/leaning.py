"""Leaning queries: series, themes, per-poll finals, the groups matrix, a member's own compass, shifts.

Every function returns domain types (``Moments``, ``Leaning``, ``SeriesPoint``, ``ShiftSummary``) or
small dataclasses of plain values. Only closed polls count, dated by ``closed_at`` (UTC), which is the
date ``bot.storage.polls.close`` files them under in ``leaning_weekly``.

Two ways to the same weekly series:

* :func:`weekly_series` reads ``leaning_weekly`` (one row per server, theme and week, maintained at
  poll close): a one-year series is at most 53 rows on the primary key, whatever the vote count.
* :func:`series_from_votes` recomputes it from the vote rows. It exists for the benchmark and for the
  test that both agree; the bot never needs it.

Member ids never leave this module except where the caller passed one in (``/leaning me``): the vote
matrix and the shift events use opaque row numbers.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.leaning import (
    Leaning,
    Moments,
    SeriesPoint,
    ShiftSummary,
    combine,
    load_period_maths,
    poll_leaning,
    series,
    shift_counts,
    week_start,
)
from bot.storage.tables import leaning_weekly, poll_options, polls, vote_events, votes

if TYPE_CHECKING:
    import numpy as np

ALL_THEMES = ""  # the theme key of the all-themes rows in leaning_weekly
MIN_MATRIX_VOTES = 7  # bot.domain.groups.MIN_VOTES; filtered here so big servers ship less


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def _closed(guild_id: int, since: date | None, until: date | None, theme: str | None) -> ColumnElement[bool]:
    """WHERE clauses for a server's closed polls closed in [since, until) (UTC dates)."""
    cond = [polls.c.guild_id == guild_id, polls.c.status == "closed"]
    if since is not None:
        cond.append(polls.c.closed_at >= _midnight(since))
    if until is not None:
        cond.append(polls.c.closed_at < _midnight(until))
    if theme:
        cond.append(polls.c.theme == theme)
    return and_(*cond)


def _option_of(rows: Any) -> ColumnElement[bool]:
    """Join condition: the option a vote (or vote event) chose."""
    return and_(poll_options.c.poll_id == rows.c.poll_id, poll_options.c.idx == rows.c.option_idx)


def _poll_moments(row: Any) -> Moments:
    if row.final_voters is None:
        return Moments()
    return Moments(int(row.final_voters), float(row.final_total or 0.0), float(row.final_total_sq or 0.0))


# --- series --------------------------------------------------------------------------------------


async def weekly_series(
    conn: AsyncConnection,
    guild_id: int,
    *,
    theme: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[SeriesPoint]:
    """The server's week-by-week leaning from ``leaning_weekly`` (the fast path).

    ``since``/``until`` are UTC dates; a week is included when it starts on or after the Monday of
    ``since`` and before ``until``. Each week's votes are pooled (the aggregate keeps no per-poll split),
    ``voters`` counts votes, and silent weeks in between are explicit gaps.
    """
    t = leaning_weekly
    cond = [t.c.guild_id == guild_id, t.c.theme == (theme or ALL_THEMES)]
    if since is not None:
        cond.append(t.c.week_start >= week_start(since))
    if until is not None:
        cond.append(t.c.week_start < until)
    rows = await conn.execute(
        select(t.c.week_start, t.c.polls, t.c.voters, t.c.total, t.c.total_sq).where(*cond).order_by(t.c.week_start)
    )
    points: dict[date, Moments] = {}
    polls_held: dict[date, int] = {}
    for r in rows:
        points[r.week_start] = Moments(int(r.voters), float(r.total), float(r.total_sq))
        polls_held[r.week_start] = int(r.polls)
    return _with_polls(series(points), polls_held)


async def series_from_votes(
    conn: AsyncConnection,
    guild_id: int,
    *,
    theme: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[SeriesPoint]:
    """The same series as :func:`weekly_series`, recomputed from every vote row (the slow path)."""
    since_week = week_start(since) if since is not None else None
    query = (
        select(polls.c.id, polls.c.closed_at, poll_options.c.position, func.count().label("n"))
        .select_from(
            polls.join(votes, votes.c.poll_id == polls.c.id).join(
                poll_options,
                and_(poll_options.c.poll_id == votes.c.poll_id, poll_options.c.idx == votes.c.option_idx),
            )
        )
        .where(_closed(guild_id, since_week, None, theme))
        .group_by(polls.c.id, polls.c.closed_at, votes.c.option_idx, poll_options.c.position)
    )
    counts: dict[date, list[tuple[float, int]]] = defaultdict(list)
    poll_weeks: dict[date, set[int]] = defaultdict(set)
    for r in await conn.execute(query):
        week = week_start(r.closed_at)
        if until is not None and week >= until:
            continue
        counts[week].append((float(r.position), int(r.n)))
        poll_weeks[week].add(r.id)
    # Polls nobody voted in still count as held, as in leaning_weekly.
    voted = select(votes.c.poll_id).where(votes.c.poll_id == polls.c.id).exists()
    empty = select(polls.c.id, polls.c.closed_at).where(_closed(guild_id, since_week, None, theme), ~voted)
    for r in await conn.execute(empty):
        week = week_start(r.closed_at)
        if until is None or week < until:
            counts.setdefault(week, [])
            poll_weeks[week].add(r.id)
    points = {week: Moments.from_counts(items) for week, items in counts.items()}
    return _with_polls(series(points), {w: len(ids) for w, ids in poll_weeks.items()})


def _with_polls(points: list[SeriesPoint], polls_held: dict[date, int]) -> list[SeriesPoint]:
    """SeriesPoints whose ``polls`` is the number of polls held that week (not of pooled Moments)."""
    out = []
    for p in points:
        held = polls_held.get(p.period_start, 0)
        leaning = p.leaning if p.leaning.n else Leaning.empty(held)
        if leaning.n:
            leaning = Leaning(leaning.mean, leaning.low, leaning.high, leaning.n, held)
        out.append(SeriesPoint(p.period_start, leaning, p.voters, held))
    return out


async def daily_series(
    conn: AsyncConnection,
    guild_id: int,
    *,
    theme: str | None = None,
    since: date | None = None,
    until: date | None = None,
    step_days: int = 1,
) -> list[SeriesPoint]:
    """Day-by-day (or ``step_days``) leaning from the polls' final moments, polls combined per period."""
    rows = await conn.execute(
        select(polls.c.closed_at, polls.c.final_voters, polls.c.final_total, polls.c.final_total_sq).where(
            _closed(guild_id, since, until, theme)
        )
    )
    per_day: dict[date, list[Moments]] = defaultdict(list)
    origin = since or date(2000, 1, 3)
    for r in rows:
        day = r.closed_at.date()
        bucket = origin + timedelta(days=((day - origin).days // step_days) * step_days)
        per_day[bucket].append(_poll_moments(r))
    return series(per_day, step=timedelta(days=step_days))


# --- polls, themes, totals ------------------------------------------------------------------------


@dataclass(frozen=True)
class PollFinal:
    """One closed poll's final result: options as (label, position, count), and its leaning."""

    poll_id: int
    closed_at: datetime
    question: str
    theme: str | None
    prompt_key: str | None
    options: tuple[tuple[str, float, int], ...]
    moments: Moments

    @property
    def leaning(self) -> Leaning:
        return poll_leaning(self.moments)

    @property
    def counts(self) -> list[tuple[float, int]]:
        return [(position, count) for _, position, count in self.options]


async def poll_finals(
    conn: AsyncConnection,
    guild_id: int,
    *,
    since: date | None = None,
    until: date | None = None,
    theme: str | None = None,
    poll_ids: Sequence[int] | None = None,
    limit: int | None = None,
) -> list[PollFinal]:
    """The server's closed polls in the window, oldest first, with their final counts.

    Final counts come from ``poll_options.final_count`` and ``polls.final_*``, which survive a member's
    forget-me; a poll closed without them (older data) falls back to its counts.
    """
    cond = _closed(guild_id, since, until, theme)
    if poll_ids is not None:
        if not poll_ids:
            return []
        cond = and_(cond, polls.c.id.in_(list(poll_ids)))
    rows = (
        await conn.execute(
            select(
                polls.c.id,
                polls.c.closed_at,
                polls.c.question,
                polls.c.theme,
                polls.c.prompt_key,
                polls.c.final_voters,
                polls.c.final_total,
                polls.c.final_total_sq,
            )
            .where(cond)
            .order_by(polls.c.closed_at, polls.c.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return []
    options: dict[int, list[tuple[str, float, int]]] = defaultdict(list)
    ids = [r.id for r in rows]
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        opts = await conn.execute(
            select(poll_options.c.poll_id, poll_options.c.label, poll_options.c.position, poll_options.c.final_count)
            .where(poll_options.c.poll_id.in_(chunk))
            .order_by(poll_options.c.poll_id, poll_options.c.idx)
        )
        for o in opts:
            options[o.poll_id].append((o.label, float(o.position), int(o.final_count or 0)))
    out = []
    for r in rows:
        chosen = tuple(options.get(r.id, ()))
        m = _poll_moments(r) if r.final_voters is not None else Moments.from_counts([(p, c) for _, p, c in chosen])
        out.append(PollFinal(r.id, r.closed_at, r.question, r.theme, r.prompt_key, chosen, m))
    return out


_period_maths_loaded = False


async def _load_period_maths() -> None:
    """The first period leaning of a process loads scipy.special in a worker thread, not on the loop."""
    global _period_maths_loaded
    if not _period_maths_loaded:
        await asyncio.to_thread(load_period_maths)
        _period_maths_loaded = True


async def period_leaning(
    conn: AsyncConnection, guild_id: int, *, since: date | None = None, theme: str | None = None
) -> Leaning:
    """The window's leaning: its polls combined (voter-weighted, random-effects interval)."""
    await _load_period_maths()
    rows = await conn.execute(
        select(polls.c.final_voters, polls.c.final_total, polls.c.final_total_sq).where(
            _closed(guild_id, since, None, theme)
        )
    )
    return combine([_poll_moments(r) for r in rows])


async def theme_leanings(conn: AsyncConnection, guild_id: int, *, since: date | None = None) -> dict[str, Leaning]:
    """Per theme, its polls combined; themes without a closed poll are absent."""
    await _load_period_maths()
    rows = await conn.execute(
        select(polls.c.theme, polls.c.final_voters, polls.c.final_total, polls.c.final_total_sq).where(
            _closed(guild_id, since, None, None), polls.c.theme.is_not(None), polls.c.theme != ""
        )
    )
    per_theme: dict[str, list[Moments]] = defaultdict(list)
    for r in rows:
        per_theme[r.theme].append(_poll_moments(r))
    return {theme: combine(ms) for theme, ms in sorted(per_theme.items())}


async def participants(
    conn: AsyncConnection, guild_id: int, *, since: date | None = None, theme: str | None = None
) -> int:
    """Distinct members with a final vote on a closed poll in the window."""
    query = (
        select(func.count(func.distinct(votes.c.user_id)))
        .select_from(polls.join(votes, votes.c.poll_id == polls.c.id))
        .where(_closed(guild_id, since, None, theme))
    )
    return int((await conn.execute(query)).scalar() or 0)


# --- opinion groups -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteMatrix:
    """Members x polls of final positions (NaN: no vote). Rows are opaque: no member ids."""

    matrix: np.ndarray
    polls: list[int]
    excluded: int  # members who voted in the window, but fewer than ``min_votes`` times


async def vote_matrix(
    conn: AsyncConnection, guild_id: int, *, since: date | None = None, min_votes: int = MIN_MATRIX_VOTES
) -> VoteMatrix:
    """Final positions of members with at least ``min_votes`` votes on the window's closed polls."""
    import numpy as np

    window = _closed(guild_id, since, None, None)
    per_member = (
        select(votes.c.user_id, func.count().label("n"))
        .select_from(polls.join(votes, votes.c.poll_id == polls.c.id))
        .where(window)
        .group_by(votes.c.user_id)
        .subquery()
    )
    excluded = int(
        (await conn.execute(select(func.count()).select_from(per_member).where(per_member.c.n < min_votes))).scalar()
        or 0
    )
    rows = await conn.execute(
        select(votes.c.user_id, votes.c.poll_id, poll_options.c.position)
        .select_from(
            polls.join(votes, votes.c.poll_id == polls.c.id)
            .join(per_member, per_member.c.user_id == votes.c.user_id)
            .join(poll_options, _option_of(votes))
        )
        .where(window, per_member.c.n >= min_votes)
        .order_by(votes.c.poll_id)
    )
    row_of: dict[int, int] = {}
    col_of: dict[int, int] = {}
    cells: list[tuple[int, int, float]] = []
    for r in rows:
        i = row_of.setdefault(r.user_id, len(row_of))
        j = col_of.setdefault(r.poll_id, len(col_of))
        cells.append((i, j, float(r.position)))
    matrix = np.full((len(row_of), len(col_of)), np.nan)
    for i, j, position in cells:
        matrix[i, j] = position
    return VoteMatrix(matrix, list(col_of), excluded)


# --- a member's own compass -----------------------------------------------------------------------


@dataclass(frozen=True)
class MemberCompass:
    """A member's leaning next to the server's, overall and per theme (themes the member voted on)."""

    member: Leaning
    server: Leaning
    themes: list[tuple[str, Leaning, Leaning]]  # (theme, member, server), most-voted theme first


async def member_compass(
    conn: AsyncConnection, guild_id: int, user_id: int, *, since: date | None = None
) -> MemberCompass:
    """The member's final votes on the server's closed polls, next to the server's leaning per theme."""
    rows = await conn.execute(
        select(polls.c.theme, poll_options.c.position)
        .select_from(
            polls.join(votes, votes.c.poll_id == polls.c.id).join(
                poll_options,
                and_(poll_options.c.poll_id == votes.c.poll_id, poll_options.c.idx == votes.c.option_idx),
            )
        )
        .where(_closed(guild_id, since, None, None), votes.c.user_id == user_id)
    )
    mine: dict[str, list[float]] = defaultdict(list)
    everything: list[float] = []
    for r in rows:
        everything.append(float(r.position))
        if r.theme:
            mine[r.theme].append(float(r.position))
    server_themes = await theme_leanings(conn, guild_id, since=since)
    themes = [
        (theme, poll_leaning(Moments.of(positions)), server_themes.get(theme, Leaning.empty()))
        for theme, positions in sorted(mine.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    member = poll_leaning(Moments.of(everything))
    member = Leaning(member.mean, member.low, member.high, member.n, len(everything))
    return MemberCompass(member, await period_leaning(conn, guild_id, since=since), themes)


# --- changes of mind ------------------------------------------------------------------------------


async def shift_data(conn: AsyncConnection, guild_id: int, *, since: date | None = None) -> ShiftSummary:
    """First vote against final vote per member per closed poll, from ``vote_events``.

    ``per_poll`` is keyed by poll id; members are numbered opaquely before the domain sees them.
    """
    rows = await conn.execute(
        select(vote_events.c.poll_id, vote_events.c.user_id, poll_options.c.position, vote_events.c.kind)
        .select_from(
            polls.join(vote_events, vote_events.c.poll_id == polls.c.id).outerjoin(
                poll_options,
                and_(poll_options.c.poll_id == vote_events.c.poll_id, poll_options.c.idx == vote_events.c.option_idx),
            )
        )
        .where(_closed(guild_id, since, None, None))
        .order_by(vote_events.c.at, vote_events.c.id)
    )
    opaque: dict[int, int] = {}
    events = []
    for ordinal, r in enumerate(rows):
        member = opaque.setdefault(r.user_id, len(opaque))
        position = None if r.kind == "withdraw" or r.position is None else float(r.position)
        events.append((r.poll_id, member, position, ordinal))
    return shift_counts(events)


# --- options whose voters disagree with their placement -------------------------------------------


@dataclass(frozen=True)
class PlacementData:
    """Final votes on the server's closed polls, with the labels needed to show flagged options."""

    votes: list[tuple[int, int, int, float]]  # (poll id, user id, option idx, position)
    labels: dict[tuple[int, int], str]  # (poll id, option idx) -> label
    questions: dict[int, str]  # poll id -> question


async def placement_data(conn: AsyncConnection, guild_id: int, *, since: date | None = None) -> PlacementData:
    """Every final vote on the window's closed polls (for ``bot.domain.leaning.placement_checks``)."""
    window = _closed(guild_id, since, None, None)
    rows = await conn.execute(
        select(votes.c.poll_id, votes.c.user_id, votes.c.option_idx, poll_options.c.position)
        .select_from(polls.join(votes, votes.c.poll_id == polls.c.id).join(poll_options, _option_of(votes)))
        .where(window)
    )
    found = [(r.poll_id, r.user_id, r.option_idx, float(r.position)) for r in rows]
    labels: dict[tuple[int, int], str] = {}
    questions: dict[int, str] = {}
    options = await conn.execute(
        select(polls.c.id, polls.c.question, poll_options.c.idx, poll_options.c.label)
        .select_from(polls.join(poll_options, poll_options.c.poll_id == polls.c.id))
        .where(window)
    )
    for r in options:
        labels[(r.id, r.idx)] = r.label
        questions[r.id] = r.question
    return PlacementData(found, labels, questions)
