"""Reconciliation queries: jobs that should exist and do not (a server re-invited, a restart).

The job keys are the services' (``poll-close:<poll id>``, ``plan:<debate id>``); each query looks its
job up through the unique index on ``jobs.key`` and skips servers the bot has left.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, String, Table, cast, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.shards import ShardScope
from bot.storage.scope import owned
from bot.storage.tables import debates, guilds, jobs, polls


class Unarmed(NamedTuple):
    id: int
    guild_id: int
    due_at: datetime


async def _without_job(
    conn: AsyncConnection,
    table: Table,
    due: ColumnElement[datetime],
    prefix: str,
    *conditions: ColumnElement[bool],
    guild_id: int | None,
    scope: ShardScope | None,
) -> list[Unarmed]:
    """Rows of ``table`` meeting ``conditions``, of present servers, with no job keyed ``<prefix><id>``."""
    key = literal(prefix) + cast(table.c.id, String)
    query = (
        select(table.c.id, table.c.guild_id, due)
        .join(guilds, guilds.c.id == table.c.guild_id)
        .outerjoin(jobs, jobs.c.key == key)
        .where(jobs.c.id.is_(None), guilds.c.removed_at.is_(None), *conditions, owned(table.c.guild_id, scope))
        .order_by(table.c.id)
    )
    if guild_id is not None:
        query = query.where(table.c.guild_id == guild_id)
    return [Unarmed(*r) for r in await conn.execute(query)]


async def open_polls_without_close_job(
    conn: AsyncConnection, guild_id: int | None = None, *, scope: ShardScope | None = None
) -> list[Unarmed]:
    """Open polls (with their closing time) of present servers whose close job is missing."""
    return await _without_job(
        conn, polls, polls.c.closes_at, "poll-close:", polls.c.status == "open", guild_id=guild_id, scope=scope
    )


async def planned_without_job(
    conn: AsyncConnection, guild_id: int | None = None, *, scope: ShardScope | None = None
) -> list[Unarmed]:
    """Planned debates still pending, of present servers, whose job is missing."""
    return await _without_job(
        conn,
        debates,
        debates.c.due_at,
        "plan:",
        debates.c.kind == "planned",
        debates.c.status == "pending",
        guild_id=guild_id,
        scope=scope,
    )
