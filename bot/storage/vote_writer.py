"""The group-commit vote writer: every button click and native poll vote is stored through it.

:class:`VoteWriter` queues vote requests and commits them in groups: one write transaction validates
and stores every request queued while the previous transaction was committing, then resolves each
request's future with its outcome. Callers acknowledge a vote only after that future resolves.

:func:`process_batch` does one group inside the caller's transaction, through the portable Core
statements or, on aiosqlite, the fast path that runs the whole group in the driver's thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.clock import Clock
from bot.storage.database import Database
from bot.storage.polls import apply_votes, valid_poll_id, vote_event
from bot.storage.sqlite_driver import OneTripConnection
from bot.storage.tables import guilds, poll_options, polls, votes

log = logging.getLogger(__name__)

MAX_BATCH = 2000
_IN_CHUNK = 400  # pairs per IN (...) list: 800 bound parameters, well under every SQLite's limit

# Rows a batch writes, as both backends take them.
Upsert = tuple[int, int, int, int]  # (poll_id, user_id, guild_id, option_idx)
Removal = tuple[int, int]  # (poll_id, user_id)
Event = tuple[int, int, int, str, int | None]  # (poll_id, guild_id, user_id, kind, option_idx)


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


class _Common(TypedDict):
    """The fields every result about an open poll carries."""

    closes_at: datetime
    live_counts: bool


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
        # Seconds groups waited for the write transaction (other writers ahead of them): the part of a click's
        # answer time spent queuing, for the soaks and operators.
        self.wait_max = 0.0
        self.wait_total = 0.0

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="vote-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        task, self._task = self._task, None
        if task is not None:
            self._queue.append(_STOP)
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

    def _waited(self, seconds: float) -> None:
        self.wait_max = max(self.wait_max, seconds)
        self.wait_total += seconds

    async def _commit(self, batch: list[VoteRequest]) -> None:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        try:
            if self.db.on_asyncpg:
                async with self.db.write_asyncpg(urgent=True) as driver:  # members wait: ahead of queued jobs
                    self._waited(loop.time() - asked)
                    results = await _PostgresBackend(driver).run(batch, self.clock.now())
            else:
                async with self.db.write(urgent=True) as conn:  # members wait: ahead of queued jobs
                    self._waited(loop.time() - asked)
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

    async def apply(self, upserts: list[Upsert], removals: list[Removal], events: list[Event], now: datetime) -> None:
        await apply_votes(
            self.conn,
            [{"poll_id": p, "user_id": u, "guild_id": g, "option_idx": i} for p, u, g, i in upserts],
            [{"b_poll": p, "b_user": u} for p, u in removals],
            [vote_event(p, g, u, k, i, now) for p, g, u, k, i in events],
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

    def __init__(self, adapter: OneTripConnection) -> None:
        self.adapter = adapter

    async def run(self, batch: Sequence[VoteRequest], now: datetime) -> list[VoteResult]:
        return await self.adapter.call(_sqlite_batch, batch, now)


def _sqlite_batch(db: sqlite3.Connection, batch: Sequence[VoteRequest], now: datetime) -> list[VoteResult]:
    poll_ids = sorted({r.poll_id for r in batch if valid_poll_id(r.poll_id)})
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


# PostgreSQL (asyncpg): the group's reads in one statement and its writes in another, whatever its size.
# Arrays instead of IN lists: one statement text for every group, so asyncpg prepares it once per
# connection (an IN list of each new length would be a new statement to prepare: a round trip more).
_PG_LOAD = """
WITH k AS (SELECT * FROM unnest($2::bigint[], $3::bigint[]) AS k(poll_id, user_id)),
cur AS (
    SELECT v.poll_id, v.user_id, v.option_idx FROM votes v JOIN k ON v.poll_id = k.poll_id AND v.user_id = k.user_id
)
SELECT p.id, p.guild_id, p.message_id, p.status, p.closes_at, p.live_counts, g.vote_role_id, g.vote_min_days,
       ARRAY(SELECT o.idx FROM poll_options o WHERE o.poll_id = p.id ORDER BY o.idx),
       ARRAY(SELECT o.label FROM poll_options o WHERE o.poll_id = p.id ORDER BY o.idx),
       ARRAY(SELECT c.user_id FROM cur c WHERE c.poll_id = p.id ORDER BY c.user_id),
       ARRAY(SELECT c.option_idx FROM cur c WHERE c.poll_id = p.id ORDER BY c.user_id)
FROM polls p JOIN guilds g ON g.id = p.guild_id
WHERE p.id = ANY($1::bigint[])
"""
# Data-modifying CTEs all run, to completion, in the one statement; the upserted and deleted keys are
# disjoint (one final state per key), and the events keep the group's order (ORDER BY the ordinality,
# so their ids follow the order the requests were decided in).
_PG_WRITE = """
WITH up AS (
    INSERT INTO votes (poll_id, user_id, guild_id, option_idx, voted_at)
    SELECT u.poll_id, u.user_id, u.guild_id, u.option_idx, $13
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::smallint[]) AS u(poll_id, user_id, guild_id, option_idx)
    ON CONFLICT (poll_id, user_id) DO UPDATE SET option_idx = excluded.option_idx, voted_at = excluded.voted_at
), gone AS (
    DELETE FROM votes v USING unnest($5::bigint[], $6::bigint[]) AS d(poll_id, user_id)
    WHERE v.poll_id = d.poll_id AND v.user_id = d.user_id
)
INSERT INTO vote_events (poll_id, guild_id, user_id, kind, option_idx, at)
SELECT e.poll_id, e.guild_id, e.user_id, e.kind, e.option_idx, $13
FROM unnest($7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::smallint[], $12::int[])
    AS e(poll_id, guild_id, user_id, kind, option_idx, n)
ORDER BY e.n
"""


class _PostgresBackend:
    """The hot path on PostgreSQL: a group is two statements on the transaction's own asyncpg connection,
    the load (polls, their options and the members' current votes) and the write (upserts, removals and
    events), so with BEGIN and COMMIT a group costs four round trips to the server, not one or two per
    statement and per poll. Same rows and outcomes as :class:`_CoreBackend` (tests/storage/test_polls.py)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def run(self, batch: Sequence[VoteRequest], now: datetime) -> list[VoteResult]:
        poll_ids = sorted({r.poll_id for r in batch if valid_poll_id(r.poll_id)})
        wanted = sorted({(r.poll_id, r.user_id) for r in batch if valid_poll_id(r.poll_id)})
        rows = await self.driver.fetch(_PG_LOAD, poll_ids, [p for p, _ in wanted], [u for _, u in wanted])
        states: dict[int, _PollState] = {}
        current: dict[tuple[int, int], int] = {}
        for pid, gid, mid, status, closes, live, role, days, idxs, labels, users, chosen in rows:
            labels_of = dict(zip(idxs, labels, strict=True))
            states[pid] = _PollState(gid, mid, status, closes.replace(tzinfo=UTC), live, labels_of, role, days)
            for user_id, idx in zip(users, chosen, strict=True):
                current[(pid, user_id)] = idx
        keys = [k for k in wanted if k[0] in states]
        results, upserts, removals, events = _decide(batch, states, current, keys, now)
        if upserts or removals or events:
            await self.driver.execute(
                _PG_WRITE,
                *_columns(upserts, 4),
                *_columns(removals, 2),
                *_columns(events, 5),
                list(range(len(events))),
                now.astimezone(UTC).replace(tzinfo=None),  # UTCDateTime's storage: naive UTC
            )
        return results


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as column lists (the unnest arrays)."""
    return [[row[i] for row in rows] for i in range(width)]


_USERS_CHUNK = 900  # bound parameters per IN (...) list: under SQLite's oldest limit (999)


def _users_by_poll(keys: list[tuple[int, int]]) -> Iterable[tuple[int, list[int]]]:
    by_poll: dict[int, list[int]] = {}
    for p, u in keys:
        by_poll.setdefault(p, []).append(u)
    for p, users in by_poll.items():
        for chunk in _chunks(users, _USERS_CHUNK):
            yield p, list(chunk)


async def _backend(conn: AsyncConnection) -> _CoreBackend | _SqliteBackend | _PostgresBackend:
    if conn.dialect.name == "sqlite":
        one_trip: object = (await conn.get_raw_connection()).dbapi_connection
        if isinstance(one_trip, OneTripConnection):  # aiosqlite (database.py plugs the one-trip adapter in)
            return _SqliteBackend(one_trip)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg" and conn.in_transaction():
        raw = await conn.get_raw_connection()
        adapter: Any = raw.dbapi_connection
        # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it executes itself;
        # statements sent on the driver's connection must not run before it (outside the transaction).
        # There is no public way to ask for it without a statement of our own (a round trip more).
        if getattr(adapter, "_transaction", None) is None and hasattr(adapter, "_start_transaction"):
            await adapter._start_transaction()
        if getattr(adapter, "_transaction", None) is not None:
            return _PostgresBackend(raw.driver_connection)
    return _CoreBackend(conn)


async def process_batch(conn: AsyncConnection, batch: Sequence[VoteRequest], *, now: datetime) -> list[VoteResult]:
    """Validate and store a group of requests, in order, inside the caller's write transaction."""
    backend = await _backend(conn)
    if isinstance(backend, _SqliteBackend | _PostgresBackend):
        return await backend.run(batch, now)
    poll_ids = sorted({r.poll_id for r in batch if valid_poll_id(r.poll_id)})
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
) -> tuple[list[VoteResult], list[Upsert], list[Removal], list[Event]]:
    """Apply the requests in order to ``current``; return the outcomes and the rows to write."""
    before = dict(current)
    results: list[VoteResult] = []
    events: list[Event] = []
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
        common: _Common = {"closes_at": st.closes_at, "live_counts": st.live_counts}
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
    upserts: list[Upsert] = []
    removals: list[Removal] = []
    for key in keys:
        old, new = before.get(key), current.get(key)
        if old == new:
            continue
        if new is None:
            removals.append(key)
        else:
            upserts.append((key[0], key[1], states[key[0]].guild_id, new))
    return results, upserts, removals, events
