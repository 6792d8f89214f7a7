"""Facts about the deployment (the ``bot_state`` table): the Discord application the data belongs to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.dialect import insert as insert_for
from bot.storage.tables import bot_state

APPLICATION_ID = "application_id"


async def get(conn: AsyncConnection, key: str) -> str | None:
    return (await conn.execute(select(bot_state.c.value).where(bot_state.c.key == key))).scalar()


async def claim_application(conn: AsyncConnection, application_id: int, *, now: datetime) -> int:
    """Store ``application_id`` if none is stored yet; return the stored one (which may differ)."""
    stmt = insert_for(conn)(bot_state).values(key=APPLICATION_ID, value=str(application_id), updated_at=now)
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=[bot_state.c.key]))
    return int(await get(conn, APPLICATION_ID) or application_id)
