"""IDENTIFY pacing shared by every process of the bot, through the database.

Discord allows one IDENTIFY per 5 s in each bucket ``shard_id % max_concurrency``, counted for the bot,
not for a process: two clusters starting at once must take turns, or the later one's IDENTIFY is
answered with Invalid Session and retried after discord.py's own 5 s wait (discord-api-docs, Gateway,
"Max Concurrency" and "Identifying").

On PostgreSQL, the database every cluster shares, a bucket is a session-level advisory lock: a process
takes it before its IDENTIFY and gives it back ``hold`` seconds later, so the next process's IDENTIFY in
that bucket comes at least ``hold`` after this one. The lock lives on a connection of its own; a process
that dies releases it with its connection. SQLite serves one process (a second is refused at start), so
the in-process pacing (``bot.app.IdentifyPacer``) is all it needs.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.database import Database

log = logging.getLogger(__name__)

# The first key of pg_advisory_lock(key, bucket): this module's share of the database's lock space.
IDENTIFY_LOCK_KEY = 0x43474944  # "CGID"
LOCK = text("SELECT pg_advisory_lock(:key, :bucket)")
UNLOCK = text("SELECT pg_advisory_unlock(:key, :bucket)")


class IdentifyGate:
    """One turn per bucket across processes; a no-op on SQLite."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._releases: set[asyncio.Task[None]] = set()

    @property
    def shared(self) -> bool:
        return not self.db.is_sqlite

    async def take_turn(self, bucket: int, hold: float) -> None:
        """Wait until no other process has identified in ``bucket`` for ``hold`` seconds, then keep
        others out for the next ``hold`` seconds (from now, while this process identifies)."""
        if not self.shared:
            return
        conn = await self.db.writer.connect()
        try:
            await conn.execute(LOCK, {"key": IDENTIFY_LOCK_KEY, "bucket": bucket})
            await conn.commit()  # the lock is the session's, not the transaction's: nothing stays open
        except BaseException:
            await conn.invalidate()
            await conn.close()
            raise
        task = asyncio.create_task(self._release(conn, bucket, hold), name=f"identify-turn:{bucket}")
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, conn: AsyncConnection, bucket: int, hold: float) -> None:
        released = False
        try:
            await asyncio.sleep(hold)
            await conn.execute(UNLOCK, {"key": IDENTIFY_LOCK_KEY, "bucket": bucket})
            await conn.commit()
            released = True
        except Exception:
            log.warning("could not give back the IDENTIFY turn of bucket %d; closing its connection", bucket)
        finally:
            if not released:
                # Stopped (or failed) while holding the lock: dropping the connection ends the session and
                # with it the lock; a pooled connection would keep it.
                await conn.invalidate()
            await conn.close()

    async def close(self) -> None:
        """Give back every turn still held (the process is stopping)."""
        for task in list(self._releases):
            task.cancel()
        await asyncio.gather(*self._releases, return_exceptions=True)
