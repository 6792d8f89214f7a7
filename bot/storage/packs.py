"""A server's own prompt packs (validated YAML kept verbatim) and the suggestions that feed one of them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.dialect import insert as insert_for
from bot.storage.tables import packs, prompt_skips, suggestions

SUGGESTIONS_SLUG = "server-suggestions"


@dataclass(frozen=True)
class PackRow:
    id: int
    guild_id: int
    slug: str
    name: str
    source: str
    enabled: bool
    prompt_count: int
    created_at: datetime


def _pack(row: Any) -> PackRow:
    return PackRow(row.id, row.guild_id, row.slug, row.name, row.source, row.enabled, row.prompt_count, row.created_at)


async def list_for(conn: AsyncConnection, guild_id: int, *, enabled_only: bool = False) -> list[PackRow]:
    query = select(packs).where(packs.c.guild_id == guild_id)
    if enabled_only:
        query = query.where(packs.c.enabled.is_(True))
    return [_pack(r) for r in await conn.execute(query.order_by(packs.c.slug))]


async def get(conn: AsyncConnection, guild_id: int, slug: str) -> PackRow | None:
    row = (await conn.execute(select(packs).where(packs.c.guild_id == guild_id, packs.c.slug == slug))).first()
    return _pack(row) if row else None


async def save(
    conn: AsyncConnection, guild_id: int, *, slug: str, name: str, source: str, prompt_count: int, now: datetime
) -> bool:
    """Store a validated pack; a pack with the same slug is replaced (keeping its enabled flag).

    Returns True when the pack is new.
    """
    values = {"name": name[:100], "source": source, "prompt_count": prompt_count}
    stmt = insert_for(conn)(packs).values(guild_id=guild_id, slug=slug, created_at=now, **values)
    existed = await get(conn, guild_id, slug) is not None
    await conn.execute(stmt.on_conflict_do_update(index_elements=[packs.c.guild_id, packs.c.slug], set_=values))
    return not existed


async def set_enabled(conn: AsyncConnection, guild_id: int, slug: str, enabled: bool) -> bool:
    result = await conn.execute(
        update(packs).where(packs.c.guild_id == guild_id, packs.c.slug == slug).values(enabled=enabled)
    )
    return result.rowcount > 0


async def remove(conn: AsyncConnection, guild_id: int, slug: str) -> bool:
    result = await conn.execute(delete(packs).where(packs.c.guild_id == guild_id, packs.c.slug == slug))
    return result.rowcount > 0


async def count(conn: AsyncConnection, guild_id: int) -> int:
    return (
        await conn.execute(select(func.count()).select_from(packs).where(packs.c.guild_id == guild_id))
    ).scalar_one()


# -- prompts a server skips ---------------------------------------------------------------------------


async def skip_prompt(conn: AsyncConnection, guild_id: int, prompt_key: str, *, now: datetime) -> bool:
    """Take a prompt out of the server's rotation; False if it was skipped already."""
    stmt = (
        insert_for(conn)(prompt_skips)
        .values(guild_id=guild_id, prompt_key=prompt_key, skipped_at=now)
        .on_conflict_do_nothing(index_elements=[prompt_skips.c.guild_id, prompt_skips.c.prompt_key])
    )
    return (await conn.execute(stmt)).rowcount > 0


async def unskip_prompt(conn: AsyncConnection, guild_id: int, prompt_key: str) -> bool:
    """Put a skipped prompt back; False if it was not skipped."""
    result = await conn.execute(
        delete(prompt_skips).where(prompt_skips.c.guild_id == guild_id, prompt_skips.c.prompt_key == prompt_key)
    )
    return result.rowcount > 0


async def skipped_prompts(conn: AsyncConnection, guild_id: int) -> set[str]:
    rows = await conn.execute(select(prompt_skips.c.prompt_key).where(prompt_skips.c.guild_id == guild_id))
    return {r.prompt_key for r in rows}


# -- suggestions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    id: int
    guild_id: int
    user_id: int | None
    body: dict[str, Any]
    status: str
    review_channel_id: int | None
    review_message_id: int | None
    created_at: datetime
    decided_at: datetime | None


def _suggestion(row: Any) -> Suggestion:
    return Suggestion(
        row.id,
        row.guild_id,
        row.user_id,
        json.loads(row.body),
        row.status,
        row.review_channel_id,
        row.review_message_id,
        row.created_at,
        row.decided_at,
    )


async def add_suggestion(
    conn: AsyncConnection,
    guild_id: int,
    *,
    user_id: int,
    body: dict[str, Any],
    review_channel_id: int | None,
    now: datetime,
) -> int:
    result = await conn.execute(
        suggestions.insert()
        .values(
            guild_id=guild_id,
            user_id=user_id,
            body=json.dumps(body),
            status="pending",
            review_channel_id=review_channel_id,
            created_at=now,
        )
        .returning(suggestions.c.id)
    )
    suggestion_id: int = result.scalar_one()
    return suggestion_id


async def get_suggestion(conn: AsyncConnection, suggestion_id: int, guild_id: int) -> Suggestion | None:
    """A suggestion of *this* server: a custom_id naming another server's suggestion finds nothing."""
    row = (
        await conn.execute(
            select(suggestions).where(suggestions.c.id == suggestion_id, suggestions.c.guild_id == guild_id)
        )
    ).first()
    return _suggestion(row) if row else None


async def set_review_message(conn: AsyncConnection, suggestion_id: int, message_id: int) -> None:
    await conn.execute(
        update(suggestions).where(suggestions.c.id == suggestion_id).values(review_message_id=message_id)
    )


async def decide(conn: AsyncConnection, suggestion_id: int, status: str, *, now: datetime) -> bool:
    """Move a pending suggestion to approved/rejected; False if it was decided already (a race).

    The suggesting member's id is dropped in the same statement: it is kept only while a moderator may
    still need to know who asked (the review message names them), not once the prompt is decided."""
    result = await conn.execute(
        update(suggestions)
        .where(suggestions.c.id == suggestion_id, suggestions.c.status == "pending")
        .values(status=status, decided_at=now, user_id=None)
    )
    return result.rowcount > 0


async def pending_suggestions(conn: AsyncConnection, guild_id: int, *, limit: int = 100) -> list[Suggestion]:
    """The server's review queue, oldest first."""
    rows = await conn.execute(
        select(suggestions)
        .where(suggestions.c.guild_id == guild_id, suggestions.c.status == "pending")
        .order_by(suggestions.c.id)
        .limit(limit)
    )
    return [_suggestion(r) for r in rows]
