"""Polls, their options, the current votes and the vote history.

A vote is one row per (poll, member): the primary key enforces it and an upsert changes it. Every
cast, change and withdrawal is also appended to ``vote_events``. Tallies are always computed from the
rows (``SELECT option_idx, count(*) ... GROUP BY``); Python never keeps a running count.

Votes cast through buttons and native polls are written by the group-commit writer in
:mod:`bot.storage.vote_writer`; it shares :func:`apply_votes` and :func:`vote_event` with
:func:`sync_voters` here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.leaning import Moments, week_start
from bot.domain.shards import ShardScope
from bot.storage.dialect import insert as insert_for
from bot.storage.scope import owned
from bot.storage.tables import leaning_weekly, poll_options, polls, vote_events, votes

MAX_SNOWFLAKE = 2**63 - 1
MAX_ROW_ID = 2**31 - 1  # an INTEGER primary key on PostgreSQL


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class OptionRow:
    idx: int
    label: str
    position: float
    final_count: int | None


@dataclass(frozen=True)
class PollRow:
    id: int
    guild_id: int
    debate_id: int | None
    channel_id: int
    message_id: int | None
    question: str
    theme: str | None
    prompt_key: str | None
    style: str
    status: str
    live_counts: bool
    opened_at: datetime
    closes_at: datetime
    closed_at: datetime | None
    final_voters: int | None
    final_total: float | None
    final_total_sq: float | None
    options: tuple[OptionRow, ...] = ()  # in idx order
    close_note: str | None = None
    option_order: tuple[int, ...] | None = None  # idx values in the order shown while open; None: idx order

    @property
    def shown(self) -> tuple[OptionRow, ...]:
        """The options in the order the poll shows them (buttons, native answers, the open embed)."""
        if not self.option_order:
            return self.options
        by_idx = {o.idx: o for o in self.options}
        ordered = [by_idx[i] for i in self.option_order if i in by_idx]
        return (*ordered, *(o for o in self.options if o.idx not in self.option_order))

    @property
    def by_axis(self) -> tuple[OptionRow, ...]:
        """The options from the individual to the community (by position; ties in idx order): results."""
        return tuple(sorted(self.options, key=lambda o: (o.position, o.idx)))

    def idx_of_answer(self, answer_id: int) -> int:
        """The option a native poll answer stands for (answers are numbered from 1 in the shown order);
        -1 for an answer id the poll does not have (the vote writer refuses it)."""
        shown = self.shown
        return shown[answer_id - 1].idx if 1 <= answer_id <= len(shown) else -1


def _order_text(order: Sequence[int] | None) -> str | None:
    return None if order is None else ",".join(str(int(i)) for i in order)


def _order_of(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    return tuple(int(part) for part in text.split(","))


def _poll_from(row: Row[Any], options: Sequence[OptionRow] = ()) -> PollRow:
    return PollRow(
        row.id,
        row.guild_id,
        row.debate_id,
        row.channel_id,
        row.message_id,
        row.question,
        row.theme,
        row.prompt_key,
        row.style,
        row.status,
        bool(row.live_counts),
        row.opened_at,
        row.closes_at,
        row.closed_at,
        row.final_voters,
        row.final_total,
        row.final_total_sq,
        tuple(options),
        row.close_note,
        _order_of(row.option_order),
    )


def valid_id(value: int) -> bool:
    """A value that can be a snowflake (forged custom_ids can hold any digits)."""
    return 0 < value <= MAX_SNOWFLAKE


def valid_poll_id(value: int) -> bool:
    """A value that can be a poll's id: ``polls.id`` is INTEGER, 32 bits on PostgreSQL, which refuses a
    larger parameter outright (a forged custom_id would fail the whole statement, not find nothing)."""
    return 0 < value <= MAX_ROW_ID


async def insert_poll(
    conn: AsyncConnection,
    *,
    guild_id: int,
    channel_id: int,
    question: str,
    options: Sequence[tuple[str, float]],
    opened_at: datetime,
    closes_at: datetime,
    style: str = "buttons",
    live_counts: bool = False,
    debate_id: int | None = None,
    theme: str | None = None,
    prompt_key: str | None = None,
    option_order: Sequence[int] | None = None,
) -> int:
    """Insert a poll and its options (idx = their index in ``options``); ``option_order``: the idx
    values in the order to show them, a permutation of ``range(len(options))`` (None: idx order)."""
    if option_order is not None and sorted(option_order) != list(range(len(options))):
        raise ValueError(f"option_order {list(option_order)} is not an order of {len(options)} options")
    result = await conn.execute(
        insert(polls).values(
            guild_id=guild_id,
            debate_id=debate_id,
            channel_id=channel_id,
            question=question,
            theme=theme,
            prompt_key=prompt_key,
            option_order=_order_text(option_order),
            style=style,
            status="open",
            live_counts=live_counts,
            opened_at=opened_at,
            closes_at=closes_at,
        )
    )
    key = result.inserted_primary_key
    assert key is not None  # a single-row INSERT always reports its key
    poll_id = int(key[0])
    await conn.execute(
        insert(poll_options),
        [{"poll_id": poll_id, "idx": i, "label": label, "position": pos} for i, (label, pos) in enumerate(options)],
    )
    return poll_id


async def get(conn: AsyncConnection, poll_id: int) -> PollRow | None:
    if not valid_poll_id(poll_id):
        return None
    row = (await conn.execute(select(polls).where(polls.c.id == poll_id))).first()
    if row is None:
        return None
    opts = await conn.execute(
        select(poll_options).where(poll_options.c.poll_id == poll_id).order_by(poll_options.c.idx)
    )
    return _poll_from(row, [OptionRow(o.idx, o.label, o.position, o.final_count) for o in opts])


async def by_message(conn: AsyncConnection, message_id: int) -> PollRow | None:
    if not valid_id(message_id):
        return None
    poll_id = (await conn.execute(select(polls.c.id).where(polls.c.message_id == message_id))).scalar()
    return await get(conn, poll_id) if poll_id is not None else None


async def set_message(conn: AsyncConnection, poll_id: int, message_id: int) -> None:
    await conn.execute(update(polls).where(polls.c.id == poll_id).values(message_id=message_id))


async def set_status(conn: AsyncConnection, poll_id: int, status: str, *, now: datetime | None = None) -> None:
    values: dict[str, Any] = {"status": status}
    if now is not None:
        values["closed_at"] = func.coalesce(polls.c.closed_at, now)
    await conn.execute(update(polls).where(polls.c.id == poll_id).values(**values))


async def set_live_counts(conn: AsyncConnection, guild_id: int, live: bool) -> None:
    await conn.execute(
        update(polls).where(polls.c.guild_id == guild_id, polls.c.status == "open").values(live_counts=live)
    )


async def tally(conn: AsyncConnection, poll_id: int) -> dict[int, int]:
    """Current counts per option index, recounted from the vote rows."""
    rows = await conn.execute(
        select(votes.c.option_idx, func.count()).where(votes.c.poll_id == poll_id).group_by(votes.c.option_idx)
    )
    return {int(idx): int(n) for idx, n in rows}


async def user_vote(conn: AsyncConnection, poll_id: int, user_id: int) -> int | None:
    return (
        await conn.execute(select(votes.c.option_idx).where(votes.c.poll_id == poll_id, votes.c.user_id == user_id))
    ).scalar()


async def varied_count(conn: AsyncConnection, guild_id: int) -> int:
    """How many of the server's polls were created with a varied option order (the next one's ordinal)."""
    return (
        await conn.execute(
            select(func.count())
            .select_from(polls)
            .where(polls.c.guild_id == guild_id, polls.c.option_order.is_not(None))
        )
    ).scalar_one()


async def latest_id(conn: AsyncConnection, guild_id: int, *, closed_only: bool = False) -> int | None:
    query = select(polls.c.id).where(polls.c.guild_id == guild_id)
    if closed_only:
        query = query.where(polls.c.status == "closed")
    return (await conn.execute(query.order_by(polls.c.opened_at.desc(), polls.c.id.desc()).limit(1))).scalar()


async def search(
    conn: AsyncConnection, guild_id: int, query: str, *, status: str | None, limit: int = 25
) -> list[tuple[int, str, str, datetime]]:
    """(id, question, status, opened_at) of the server's polls whose question contains ``query``."""
    stmt = select(polls.c.id, polls.c.question, polls.c.status, polls.c.opened_at).where(polls.c.guild_id == guild_id)
    if status is not None:
        stmt = stmt.where(polls.c.status == status)
    query = query.strip()
    if query:
        if query.isdigit():
            stmt = stmt.where((polls.c.id == int(query)) if valid_poll_id(int(query)) else polls.c.id.is_(None))
        else:
            # Escape LIKE metacharacters so a member's % or _ matches itself.
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(polls.c.question.ilike(f"%{escaped}%", escape="\\"))
    rows = await conn.execute(stmt.order_by(polls.c.opened_at.desc(), polls.c.id.desc()).limit(limit))
    return [(r.id, r.question, r.status, r.opened_at) for r in rows]


async def open_polls(
    conn: AsyncConnection, *, style: str | None = None, scope: ShardScope | None = None
) -> list[PollRow]:
    stmt = select(polls).where(polls.c.status == "open", owned(polls.c.guild_id, scope))
    if style is not None:
        stmt = stmt.where(polls.c.style == style)
    return [_poll_from(r) for r in await conn.execute(stmt.order_by(polls.c.id))]


async def debate_thread(conn: AsyncConnection, debate_id: int | None) -> int | None:
    if debate_id is None:
        return None
    from bot.storage.tables import debates

    return (await conn.execute(select(debates.c.thread_id).where(debates.c.id == debate_id))).scalar()


# ---------------------------------------------------------------------------------------------
# Close


@dataclass(frozen=True)
class ClosedPoll:
    poll_id: int
    counts: dict[int, int]
    moments: Moments


async def close(
    conn: AsyncConnection,
    poll_id: int,
    *,
    now: datetime,
    counts: Mapping[int, int] | None = None,
    note: str | None = None,
) -> ClosedPoll | None:
    """Close an open poll inside the caller's transaction; None if it was not open (idempotent).

    Final counts are the recount of vote rows unless ``counts`` is given (a native poll's finalized
    counts, which Discord is the authority on). The weekly aggregates gain this poll.
    """
    row = (
        await conn.execute(select(polls.c.status, polls.c.guild_id, polls.c.theme).where(polls.c.id == poll_id))
    ).first()
    if row is None or row.status != "open":
        return None
    final = dict(counts) if counts is not None else await tally(conn, poll_id)
    opts = (
        await conn.execute(select(poll_options.c.idx, poll_options.c.position).where(poll_options.c.poll_id == poll_id))
    ).all()
    final = {o.idx: int(final.get(o.idx, 0)) for o in opts}
    moments = Moments.from_counts([(o.position, final[o.idx]) for o in opts])
    await conn.execute(
        update(poll_options)
        .where(poll_options.c.poll_id == poll_id, poll_options.c.idx == bindparam("b_idx"))
        .values(final_count=bindparam("b_count")),
        [{"b_idx": idx, "b_count": n} for idx, n in final.items()],
    )
    await conn.execute(
        update(polls)
        .where(polls.c.id == poll_id)
        .values(
            status="closed",
            closed_at=now,
            close_note=note,
            final_voters=moments.n,
            final_total=moments.total,
            final_total_sq=moments.total_sq,
        )
    )
    await add_to_weekly(conn, row.guild_id, row.theme, week_start(now), moments)
    return ClosedPoll(poll_id, final, moments)


async def add_to_weekly(conn: AsyncConnection, guild_id: int, theme: str | None, week: date, moments: Moments) -> None:
    """Add one closed poll to its week's aggregates: the all-themes row ("") and its theme's row."""
    for key in {""} | ({theme} if theme else set()):
        stmt = insert_for(conn)(leaning_weekly).values(
            guild_id=guild_id,
            theme=key,
            week_start=week,
            polls=1,
            voters=moments.n,
            total=moments.total,
            total_sq=moments.total_sq,
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[leaning_weekly.c.guild_id, leaning_weekly.c.theme, leaning_weekly.c.week_start],
                set_={
                    "polls": leaning_weekly.c.polls + 1,
                    "voters": leaning_weekly.c.voters + moments.n,
                    "total": leaning_weekly.c.total + moments.total,
                    "total_sq": leaning_weekly.c.total_sq + moments.total_sq,
                },
            )
        )


# ---------------------------------------------------------------------------------------------
# Native polls: make the stored votes equal the voters Discord reports.


async def sync_voters(conn: AsyncConnection, poll_id: int, voters: Mapping[int, int], *, now: datetime) -> int:
    """Set the poll's votes to ``{user_id: option_idx}`` (events for each difference); return changes."""
    row = (await conn.execute(select(polls.c.guild_id, polls.c.status).where(polls.c.id == poll_id))).first()
    if row is None or row.status != "open":
        return 0
    current = {
        r.user_id: r.option_idx
        for r in await conn.execute(select(votes.c.user_id, votes.c.option_idx).where(votes.c.poll_id == poll_id))
    }
    upserts, removals, events = [], [], []
    for user_id, idx in voters.items():
        before = current.get(user_id)
        if before == idx:
            continue
        upserts.append({"poll_id": poll_id, "user_id": user_id, "guild_id": row.guild_id, "option_idx": idx})
        events.append(vote_event(poll_id, row.guild_id, user_id, "cast" if before is None else "change", idx, now))
    for user_id in current.keys() - voters.keys():
        removals.append({"b_poll": poll_id, "b_user": user_id})
        events.append(vote_event(poll_id, row.guild_id, user_id, "withdraw", None, now))
    await apply_votes(conn, upserts, removals, events, now)
    return len(events)


def vote_event(poll_id: int, guild_id: int, user_id: int, kind: str, idx: int | None, now: datetime) -> dict[str, Any]:
    return {"poll_id": poll_id, "guild_id": guild_id, "user_id": user_id, "kind": kind, "option_idx": idx, "at": now}


async def apply_votes(
    conn: AsyncConnection,
    upserts: list[dict[str, Any]],
    removals: list[dict[str, Any]],
    events: list[dict[str, Any]],
    now: datetime,
) -> None:
    if upserts:
        for u in upserts:
            u["voted_at"] = now
        stmt = insert_for(conn)(votes)
        stmt = stmt.on_conflict_do_update(
            index_elements=[votes.c.poll_id, votes.c.user_id],
            set_={"option_idx": stmt.excluded.option_idx, "voted_at": stmt.excluded.voted_at},
        )
        await conn.execute(stmt, upserts)
    if removals:
        await conn.execute(
            delete(votes).where(votes.c.poll_id == bindparam("b_poll"), votes.c.user_id == bindparam("b_user")),
            removals,
        )
    if events:
        await conn.execute(insert(vote_events), events)
