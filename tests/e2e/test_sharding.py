"""The real bot sharded against the sandbox: the recommended count, clusters, identify pacing, 4011."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys

import pytest

from bot.config import load_settings
from bot.domain.shards import shard_of
from bot.runtime import build_bot
from bot.sandbox.gateway import MAX_GUILDS_PER_SHARD
from bot.sandbox.server import Sandbox
from bot.storage.database import Database
from tests.harness import TEST_IDENTIFY_INTERVAL

pytestmark = pytest.mark.timeout(180)


def spread_id(k: int) -> int:
    """Server ids spread like Discord's (created over years), so every shard gets its share."""
    return ((10_000_000 + k) << 22) | 5


def fill(sb: Sandbox, n: int) -> list[int]:
    return [sb.create_guild(f"s{k}", guild_id=spread_id(k)).id for k in range(n)]


async def start(sb: Sandbox, db: Database, **settings) -> tuple:
    config = load_settings(
        env={},
        token=sb.token,
        database_url=db.url,
        api_base=sb.api_base,
        gateway_url=sb.gateway_url,
        **settings,
    )
    bot = build_bot(config, db, extensions=("bot.cogs.meta", "bot.cogs.lifecycle"))
    bot.identify_pacer.interval = sb.identify_interval
    task = asyncio.create_task(bot.start(sb.token))
    ready = asyncio.create_task(bot.wait_until_ready())
    done, _ = await asyncio.wait({ready, task}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()
    assert ready in done, "not ready in time"
    return bot, task


async def stop(bot, task) -> None:
    await bot.close()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)


async def test_auto_sharding_starts_with_the_recommended_count(tmp_path):
    async with Sandbox(identify_interval=TEST_IDENTIFY_INTERVAL) as sb:
        ids = fill(sb, MAX_GUILDS_PER_SHARD + 1)  # one connection would be closed with 4011
        assert sb.recommended_shards == 3
        db = await Database.open(f"sqlite+aiosqlite:///{tmp_path}/a.db")
        try:
            bot, task = await start(sb, db)
            assert bot.shard_count == 3
            assert sorted(sb.sessions()) == [[0, 3], [1, 3], [2, 3]]
            assert not [r for r in sb.rejected_identifies if r[1] == "4011"]
            assert {g.id for g in bot.guilds} == set(ids)
            for g in bot.guilds[:50]:
                assert g.shard_id == shard_of(g.id, 3)
            await stop(bot, task)
        finally:
            await db.close()


async def test_a_cluster_connects_only_its_shards_and_sees_only_their_servers(tmp_path):
    async with Sandbox(identify_interval=TEST_IDENTIFY_INTERVAL) as sb:
        ids = fill(sb, 40)
        db = await Database.open(f"sqlite+aiosqlite:///{tmp_path}/c.db")
        try:
            bot, task = await start(sb, db, shards="2-3", shard_count=4)
            assert sorted(sb.sessions()) == [[2, 4], [3, 4]]
            mine = {i for i in ids if shard_of(i, 4) in (2, 3)}
            assert {g.id for g in bot.guilds} == mine
            assert 0 < len(mine) < len(ids)
            assert bot.scope.describe() == "shards 2-3 of 4"
            await stop(bot, task)
        finally:
            await db.close()


@pytest.mark.parametrize(("max_concurrency", "spaced"), [(1, True), (4, False)])
async def test_identify_pacing_follows_max_concurrency(tmp_path, max_concurrency, spaced):
    interval = 0.4  # Discord's 5 s, scaled
    async with Sandbox(identify_interval=interval, max_concurrency=max_concurrency) as sb:
        fill(sb, 8)
        db = await Database.open(f"sqlite+aiosqlite:///{tmp_path}/p.db")
        try:
            bot, task = await start(sb, db, shard_count=4)
            assert sb.rejected_identifies == [], "an IDENTIFY came too early for its bucket"
            times = sorted(t for t, _ in sb.identify_log)
            assert len(times) == 4
            span = times[-1] - times[0]
            if spaced:  # one bucket: one IDENTIFY per interval
                assert all(b - a >= interval * 0.95 for a, b in itertools.pairwise(times))
            else:  # four buckets: all at once (discord.py alone would wait 5 s between each)
                assert span < interval
            await stop(bot, task)
        finally:
            await db.close()


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, err.decode()


async def test_one_shard_holding_more_than_2500_servers_fails_with_the_fix(tmp_path):
    async with Sandbox() as sb:
        fill(sb, MAX_GUILDS_PER_SHARD + 1)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_URL", "COMMONGROUND_"))}
        env.update(
            DISCORD_TOKEN=sb.token,
            DISCORD_API_BASE=sb.api_base,
            DISCORD_GATEWAY_URL=sb.gateway_url,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/x.db",
            LOG_LEVEL="CRITICAL",
        )
        code, err = await _cli("run", "--shard-count", "1", env=env)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "4011" in lines[0] and "2,500 servers" in lines[0]
        assert "COMMONGROUND_SHARD_COUNT" in lines[0] and "recommends" in lines[0]
        assert sb.rejected_identifies == [([0, 1], "4011")]
        assert sb.token not in err
