"""Wiring for the long-running process: build the bot from settings and a database, run it, stop it."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence

from bot.app import DEFAULT_GUILD_READY_TIMEOUT, EXTENSIONS, CommonGround, apply_endpoints
from bot.config import Settings
from bot.domain.clock import Clock
from bot.storage.database import Database

log = logging.getLogger(__name__)

# Python's default (700, 10, 10) runs a collection every 700 net container allocations. A click
# allocates hundreds (the parsed message, its embed and components, the view, the HTTP request), so
# at hundreds of clicks per second the young generations are scanned constantly, objects of clicks
# still in flight are promoted, and full collections over the whole heap follow every second or so,
# each pausing the event loop for tens to hundreds of milliseconds (measured: 17 full collections,
# 2.2 s of pauses, in 11 s at 1,000 clicks/s). Larger thresholds let in-flight objects die young.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> int:
    """Freeze what start-up built (modules, cogs, the command tree: never garbage) out of the
    collector's reach, and raise its thresholds. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    frozen = gc.get_freeze_count()
    log.info("garbage collector tuned: %d start-up objects frozen, thresholds %s", frozen, GC_THRESHOLDS)
    return frozen


async def serve(bot: CommonGround, token: str) -> None:
    """What ``bot.start(token)`` does (log in and run ``setup_hook``, then connect), with the garbage
    collector tuned in between, once start-up has built everything that lives as long as the process."""
    await bot.login(token)
    tune_gc()
    await bot.connect()


def build_bot(
    settings: Settings,
    db: Database,
    *,
    clock: Clock | None = None,
    extensions: Sequence[str] = EXTENSIONS,
    guild_ready_timeout: float = DEFAULT_GUILD_READY_TIMEOUT,
) -> CommonGround:
    apply_endpoints(settings)
    return CommonGround(
        settings=settings, db=db, clock=clock, extensions=extensions, guild_ready_timeout=guild_ready_timeout
    )


async def run_bot(
    settings: Settings,
    db: Database,
    *,
    stop: asyncio.Event,
    clock: Clock | None = None,
    guild_ready_timeout: float = DEFAULT_GUILD_READY_TIMEOUT,
) -> None:
    """Serve until ``stop`` is set (SIGTERM) or the connection ends for good; always close cleanly."""
    bot = build_bot(settings, db, clock=clock, guild_ready_timeout=guild_ready_timeout)
    assert settings.token is not None
    async with bot:
        runner = asyncio.create_task(serve(bot, settings.token), name="discord")
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("stopping: closing the gateway and the database")
        await bot.close()
        stopper.cancel()
        if runner.done() and not runner.cancelled() and runner.exception():
            raise runner.exception()  # type: ignore[misc]


async def sync_commands(settings: Settings, db: Database, *, guild_id: int | None, clear: bool = False) -> list[str]:
    """Register the command tree with Discord (globally, or copied to one server); with ``clear``, remove
    that server's copy instead (a guild copy beside the global commands shows every command twice)."""
    import discord

    bot = build_bot(settings, db)
    assert settings.token is not None
    async with bot:
        await bot.login(settings.token)
        if clear:
            assert guild_id is not None
            guild = discord.Object(id=guild_id)
            bot.tree.clear_commands(guild=guild)
            synced = await bot.tree.sync(guild=guild)  # an empty list replaces the server's commands
        elif guild_id is None:
            synced = await bot.tree.sync()
        else:
            guild = discord.Object(id=guild_id)
            bot.tree.copy_global_to(guild=guild)
            synced = await bot.tree.sync(guild=guild)
    return [c.name for c in synced]
