"""Reconciliation queries: jobs that should exist and do not (a server re-invited, a restart).

The job keys are the services' (``poll-close:<poll id>``, ``plan:<debate id>``); each query looks its
job up through the unique index on ``jobs.key`` and skips servers the bot has left.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import String, cast, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.shards import ShardScope
from bot.storage.scope import owned
from bot.storage.tables import debates, guilds, jobs, polls


class Unarmed(NamedTuple):
    id: int
    guild_id: int
    due_at: datetime


async def open_polls_without_close_job(
    conn: AsyncConnection, guild_id: int | None = None, *, scope: ShardScope | None = None
) -> list[Unarmed]:
    """Open polls (with their closing time) of present servers whose close job is missing."""
    key = literal("poll-close:") + cast(polls.c.id, String)
    query = (
        select(polls.c.id, polls.c.guild_id, polls.c.closes_at)
        .join(guilds, guilds.c.id == polls.c.guild_id)
        .outerjoin(jobs, jobs.c.key == key)
        .where(
            jobs.c.id.is_(None),
            guilds.c.removed_at.is_(None),
            polls.c.status == "open",
            owned(polls.c.guild_id, scope),
        )
        .order_by(polls.c.id)
    )
    if guild_id is not None:
        query = query.where(polls.c.guild_id == guild_id)
    return [Unarmed(*r) for r in await conn.execute(query)]


async def planned_without_job(
    conn: AsyncConnection, guild_id: int | None = None, *, scope: ShardScope | None = None
) -> list[Unarmed]:
    """Planned debates still pending, of present servers, whose job is missing."""
    key = literal("plan:") + cast(debates.c.id, String)
    query = (
        select(debates.c.id, debates.c.guild_id, debates.c.due_at)
        .join(guilds, guilds.c.id == debates.c.guild_id)
        .outerjoin(jobs, jobs.c.key == key)
        .where(
            jobs.c.id.is_(None),
            guilds.c.removed_at.is_(None),
            debates.c.kind == "planned",
            debates.c.status == "pending",
            owned(debates.c.guild_id, scope),
        )
        .order_by(debates.c.id)
    )
    if guild_id is not None:
        query = query.where(debates.c.guild_id == guild_id)
    return [Unarmed(*r) for r in await conn.execute(query)]
