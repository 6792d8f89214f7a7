"""Wiring for the long-running process: build the bot from settings and a database, run it, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import discord

from bot.app import DEFAULT_GUILD_READY_TIMEOUT, EXTENSIONS, CommonGround, ShardingError, apply_endpoints
from bot.config import Settings
from bot.domain.clock import Clock
from bot.storage.database import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

# Python's default (700, 10, 10) runs a collection every 700 net container allocations. A click
# allocates hundreds (the parsed message, its embed and components, the view, the HTTP request), so
# at hundreds of clicks per second the young generations are scanned constantly, objects of clicks
# still in flight are promoted, and full collections over the whole heap follow every second or so,
# each pausing the event loop for tens to hundreds of milliseconds (measured: 17 full collections,
# 2.2 s of pauses, in 11 s at 1,000 clicks/s). Larger thresholds let in-flight objects die young.
GC_THRESHOLDS = (20_000, 50, 100)


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop where it is installed (Linux and macOS): the event loop discord.py bots
    run on in production. Measured with ``benchmarks/e2e_votes.py``: 5-8 % less bot CPU per click."""
    try:
        import uvloop
    except ImportError:  # Windows: the standard loop
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


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


def explain_gateway_close(exc: BaseException, settings: Settings) -> str | None:
    """A one-line reason and fix for a gateway close code that ends the process, or None."""
    if not isinstance(exc, discord.ConnectionClosed):
        return None
    shard = f"shard {exc.shard_id}" if exc.shard_id is not None else "the connection"
    if exc.code == 4011:
        how = (
            f"raise COMMONGROUND_SHARD_COUNT (now {settings.shard_count}; every cluster must use the same count) "
            "or unset it (and --shard-count) to use the count Discord recommends"
            if settings.shard_count is not None
            else "restart: the count Discord recommends (GET /gateway/bot) changed while connecting"
        )
        return (
            f"Discord closed {shard} with 4011 (sharding required): one shard may hold at most 2,500 servers "
            f"and this one holds more. Fix: run more shards: {how}."
        )
    if exc.code == 4010:
        return (
            f"Discord refused {shard} with 4010 (invalid shard): the shard id must be below the shard count "
            f"and the count must suit the bot (large bots: a multiple of the count Discord assigned). "
            f"Check COMMONGROUND_SHARDS / COMMONGROUND_SHARD_COUNT."
        )
    return None


@contextlib.contextmanager
def sqlite_process_lock(database: Path) -> Iterator[None]:
    """Hold ``<database>.lock`` while serving: a second process on the same SQLite file is refused
    (SQLite serves one process; several processes need PostgreSQL). The kernel drops the lock when
    the process dies, however it dies."""
    path = database.with_name(database.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ShardingError(
                f"another commonground process (pid {holder}) is serving {database}; SQLite serves one process: "
                "stop it, or move to PostgreSQL to run several (`commonground db copy`, README: Scaling out)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


async def run_bot(
    settings: Settings,
    db: Database,
    *,
    stop: asyncio.Event,
    clock: Clock | None = None,
    guild_ready_timeout: float = DEFAULT_GUILD_READY_TIMEOUT,
) -> None:
    """Serve until ``stop`` is set (SIGTERM) or the connection ends for good; always close cleanly.

    Raises :class:`ShardingError` with the fix when Discord refuses the shard settings (4010, 4011).
    """
    bot = build_bot(settings, db, clock=clock, guild_ready_timeout=guild_ready_timeout)
    assert settings.token is not None
    async with bot:
        runner = asyncio.create_task(serve(bot, settings.token), name="discord")
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            # Stop reading the gateway first (no new events), then let the replies in flight go out
            # while HTTP is still open (bot.close drains), then close HTTP; the caller closes the database.
            log.info("stopping: no new events; finishing replies in flight, then closing")
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await bot.close()
        stopper.cancel()
        if stopper not in done and runner.done() and not runner.cancelled() and runner.exception():
            exc = runner.exception()
            assert exc is not None
            reason = explain_gateway_close(exc, settings)
            if reason is not None:
                raise ShardingError(reason) from exc
            raise exc


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
