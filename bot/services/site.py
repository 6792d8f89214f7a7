"""The website's own use cases, shared by the site and the `/web` slash command: public pages and the
moderators' audit log."""

from __future__ import annotations

from typing import Any

from bot.storage import guilds as guild_store
from bot.storage import web as web_store


class SiteService:
    def __init__(self, db: Any, clock: Any) -> None:
        self.db = db
        self.clock = clock

    async def publish(self, guild_id: int, published: bool, *, user_id: int, user_name: str, via: str) -> None:
        """Turn the server's public page on or off, and record who did it (kept 90 days)."""
        now = self.clock.now()
        async with self.db.write() as conn:
            await guild_store.ensure(conn, guild_id, now=now)
            await web_store.set_published(conn, guild_id, published, now=now)
            await web_store.audit(
                conn,
                guild_id,
                user_id=user_id,
                user_name=user_name,
                action="public page",
                detail=f"{'published' if published else 'unpublished'} ({via})",
                now=now,
            )

    async def is_published(self, guild_id: int) -> bool:
        async with self.db.read() as conn:
            return await web_store.is_published(conn, guild_id)

    async def record(self, guild_id: int, *, user_id: int, user_name: str, action: str, detail: str) -> None:
        now = self.clock.now()
        async with self.db.write() as conn:
            await guild_store.ensure(conn, guild_id, now=now)
            await web_store.audit(
                conn, guild_id, user_id=user_id, user_name=user_name, action=action, detail=detail[:2000], now=now
            )

    async def audit_log(self, guild_id: int) -> list[web_store.AuditEntry]:
        async with self.db.write() as conn:
            await web_store.purge_audit(conn, now=self.clock.now())
            return await web_store.audit_log(conn, guild_id)
