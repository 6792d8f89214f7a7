"""Per-server schedules: the row, its state changes, and the bulk queries reconciliation needs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, NamedTuple

from sqlalchemy import String, cast, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.shards import ShardScope
from bot.storage.dialect import insert as insert_for
from bot.storage.scope import owned
from bot.storage.tables import guilds, jobs, schedules

POST_KIND = "debate-post"


def post_key(guild_id: int) -> str:
    """The job key of a server's next scheduled post."""
    return f"post:{guild_id}"


def days_to_mask(days: frozenset[int]) -> int:
    return sum(1 << d for d in days)


def mask_to_days(mask: int) -> frozenset[int]:
    return frozenset(d for d in range(7) if mask & (1 << d))


@dataclass(frozen=True)
class Schedule:
    guild_id: int
    channel_id: int
    post_time: str
    timezone: str
    weekdays: int
    ping_role_id: int | None
    thread: bool
    pin: bool
    poll_hours: int
    poll_style: str
    review_channel_id: int | None
    catch_up_minutes: int
    paused: bool
    blocked_reason: str | None
    last_post_at: datetime | None
    last_skip_note: str | None
    updated_at: datetime

    @property
    def days(self) -> frozenset[int]:
        return mask_to_days(self.weekdays)

    @property
    def at(self) -> time:
        hour, minute = self.post_time.split(":")
        return time(int(hour), int(minute))

    @property
    def active(self) -> bool:
        return not self.paused and self.blocked_reason is None


_FIELDS = tuple(Schedule.__dataclass_fields__)


def _row(row: Any) -> Schedule:
    return Schedule(*(getattr(row, f) for f in _FIELDS))


async def get(conn: AsyncConnection, guild_id: int) -> Schedule | None:
    row = (await conn.execute(select(schedules).where(schedules.c.guild_id == guild_id))).first()
    return _row(row) if row else None


async def upsert(
    conn: AsyncConnection,
    guild_id: int,
    *,
    now: datetime,
    channel_id: int,
    post_time: str,
    timezone: str,
    weekdays: int,
    ping_role_id: int | None = None,
    thread: bool = True,
    pin: bool = False,
    poll_hours: int = 24,
    poll_style: str = "buttons",
    review_channel_id: int | None = None,
    catch_up_minutes: int | None = None,
) -> Schedule:
    """Create or replace a server's schedule. A new setup un-pauses and clears a blocked reason."""
    values: dict[str, Any] = {
        "channel_id": channel_id,
        "post_time": post_time,
        "timezone": timezone,
        "weekdays": weekdays,
        "ping_role_id": ping_role_id,
        "thread": thread,
        "pin": pin,
        "poll_hours": poll_hours,
        "poll_style": poll_style,
        "review_channel_id": review_channel_id,
        "paused": False,
        "blocked_reason": None,
        "updated_at": now,
    }
    if catch_up_minutes is not None:
        values["catch_up_minutes"] = catch_up_minutes
    stmt = insert_for(conn)(schedules).values(guild_id=guild_id, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[schedules.c.guild_id], set_=values))
    found = await get(conn, guild_id)
    assert found is not None
    return found


async def _set(conn: AsyncConnection, guild_id: int, now: datetime, **values: Any) -> bool:
    result = await conn.execute(
        update(schedules).where(schedules.c.guild_id == guild_id).values(**values, updated_at=now)
    )
    return result.rowcount > 0


async def set_paused(conn: AsyncConnection, guild_id: int, paused: bool, *, now: datetime) -> bool:
    return await _set(conn, guild_id, now, paused=paused)


async def resume(conn: AsyncConnection, guild_id: int, *, now: datetime) -> bool:
    """Un-pause and clear a blocked reason (a moderator says the problem is fixed)."""
    return await _set(conn, guild_id, now, paused=False, blocked_reason=None)


async def block(conn: AsyncConnection, guild_id: int, reason: str, *, now: datetime) -> bool:
    return await _set(conn, guild_id, now, blocked_reason=reason[:500])


async def note_skip(conn: AsyncConnection, guild_id: int, note: str, *, now: datetime) -> bool:
    return await _set(conn, guild_id, now, last_skip_note=note[:300])


async def mark_posted(conn: AsyncConnection, guild_id: int, *, at: datetime) -> bool:
    return await _set(conn, guild_id, at, last_post_at=at)


async def remove(conn: AsyncConnection, guild_id: int) -> bool:
    return (await conn.execute(delete(schedules).where(schedules.c.guild_id == guild_id))).rowcount > 0


# -- reconciliation: bulk ------------------------------------------------------------------------


class Unarmed(NamedTuple):
    guild_id: int
    post_time: str
    timezone: str
    weekdays: int


async def active_without_job(
    conn: AsyncConnection, guild_id: int | None = None, *, scope: ShardScope | None = None
) -> list[Unarmed]:
    """Active schedules (not paused, not blocked, server not removed) whose post job is missing.

    One query: each schedule looks its job up through the unique index on ``jobs.key``; only the
    columns the next-slot maths needs are read (this runs on every on_ready, for every server).
    """
    key = literal("post:") + cast(schedules.c.guild_id, String)
    query = (
        select(schedules.c.guild_id, schedules.c.post_time, schedules.c.timezone, schedules.c.weekdays)
        .join(guilds, guilds.c.id == schedules.c.guild_id)
        .outerjoin(jobs, jobs.c.key == key)
        .where(
            jobs.c.id.is_(None),
            guilds.c.removed_at.is_(None),
            schedules.c.paused.is_(False),
            schedules.c.blocked_reason.is_(None),
            owned(schedules.c.guild_id, scope),
        )
    )
    if guild_id is not None:
        query = query.where(schedules.c.guild_id == guild_id)
    return [Unarmed(*r) for r in await conn.execute(query)]


async def insert_post_jobs(conn: AsyncConnection, armed: list[tuple[int, datetime, str]], *, now: datetime) -> int:
    """Insert post jobs in bulk: ``(guild_id, due_at, slot_date)`` each; keys that exist are left alone.

    Lives here rather than in ``storage/jobs.py`` because only reconciliation needs an executemany;
    it writes the same rows `jobs.upsert` would.
    """
    if not armed:
        return 0
    rows = [
        {
            "kind": POST_KIND,
            "key": post_key(gid),
            "guild_id": gid,
            "due_at": due,
            "payload": json.dumps({"slot_date": slot_date}),
            "attempts": 0,
            "created_at": now,
        }
        for gid, due, slot_date in armed
    ]
    stmt = insert_for(conn)(jobs).on_conflict_do_nothing(index_elements=[jobs.c.key]).returning(jobs.c.id)
    # RETURNING counts what was inserted on both backends (executemany's rowcount is -1 on asyncpg).
    return len((await conn.execute(stmt, rows)).all())
