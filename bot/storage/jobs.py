"""The durable job queue's SQL: upsert by key, the earliest due time, due jobs, done, retry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

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


def _row_to_job(row) -> Job:
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


async def cancel_for_guild(conn: AsyncConnection, guild_id: int, *, except_kinds: tuple[str, ...] = ()) -> int:
    query = delete(jobs).where(jobs.c.guild_id == guild_id)
    if except_kinds:
        query = query.where(jobs.c.kind.not_in(except_kinds))
    return (await conn.execute(query)).rowcount


async def earliest_due(conn: AsyncConnection) -> datetime | None:
    return (await conn.execute(select(func.min(jobs.c.due_at)).where(_ACTIVE))).scalar()


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[Job]:
    query = select(jobs).where(jobs.c.due_at <= now, _ACTIVE).order_by(jobs.c.due_at, jobs.c.id).limit(limit)
    rows = await conn.execute(query)
    return [_row_to_job(r) for r in rows]


async def done(conn: AsyncConnection, job: Job) -> None:
    """Delete a finished job, unless it was re-armed (same key, new due time) while it ran."""
    await conn.execute(delete(jobs).where(jobs.c.id == job.id, jobs.c.due_at == job.due_at))


async def retry(conn: AsyncConnection, job: Job, *, due_at: datetime, error: str) -> None:
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.due_at == job.due_at)
        .values(due_at=due_at, attempts=jobs.c.attempts + 1, last_error=error[:500])
    )


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
