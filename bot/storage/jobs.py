"""The durable job queue's SQL: upsert by key, the earliest due time, due jobs, claim, done, retry.

A process runs only the jobs of the servers on its shards (``scope``), and only after claiming the
job with a lease (``lease_owner``, ``lease_until`` in wall-clock UTC): two processes configured with
overlapping shards never run one job at once. On PostgreSQL the claim reads with
``FOR UPDATE SKIP LOCKED``, so claimers never wait on each other's rows; on SQLite the write
transaction (BEGIN IMMEDIATE) already makes read-then-claim atomic.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from bot.domain.shards import ShardScope
from bot.storage.scope import owned
from bot.storage.tables import jobs

# A job that has failed this many times in a row is parked: kept, with its last error, but never claimed
# again until something re-arms it (upsert resets attempts), e.g. `/schedule resume` for the daily post.
PARK_AFTER = 10
_ACTIVE = jobs.c.attempts < PARK_AFTER


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str
    guild_id: int | None
    due_at: datetime
    payload: dict[str, Any]
    attempts: int


def _row_to_job(row: Any) -> Job:
    return Job(row.id, row.kind, row.key, row.guild_id, row.due_at, json.loads(row.payload), row.attempts)


async def upsert(
    conn: AsyncConnection,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    guild_id: int | None = None,
    now: datetime,
) -> None:
    """Create the job ``key`` or move it to ``due_at`` with a new payload (attempts reset)."""
    values = {"kind": kind, "due_at": due_at, "payload": json.dumps(payload or {}), "guild_id": guild_id}
    changed = await conn.execute(update(jobs).where(jobs.c.key == key).values(**values, attempts=0, last_error=None))
    if changed.rowcount == 0:
        await conn.execute(jobs.insert().values(key=key, created_at=now, **values))


async def get(conn: AsyncConnection, key: str) -> Job | None:
    row = (await conn.execute(select(jobs).where(jobs.c.key == key))).first()
    return _row_to_job(row) if row else None


async def get_by_id(conn: AsyncConnection, job_id: int) -> Job | None:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return _row_to_job(row) if row else None


async def cancel(conn: AsyncConnection, key: str) -> bool:
    return (await conn.execute(delete(jobs).where(jobs.c.key == key))).rowcount > 0


async def cancel_keys(conn: AsyncConnection, keys: list[str]) -> int:
    """Delete the jobs with these keys (those that exist); returns how many."""
    if not keys:
        return 0
    return (await conn.execute(delete(jobs).where(jobs.c.key.in_(keys)))).rowcount


async def cancel_for_guild(conn: AsyncConnection, guild_id: int, *, except_kinds: tuple[str, ...] = ()) -> int:
    query = delete(jobs).where(jobs.c.guild_id == guild_id)
    if except_kinds:
        query = query.where(jobs.c.kind.not_in(except_kinds))
    return (await conn.execute(query)).rowcount


def _free(wall_now: datetime | None, *, takeover: tuple[str, ...] = ()) -> ColumnElement[bool]:
    """A job no live process holds: no lease, an expired one, or one of a process known dead."""
    if wall_now is None:
        return jobs.c.id.is_not(None)
    clauses = [jobs.c.lease_until.is_(None), jobs.c.lease_until < wall_now]
    if takeover:
        clauses.append(jobs.c.lease_owner.in_(takeover))
    return or_(*clauses)


async def earliest_due(
    conn: AsyncConnection, scope: ShardScope | None = None, *, wall_now: datetime | None = None
) -> datetime | None:
    """The earliest due time among this process's jobs that no other process holds."""
    query = select(func.min(jobs.c.due_at)).where(
        _ACTIVE, owned(jobs.c.guild_id, scope, nullable=True), _free(wall_now)
    )
    due: datetime | None = (await conn.execute(query)).scalar()
    return due


async def earliest_lease_end(
    conn: AsyncConnection,
    now: datetime,
    scope: ShardScope | None,
    *,
    wall_now: datetime,
    running: Collection[int] = (),
) -> datetime | None:
    """When the first lease another process holds on a due job of ours ends (to look again then).
    ``running``: the jobs the caller is running itself (its own leases, renewed while they run): not
    counted, or every pass of a busy dispatcher would look for dead lease owners."""
    query = select(func.min(jobs.c.lease_until)).where(
        jobs.c.due_at <= now, _ACTIVE, owned(jobs.c.guild_id, scope, nullable=True), jobs.c.lease_until >= wall_now
    )
    if running:
        query = query.where(jobs.c.id.not_in(list(running)))
    ends: datetime | None = (await conn.execute(query)).scalar()
    return ends


async def due(
    conn: AsyncConnection,
    now: datetime,
    limit: int,
    scope: ShardScope | None = None,
    *,
    wall_now: datetime | None = None,
    takeover: tuple[str, ...] = (),
) -> list[Job]:
    """Due jobs of this process's servers that are free to claim (see :func:`claim_due`)."""
    query = (
        select(jobs)
        .where(
            jobs.c.due_at <= now,
            _ACTIVE,
            owned(jobs.c.guild_id, scope, nullable=True),
            _free(wall_now, takeover=takeover),
        )
        .order_by(jobs.c.due_at, jobs.c.id)
        .limit(limit)
    )
    return [_row_to_job(r) for r in await conn.execute(query)]


async def live_lease_owners(conn: AsyncConnection, prefix: str, *, wall_now: datetime) -> set[str]:
    """Owners starting with ``prefix`` (this host) that hold a lease not yet expired."""
    rows = await conn.execute(
        select(jobs.c.lease_owner)
        .where(jobs.c.lease_owner.startswith(prefix, autoescape=True), jobs.c.lease_until >= wall_now)
        .distinct()
    )
    return {r[0] for r in rows}


async def claim_due(
    conn: AsyncConnection,
    now: datetime,
    limit: int,
    scope: ShardScope | None,
    *,
    owner: str,
    wall_now: datetime,
    lease_until: datetime,
    takeover: tuple[str, ...] = (),
) -> list[Job]:
    """Lease up to ``limit`` due, free jobs of ``scope`` to ``owner`` in the caller's write transaction.

    Returns the jobs this call leased; a job another process leased first is simply not among them.
    """
    query = (
        select(jobs.c.id)
        .where(
            jobs.c.due_at <= now,
            _ACTIVE,
            owned(jobs.c.guild_id, scope, nullable=True),
            _free(wall_now, takeover=takeover),
        )
        .order_by(jobs.c.due_at, jobs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL: rows another claimer holds are skipped, not awaited
    )
    ids = [r[0] for r in await conn.execute(query)]
    if not ids:
        return []
    # The WHERE is checked again by the UPDATE itself: whoever commits first wins a contended row.
    await conn.execute(
        update(jobs)
        .where(jobs.c.id.in_(ids), _free(wall_now, takeover=takeover))
        .values(lease_owner=owner, lease_until=lease_until)
    )
    rows = await conn.execute(
        select(jobs).where(jobs.c.id.in_(ids), jobs.c.lease_owner == owner).order_by(jobs.c.due_at, jobs.c.id)
    )
    return [_row_to_job(r) for r in rows]


async def renew(conn: AsyncConnection, ids: set[int], *, owner: str, lease_until: datetime) -> None:
    """Extend the leases ``owner`` holds on jobs still running."""
    if ids:
        await conn.execute(
            update(jobs).where(jobs.c.id.in_(ids), jobs.c.lease_owner == owner).values(lease_until=lease_until)
        )


async def release(conn: AsyncConnection, job_id: int, *, owner: str) -> None:
    """Give a job back without running it (or after it was re-armed while running)."""
    await conn.execute(
        update(jobs).where(jobs.c.id == job_id, jobs.c.lease_owner == owner).values(lease_owner=None, lease_until=None)
    )


async def done(conn: AsyncConnection, job: Job) -> None:
    """Delete a finished job, unless it was re-armed (same key, new due time) while it ran."""
    await conn.execute(delete(jobs).where(jobs.c.id == job.id, jobs.c.due_at == job.due_at))


async def retry(conn: AsyncConnection, job: Job, *, due_at: datetime, error: str, park: bool = True) -> None:
    """Move a failed job to ``due_at``, one more attempt; ``park=False`` (waiting for a server in an
    outage, G4) never counts it up to PARK_AFTER."""
    attempts = (
        jobs.c.attempts + 1
        if park
        else case((jobs.c.attempts + 1 >= PARK_AFTER, PARK_AFTER - 1), else_=jobs.c.attempts + 1)
    )
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.due_at == job.due_at)
        .values(due_at=due_at, attempts=attempts, last_error=error[:500], lease_owner=None, lease_until=None)
    )


async def count_due(conn: AsyncConnection, before: datetime, scope: ShardScope | None = None) -> int:
    """Jobs of ``scope`` due at or before ``before`` (not yet done)."""
    query = (
        select(func.count())
        .select_from(jobs)
        .where(jobs.c.due_at <= before, owned(jobs.c.guild_id, scope, nullable=True))
    )
    return (await conn.execute(query)).scalar_one()


async def park(conn: AsyncConnection, job: Job, *, error: str) -> None:
    """Record the last failed attempt and stop claiming the job (it stays, with its error, for status)."""
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.due_at == job.due_at)
        .values(attempts=max(job.attempts + 1, PARK_AFTER), last_error=error[:500])
    )


async def parked(conn: AsyncConnection, guild_id: int) -> list[tuple[Job, str]]:
    """A server's parked jobs with their last error, oldest due first."""
    rows = await conn.execute(
        select(jobs).where(jobs.c.guild_id == guild_id, ~_ACTIVE).order_by(jobs.c.due_at, jobs.c.id)
    )
    return [(_row_to_job(r), r.last_error or "") for r in rows]


async def count(conn: AsyncConnection, kind: str | None = None) -> int:
    query = select(func.count()).select_from(jobs)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    return (await conn.execute(query)).scalar_one()


async def bring_forward(conn: AsyncConnection, guild_id: int, *, now: datetime) -> int:
    """A guild's jobs that are waiting for a retry (attempts > 0, due later) become due now."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.guild_id == guild_id, jobs.c.attempts > 0, _ACTIVE, jobs.c.due_at > now)
        .values(due_at=now)
    )
    return result.rowcount or 0
