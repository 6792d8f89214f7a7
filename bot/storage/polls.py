"""Polls, their options, the current votes and the vote history; the group-commit vote writer.

A vote is one row per (poll, member): the primary key enforces it and an upsert changes it. Every
cast, change and withdrawal is also appended to ``vote_events``. Tallies are always computed from the
rows (``SELECT option_idx, count(*) ... GROUP BY``); Python never keeps a running count.

:class:`VoteWriter` queues vote requests and commits them in groups: one write transaction validates
and stores every request queued while the previous transaction was committing, then resolves each
request's future with its outcome. Callers acknowledge a vote only after that future resolves.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.clock import Clock
from bot.domain.leaning import Moments, week_start
from bot.domain.shards import ShardScope
from bot.storage.database import Database
from bot.storage.dialect import insert as insert_for
from bot.storage.scope import owned
from bot.storage.tables import guilds, leaning_weekly, poll_options, polls, vote_events, votes

log = logging.getLogger(__name__)

MAX_SNOWFLAKE = 2**63 - 1
MAX_BATCH = 2000
_IN_CHUNK = 400  # pairs per IN (...) list: 800 bound parameters, well under every SQLite's limit


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


def _poll_from(row, options: Sequence[OptionRow] = ()) -> PollRow:
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
    """A value that can be a row id or snowflake (forged custom_ids can hold any digits)."""
    return 0 < value <= MAX_SNOWFLAKE


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
    poll_id = int(result.inserted_primary_key[0])
    await conn.execute(
        insert(poll_options),
        [{"poll_id": poll_id, "idx": i, "label": label, "position": pos} for i, (label, pos) in enumerate(options)],
    )
    return poll_id


async def get(conn: AsyncConnection, poll_id: int) -> PollRow | None:
    if not valid_id(poll_id):
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
            stmt = stmt.where((polls.c.id == int(query)) if valid_id(int(query)) else polls.c.id.is_(None))
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
        events.append(_event(poll_id, row.guild_id, user_id, "cast" if before is None else "change", idx, now))
    for user_id in current.keys() - voters.keys():
        removals.append({"b_poll": poll_id, "b_user": user_id})
        events.append(_event(poll_id, row.guild_id, user_id, "withdraw", None, now))
    await _apply(conn, upserts, removals, events, now)
    return len(events)


def _event(poll_id: int, guild_id: int, user_id: int, kind: str, idx: int | None, now: datetime) -> dict[str, Any]:
    return {"poll_id": poll_id, "guild_id": guild_id, "user_id": user_id, "kind": kind, "option_idx": idx, "at": now}


async def _apply(
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


# ---------------------------------------------------------------------------------------------
# Group commit


class Mode:
    CLICK = "click"  # a button: the same option again changes nothing (the caller offers withdrawal)
    WITHDRAW = "withdraw"  # remove the member's vote, whatever it is
    SET = "set"  # a native poll vote added: set to this option
    UNSET = "unset"  # a native poll vote removed: withdraw only if it is this option


class Outcome:
    CAST = "cast"
    CHANGED = "changed"
    SAME = "same"  # clicked the current choice: nothing written
    WITHDRAWN = "withdrawn"
    NO_VOTE = "no_vote"  # nothing to withdraw
    UNAVAILABLE = "unavailable"  # no such poll here, not its message, closed, or option out of range
    NO_ROLE = "no_role"
    TOO_NEW = "too_new"


WRITES = frozenset({Outcome.CAST, Outcome.CHANGED, Outcome.WITHDRAWN})


@dataclass(frozen=True, slots=True)
class VoteResult:
    outcome: str
    option_idx: int | None = None  # the member's choice after this request (None: no vote)
    previous_idx: int | None = None
    label: str | None = None  # label of option_idx (or of the withdrawn option)
    closes_at: datetime | None = None
    live_counts: bool = False
    role_id: int | None = None  # for NO_ROLE
    min_days: int = 0  # for TOO_NEW
    eligible_at: datetime | None = None  # for TOO_NEW


@dataclass(slots=True)
class VoteRequest:
    poll_id: int
    guild_id: int | None
    user_id: int
    option_idx: int | None
    mode: str = Mode.CLICK
    message_id: int | None = None  # checked against polls.message_id when given
    role_ids: frozenset[int] | None = None  # None: who-may-vote rules are not checked (native polls)
    joined_at: datetime | None = None
    future: asyncio.Future[VoteResult] | None = None
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class _PollState:
    guild_id: int
    message_id: int | None
    status: str
    closes_at: datetime
    live_counts: bool
    labels: dict[int, str]
    vote_role_id: int | None = None
    vote_min_days: int = 0


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class VoteWriter:
    """Queues vote requests and commits them in groups, one write transaction per group.

    The next group forms while the previous transaction commits: there is no timer, so a lone vote is
    committed at once and a burst shares fsyncs. ``max_batch=1`` gives one commit per vote (benchmarks).
    """

    def __init__(self, db: Database, clock: Clock, *, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.clock = clock
        self.max_batch = max_batch
        self._queue: list[VoteRequest] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.committed = 0

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="vote-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        task, self._task = self._task, None
        if task is not None:
            self._queue.append(_STOP)  # type: ignore[arg-type]
            self._wake.set()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def submit(self, request: VoteRequest) -> asyncio.Future[VoteResult]:
        """Queue a request; the future resolves after the transaction holding it commits."""
        if request.future is None:
            request.future = asyncio.get_running_loop().create_future()
        self._queue.append(request)
        self._wake.set()
        self.start()
        return request.future

    async def vote(self, request: VoteRequest) -> VoteResult:
        return await self.submit(request)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue[: self.max_batch]
            del self._queue[: len(batch)]
            stop = any(r is _STOP for r in batch)
            batch = [r for r in batch if r is not _STOP]
            if batch:
                await self._commit(batch)
            if stop:
                # Anything still queued behind the stop marker is committed before returning.
                while self._queue:
                    rest = [r for r in self._queue[: self.max_batch] if r is not _STOP]
                    del self._queue[: self.max_batch]
                    if rest:
                        await self._commit(rest)
                return

    async def _commit(self, batch: list[VoteRequest]) -> None:
        try:
            async with self.db.write() as conn:
                results = await process_batch(conn, batch, now=self.clock.now())
        except asyncio.CancelledError:
            for r in batch:
                if r.future is not None and not r.future.done():
                    r.future.cancel()
            raise
        except Exception as exc:
            log.warning("a group of %d votes could not be committed: %r", len(batch), exc)
            for r in batch:
                if r.future is not None and not r.future.done():
                    r.future.set_exception(VoteStoreError(str(exc)))
            return
        self.batches += 1
        self.committed += len(batch)
        for r, res in zip(batch, results, strict=True):
            if r.future is not None and not r.future.done():
                r.future.set_result(res)


class VoteStoreError(RuntimeError):
    """The transaction holding a vote failed (disk full, lock timeout): the vote was not recorded."""


_STOP = VoteRequest(poll_id=0, guild_id=None, user_id=0, option_idx=None)


class _CoreBackend:
    """Portable SQLAlchemy Core statements (PostgreSQL, and SQLite when the driver is not aiosqlite)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def load_polls(self, poll_ids: list[int]) -> dict[int, _PollState]:
        conn = self.conn
        states: dict[int, _PollState] = {}
        for chunk in _chunks(poll_ids, _IN_CHUNK):
            rows = await conn.execute(
                select(
                    polls.c.id,
                    polls.c.guild_id,
                    polls.c.message_id,
                    polls.c.status,
                    polls.c.closes_at,
                    polls.c.live_counts,
                    guilds.c.vote_role_id,
                    guilds.c.vote_min_days,
                )
                .join(guilds, guilds.c.id == polls.c.guild_id)
                .where(polls.c.id.in_(chunk))
            )
            for r in rows:
                states[r.id] = _PollState(
                    r.guild_id,
                    r.message_id,
                    r.status,
                    r.closes_at,
                    bool(r.live_counts),
                    {},
                    r.vote_role_id,
                    r.vote_min_days,
                )
            opts = await conn.execute(
                select(poll_options.c.poll_id, poll_options.c.idx, poll_options.c.label).where(
                    poll_options.c.poll_id.in_(chunk)
                )
            )
            for o in opts:
                states[o.poll_id].labels[o.idx] = o.label
        return states

    async def load_votes(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
        current: dict[tuple[int, int], int] = {}
        for poll_id, users in _users_by_poll(keys):
            rows = await self.conn.execute(
                select(votes.c.user_id, votes.c.option_idx).where(
                    and_(votes.c.poll_id == poll_id, votes.c.user_id.in_(users))
                )
            )
            for r in rows:
                current[(poll_id, r.user_id)] = r.option_idx
        return current

    async def apply(self, upserts: list[tuple], removals: list[tuple], events: list[tuple], now: datetime) -> None:
        await _apply(
            self.conn,
            [{"poll_id": p, "user_id": u, "guild_id": g, "option_idx": i} for p, u, g, i in upserts],
            [{"b_poll": p, "b_user": u} for p, u in removals],
            [_event(p, g, u, k, i, now) for p, g, u, k, i in events],
            now,
        )


# SQLAlchemy's DATETIME storage format on SQLite, so raw rows read back the same through Core.
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"
_UPSERT_SQL = (
    "INSERT INTO votes (poll_id, user_id, guild_id, option_idx, voted_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (poll_id, user_id) DO UPDATE SET option_idx = excluded.option_idx, voted_at = excluded.voted_at"
)
_DELETE_SQL = "DELETE FROM votes WHERE poll_id = ? AND user_id = ?"
_EVENT_SQL = "INSERT INTO vote_events (poll_id, guild_id, user_id, kind, option_idx, at) VALUES (?, ?, ?, ?, ?, ?)"


class _SqliteBackend:
    """The hot path on SQLite: the whole batch (load, decide, write) runs as one call in aiosqlite's
    thread, on the transaction's own sqlite3 connection.

    Same statements as :class:`_CoreBackend`. It skips SQLAlchemy's per-row parameter processing (which
    cost more than the SQL at 1,000 votes a batch) and makes one thread hop per batch instead of one per
    statement, so a busy event loop delays a batch once, not eight times (benchmarks/README.md, "Votes").
    """

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def run(self, batch: Sequence[VoteRequest], now: datetime) -> list[VoteResult]:
        # aiosqlite's _execute runs a function on its connection thread; there is no public equivalent.
        return await self.driver._execute(_sqlite_batch, self.driver._conn, batch, now)


def _sqlite_batch(db: sqlite3.Connection, batch: Sequence[VoteRequest], now: datetime) -> list[VoteResult]:
    poll_ids = sorted({r.poll_id for r in batch if valid_id(r.poll_id)})
    states: dict[int, _PollState] = {}
    for chunk in _chunks(poll_ids, _IN_CHUNK):
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            "SELECT p.id, p.guild_id, p.message_id, p.status, p.closes_at, p.live_counts, g.vote_role_id, "
            f"g.vote_min_days FROM polls p JOIN guilds g ON g.id = p.guild_id WHERE p.id IN ({marks})",
            tuple(chunk),
        ).fetchall()
        for pid, gid, mid, status, closes, live, role, days in rows:
            closes_at = datetime.fromisoformat(closes).replace(tzinfo=UTC)
            states[pid] = _PollState(gid, mid, status, closes_at, bool(live), {}, role, days)
        opts = db.execute(
            f"SELECT poll_id, idx, label FROM poll_options WHERE poll_id IN ({marks})", tuple(chunk)
        ).fetchall()
        for pid, idx, label in opts:
            states[pid].labels[idx] = label
    keys = sorted({(r.poll_id, r.user_id) for r in batch if r.poll_id in states})
    current: dict[tuple[int, int], int] = {}
    for poll_id, users in _users_by_poll(keys):
        marks = ",".join("?" * len(users))
        rows = db.execute(
            f"SELECT user_id, option_idx FROM votes WHERE poll_id = ? AND user_id IN ({marks})", (poll_id, *users)
        ).fetchall()
        for user_id, idx in rows:
            current[(poll_id, user_id)] = idx
    results, upserts, removals, events = _decide(batch, states, current, keys, now)
    ts = now.astimezone(UTC).strftime(_SQLITE_TS)
    if upserts:
        db.executemany(_UPSERT_SQL, [(*row, ts) for row in upserts])
    if removals:
        db.executemany(_DELETE_SQL, removals)
    if events:
        db.executemany(_EVENT_SQL, [(*row, ts) for row in events])
    return results


_USERS_CHUNK = 900  # bound parameters per IN (...) list: under SQLite's oldest limit (999)


def _users_by_poll(keys: list[tuple[int, int]]) -> Iterable[tuple[int, list[int]]]:
    by_poll: dict[int, list[int]] = {}
    for p, u in keys:
        by_poll.setdefault(p, []).append(u)
    for p, users in by_poll.items():
        for chunk in _chunks(users, _USERS_CHUNK):
            yield p, list(chunk)


async def _backend(conn: AsyncConnection) -> _CoreBackend | _SqliteBackend:
    if conn.dialect.name == "sqlite":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if hasattr(driver, "_execute") and isinstance(getattr(driver, "_conn", None), sqlite3.Connection):
            return _SqliteBackend(driver)
    return _CoreBackend(conn)


async def process_batch(conn: AsyncConnection, batch: Sequence[VoteRequest], *, now: datetime) -> list[VoteResult]:
    """Validate and store a group of requests, in order, inside the caller's write transaction."""
    backend = await _backend(conn)
    if isinstance(backend, _SqliteBackend):
        return await backend.run(batch, now)
    poll_ids = sorted({r.poll_id for r in batch if valid_id(r.poll_id)})
    states = await backend.load_polls(poll_ids)
    keys = sorted({(r.poll_id, r.user_id) for r in batch if r.poll_id in states})
    current = await backend.load_votes(keys)
    results, upserts, removals, events = _decide(batch, states, current, keys, now)
    await backend.apply(upserts, removals, events, now)
    return results


def _decide(
    batch: Sequence[VoteRequest],
    states: dict[int, _PollState],
    current: dict[tuple[int, int], int],
    keys: list[tuple[int, int]],
    now: datetime,
) -> tuple[list[VoteResult], list[tuple], list[tuple], list[tuple]]:
    """Apply the requests in order to ``current``; return the outcomes and the rows to write."""
    before = dict(current)
    results: list[VoteResult] = []
    events: list[tuple] = []
    for r in batch:
        st = states.get(r.poll_id)
        if (
            st is None
            or (r.guild_id is not None and st.guild_id != r.guild_id)
            or (r.message_id is not None and st.message_id != r.message_id)
            or st.status != "open"
            or now >= st.closes_at
            or (r.option_idx is not None and r.option_idx not in st.labels)
        ):
            results.append(VoteResult(Outcome.UNAVAILABLE))
            continue
        common = {"closes_at": st.closes_at, "live_counts": st.live_counts}
        if r.role_ids is not None and r.mode != Mode.WITHDRAW:
            if st.vote_role_id is not None and st.vote_role_id not in r.role_ids:
                results.append(VoteResult(Outcome.NO_ROLE, role_id=st.vote_role_id, **common))
                continue
            if st.vote_min_days > 0:
                eligible = (r.joined_at + timedelta(days=st.vote_min_days)) if r.joined_at else None
                if eligible is None or now < eligible:
                    results.append(
                        VoteResult(Outcome.TOO_NEW, min_days=st.vote_min_days, eligible_at=eligible, **common)
                    )
                    continue
        key = (r.poll_id, r.user_id)
        prev = current.get(key)
        if r.mode in (Mode.WITHDRAW, Mode.UNSET) or (r.option_idx is None):
            if prev is None or (r.mode == Mode.UNSET and prev != r.option_idx):
                results.append(VoteResult(Outcome.NO_VOTE, option_idx=prev, previous_idx=prev, **common))
                continue
            del current[key]
            events.append((r.poll_id, st.guild_id, r.user_id, "withdraw", None))
            results.append(VoteResult(Outcome.WITHDRAWN, None, prev, st.labels.get(prev), **common))
            continue
        idx = r.option_idx
        label = st.labels[idx]
        if prev == idx:
            results.append(VoteResult(Outcome.SAME, idx, prev, label, **common))
            continue
        current[key] = idx
        events.append((r.poll_id, st.guild_id, r.user_id, "cast" if prev is None else "change", idx))
        results.append(VoteResult(Outcome.CAST if prev is None else Outcome.CHANGED, idx, prev, label, **common))
    # Only the final state of each key is written: one upsert or one delete per (poll, member).
    upserts: list[tuple] = []
    removals: list[tuple] = []
    for key in keys:
        old, new = before.get(key), current.get(key)
        if old == new:
            continue
        if new is None:
            removals.append(key)
        else:
            upserts.append((key[0], key[1], states[key[0]].guild_id, new))
    return results, upserts, removals, events
