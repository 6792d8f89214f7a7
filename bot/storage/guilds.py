"""Servers the bot is in: a row per server, created on first contact, marked when the bot leaves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.shards import ShardScope
from bot.storage.dialect import insert as insert_for
from bot.storage.scope import owned
from bot.storage.tables import guilds


@dataclass(frozen=True)
class GuildSettings:
    id: int
    builtin_pack_enabled: bool
    show_live_counts: bool
    vote_role_id: int | None
    vote_min_days: int
    removed_at: datetime | None
    sensitive_prompts: bool = False  # prompts marked sensitive join the rotation


async def ensure(conn: AsyncConnection, guild_id: int, *, now: datetime, name: str | None = None) -> None:
    """Create the server's row if missing; a server seen again is no longer marked removed.

    Only a real name overwrites the stored one: a server in an outage arrives nameless (G4)."""
    await ensure_many(conn, [(guild_id, name)], now=now)


async def ensure_many(conn: AsyncConnection, servers: Sequence[tuple[int, str | None]], *, now: datetime) -> None:
    """:func:`ensure` for many servers ``(id, name)`` in one statement (reconciliation records thousands)."""
    if not servers:
        return
    rows = [{"id": gid, "name": (name or "")[:100], "joined_at": now} for gid, name in servers]
    await conn.execute(_ensure_statement(conn), rows)


_ENSURE: dict[str, Any] = {}  # by backend: building the statement cost more than running it (every join)


def _ensure_statement(conn: AsyncConnection) -> Any:
    stmt = _ENSURE.get(conn.dialect.name)
    if stmt is None:
        insert = insert_for(conn)(guilds)
        named = case((insert.excluded.name != "", insert.excluded.name), else_=guilds.c.name)
        set_ = {"removed_at": None, "name": named}
        stmt = _ENSURE[conn.dialect.name] = insert.on_conflict_do_update(index_elements=[guilds.c.id], set_=set_)
    return stmt


async def get(conn: AsyncConnection, guild_id: int) -> GuildSettings | None:
    row = (await conn.execute(select(guilds).where(guilds.c.id == guild_id))).first()
    if row is None:
        return None
    return GuildSettings(
        row.id,
        row.builtin_pack_enabled,
        row.show_live_counts,
        row.vote_role_id,
        row.vote_min_days,
        row.removed_at,
        bool(row.sensitive_prompts),
    )


async def update_settings(conn: AsyncConnection, guild_id: int, **values: Any) -> None:
    allowed = {"builtin_pack_enabled", "show_live_counts", "vote_role_id", "vote_min_days", "sensitive_prompts"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown guild settings: {sorted(unknown)}")
    await conn.execute(update(guilds).where(guilds.c.id == guild_id).values(**values))


async def mark_removed(conn: AsyncConnection, guild_id: int, *, now: datetime) -> None:
    await conn.execute(
        update(guilds).where(guilds.c.id == guild_id, guilds.c.removed_at.is_(None)).values(removed_at=now)
    )


async def active_ids(conn: AsyncConnection, scope: ShardScope | None = None) -> set[int]:
    """Servers the bot is in, among those of ``scope`` (default: every server)."""
    rows = await conn.execute(select(guilds.c.id).where(guilds.c.removed_at.is_(None), owned(guilds.c.id, scope)))
    return {r.id for r in rows}
