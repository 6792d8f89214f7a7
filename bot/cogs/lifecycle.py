"""Servers joining and leaving: rows created, the 30-day purge armed and cancelled, and the
idempotent reconciliation that runs on every READY (servers left or joined while offline)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import reconcile
from bot.domain.shards import ShardScope
from bot.storage import guilds as guild_store
from bot.storage import jobs as job_store
from bot.storage import privacy as privacy_store
from bot.storage.jobs import Job

if TYPE_CHECKING:
    from bot.app import CommonGround

log = logging.getLogger(__name__)

PURGE = "guild-purge"
RECONCILE_CHUNK = 500  # servers recorded per write transaction while reconciling


def purge_key(guild_id: int) -> str:
    return f"purge:{guild_id}"


class Lifecycle(commands.Cog):
    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot
        bot.scheduler.register(PURGE, self.purge)
        bot.reconciler.add_step("servers", self.reconcile_servers, order=reconcile.SERVERS)

    async def joined(self, guild: discord.Guild) -> None:
        async with self.bot.db.write() as conn:
            # An unavailable guild (an outage, G4) has no name yet: keep the stored one.
            name = None if guild.unavailable else guild.name
            await guild_store.ensure(conn, guild.id, now=self.bot.clock.now(), name=name)
            await job_store.cancel(conn, purge_key(guild.id))

    async def left(self, guild_id: int) -> None:
        now = self.bot.clock.now()
        due = now + timedelta(days=self.bot.settings.retention_days)
        async with self.bot.db.write() as conn:
            await guild_store.mark_removed(conn, guild_id, now=now)
            # Nothing more is sent to a server the bot has left; the purge job stays.
            await job_store.cancel_for_guild(conn, guild_id, except_kinds=(PURGE,))
            if await job_store.get(conn, purge_key(guild_id)) is None:
                await self.bot.scheduler.schedule(PURGE, purge_key(guild_id), due, guild_id=guild_id, conn=conn)
        log.info("removed from guild %s; its data will be purged after %s", guild_id, due.date())

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        # A new server, or one the bot had left coming back (a re-invite): no READY follows (G5), so its
        # schedule and the close jobs of its open polls, cancelled when it left, are re-armed now.
        await self.came_back(guild)

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        # discord.py reports a GUILD_CREATE that carries `unavailable: false` as "available", also for a
        # server the bot had left and was invited back to; both paths do the same idempotent work.
        await self.came_back(guild)

    async def came_back(self, guild: discord.Guild) -> None:
        await self.joined(guild)
        await self.bot.reconciler.run_for_guild(guild.id)
        # Back from an outage (G4): what waited for it runs now, not at the end of its backoff. (Before
        # READY every server becomes available once as the start-up GUILD_CREATEs arrive: nothing waits.)
        if self.bot.is_ready():
            moved = await self.bot.scheduler.bring_forward(guild.id)
            if moved:
                log.info("guild %s is available again; %d waiting jobs brought forward", guild.id, moved)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.left(guild.id)

    async def reconcile_servers(self, guild_id: int | None) -> None:
        """Reconciliation step: servers joined or left while the bot was offline (idempotent)."""
        if guild_id is not None:
            return  # a one-server run follows on_guild_join, which has just recorded the server
        # Only this process's shards: another cluster's servers are not ours to mark as left.
        scope: ShardScope = self.bot.scope
        present = {g.id: g for g in self.bot.guilds if scope.owns(g.id)}
        async with self.bot.db.read() as conn:
            known = await guild_store.active_ids(conn, scope)
        # Many servers per transaction and per statement (not one each): a cluster holds thousands, and at
        # 20,000 servers one transaction per server made reconciliation take minutes (benchmarks/cluster.py).
        now = self.bot.clock.now()
        guilds = list(present.values())
        for start in range(0, len(guilds), RECONCILE_CHUNK):
            chunk = guilds[start : start + RECONCILE_CHUNK]
            async with self.bot.db.write() as conn:
                await guild_store.ensure_many(conn, [(g.id, g.name) for g in chunk], now=now)
                await job_store.cancel_keys(conn, [purge_key(g.id) for g in chunk])
        gone = known - set(present)
        for guild_id in gone:
            await self.left(guild_id)
        log.info(
            "servers reconciled on %s: %d present (%d new), %d left while offline",
            scope.describe(),
            len(present),
            len(set(present) - known),
            len(gone),
        )

    async def purge(self, job: Job) -> None:
        guild_id = job.guild_id
        assert guild_id is not None
        async with self.bot.db.write() as conn:
            row = await guild_store.get(conn, guild_id)
            if row is None or row.removed_at is None:
                return  # invited back (or already gone): nothing to purge
            await privacy_store.purge_guild(conn, guild_id)
        log.info("purged the data of guild %s", guild_id)


async def setup(bot: CommonGround) -> None:
    await bot.add_cog(Lifecycle(bot))
