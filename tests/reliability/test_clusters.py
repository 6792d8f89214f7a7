"""Past one process: cluster processes on one database (RELIABILITY for issue "Past one process").

Two real bots stand for two cluster processes: each its own shards, its own database engine on the
same database, its own scheduler and lease owner, the same sandbox and fake clock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta

import pytest

from bot.app import EXTENSIONS, CommonGround
from bot.config import load_settings
from bot.domain.shards import shard_of
from bot.runtime import build_bot
from bot.sandbox.server import Sandbox
from bot.storage import guilds as guild_store
from bot.storage import jobs as job_store
from bot.storage.database import Database
from tests.conftest import POSTGRES_URL, _fresh_postgres
from tests.harness import START, TEST_IDENTIFY_INTERVAL
from tests.reliability.support import check_database, daily_schedule, tiny_chart

pytestmark = pytest.mark.timeout(240)
COUNT = 4


@pytest.fixture
async def url(tmp_path) -> str:
    """The clusters' one database: PostgreSQL under scripts/test-postgres (the multi-process store),
    else a SQLite file (the same code paths, one engine per cluster)."""
    if POSTGRES_URL:
        await _fresh_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path}/clusters.db"


def spread_id(k: int) -> int:
    return ((COUNT * (7_000_000 + k) + k % COUNT) << 22) | 3  # server k sits on shard k % COUNT


class Cluster:
    def __init__(self, name: str, bot: CommonGround, task: asyncio.Task, db: Database) -> None:
        self.name, self.bot, self.task, self.db = name, bot, task, db

    async def stop(self) -> None:
        await self.bot.close()
        await asyncio.wait_for(asyncio.gather(self.task, return_exceptions=True), 30)
        await self.db.close()


async def start_cluster(name: str, sb: Sandbox, url: str, clock, shards: str, *, extensions=EXTENSIONS) -> Cluster:
    db = await Database.open(url)
    settings = load_settings(
        env={},
        token=sb.token,
        database_url=url,
        api_base=sb.api_base,
        gateway_url=sb.gateway_url,
        shards=shards,
        shard_count=COUNT,
    )
    bot = build_bot(settings, db, clock=clock, extensions=extensions)
    bot.identify_pacer.interval = sb.identify_interval
    reconciled = asyncio.Event()

    async def after_reconcile() -> None:
        # discord.py runs every on_reconcile listener as its own task, all created by one dispatch.
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me and t.get_name() == "discord.py: on_reconcile"]
        await asyncio.gather(*others, return_exceptions=True)
        reconciled.set()

    bot.add_listener(after_reconcile, "on_reconcile")
    task = asyncio.create_task(bot.start(sb.token), name=f"cluster-{name}")
    ready = asyncio.create_task(reconciled.wait())
    done, _ = await asyncio.wait({ready, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()
    assert ready in done, f"cluster {name} not ready"
    await asyncio.wait_for(bot.scheduler.drain(), 30)  # what reconciliation armed and made due
    return Cluster(name, bot, task, db)


async def dump_guilds(db: Database) -> dict[int, tuple]:
    async with db.read() as conn:
        rows = (await conn.exec_driver_sql("SELECT id, name, joined_at, removed_at FROM guilds")).all()
        jobs = (await conn.exec_driver_sql("SELECT key, guild_id, due_at FROM jobs")).all()
    out: dict[int, tuple] = {r[0]: (tuple(r), ()) for r in rows}
    for key, guild_id, due in jobs:
        if guild_id in out:
            out[guild_id] = (out[guild_id][0], (*out[guild_id][1], (key, str(due))))
    return out


async def test_reconciliation_in_cluster_a_leaves_cluster_b_servers_untouched(url):
    async with Sandbox(identify_interval=TEST_IDENTIFY_INTERVAL) as sb:
        guilds = [sb.create_guild(f"s{k}", guild_id=spread_id(k)) for k in range(16)]
        db = await Database.open(url)
        async with db.write() as conn:  # every server known from an earlier run
            for g in guilds:
                await guild_store.ensure(conn, g.id, now=START, name=g.name)
        await db.close()
        # While every cluster was down, the bot was removed from one server on each side.
        gone_a = next(g for g in guilds if shard_of(g.id, COUNT) == 0)
        gone_b = next(g for g in guilds if shard_of(g.id, COUNT) == 3)
        sb.remove_guild(gone_a.id)
        sb.remove_guild(gone_b.id)

        db = await Database.open(url)
        before = await dump_guilds(db)
        a = await start_cluster("a", sb, url, START_CLOCK(), "0-1")
        after = await dump_guilds(db)
        b_side = [g.id for g in guilds if shard_of(g.id, COUNT) in (2, 3)]
        for gid in b_side:
            assert after[gid] == before[gid], "cluster A changed a server of cluster B"
        assert after[gone_a.id][0][3] is not None, "A marks its own removed server as left"
        assert any(key.startswith("purge:") for key, _ in after[gone_a.id][1])
        async with db.read() as conn:
            assert gone_b.id in await guild_store.active_ids(conn)

        b = await start_cluster("b", sb, url, START_CLOCK(), "2-3")
        async with db.read() as conn:
            active = await guild_store.active_ids(conn)
        assert active == {g.id for g in guilds} - {gone_a.id, gone_b.id}
        for cluster in (a, b):
            await cluster.stop()
        await db.close()


def START_CLOCK():
    from bot.domain.clock import FakeClock

    return FakeClock(START)


async def test_a_cluster_reconciles_only_after_all_its_shards_are_ready(url):
    # One identify per 0.6 s: shard 1 connects well after shard 0 is ready.
    async with Sandbox(identify_interval=0.6, max_concurrency=1) as sb:
        guilds = [sb.create_guild(f"s{k}", guild_id=spread_id(k)) for k in range(8)]
        db = await Database.open(url)
        async with db.write() as conn:
            for g in guilds:
                await guild_store.ensure(conn, g.id, now=START, name=g.name)
        a = await start_cluster("a", sb, url, START_CLOCK(), "0-1")
        times = [t for t, _ in sb.identify_log]
        assert len(times) == 2 and times[1] - times[0] >= 0.6
        async with db.read() as conn:
            active = await guild_store.active_ids(conn)
        mine = {g.id for g in guilds if shard_of(g.id, COUNT) in (0, 1)}
        assert mine <= active, "a server of the later shard was marked left before its shard was ready"
        await a.stop()
        await db.close()


async def test_two_clusters_with_overlapping_shards_run_every_job_of_a_fake_day_once(url, monkeypatch):
    monkeypatch.setattr("bot.ui.charts.tally_chart", tiny_chart)
    clock = START_CLOCK()
    async with Sandbox(identify_interval=TEST_IDENTIFY_INTERVAL) as sb:
        servers = []
        for k in range(12):
            g = sb.create_guild(f"s{k}", guild_id=spread_id(k))
            servers.append((g, sb.create_channel(g.id, "debates")))
        # Misconfigured on purpose: shards 1 and 2 are held by both clusters.
        a = await start_cluster("a", sb, url, clock, "0-2")
        b = await start_cluster("b", sb, url, clock, "1-3")
        runs: list[tuple[str, str, str]] = []
        for cluster in (a, b):
            for kind, handler in list(cluster.bot.scheduler.handlers.items()):

                async def counted(job, handler=handler, name=cluster.name):
                    runs.append((job.key, job.due_at.isoformat(), name))
                    await handler(job)

                cluster.bot.scheduler.handlers[kind] = counted
        service = a.bot.debates
        for k, (g, channel) in enumerate(servers):
            at = f"{(6 + k) % 24:02d}:{(k * 7) % 60:02d}"
            await daily_schedule(service, g.id, channel.id, post_time=at, thread=False, poll_hours=6)
        end = START + timedelta(days=1)
        while True:
            async with a.db.read() as conn:
                due = await job_store.earliest_due(conn)
            if due is None or due > end:
                break
            clock.set(max(due, clock.now()))
            await asyncio.wait_for(asyncio.gather(a.bot.scheduler.drain(), b.bot.scheduler.drain()), 60)
        clock.set(end)
        await asyncio.wait_for(asyncio.gather(a.bot.scheduler.drain(), b.bot.scheduler.drain()), 60)

        counted_runs = Counter((key, due) for key, due, _ in runs)
        assert counted_runs and max(counted_runs.values()) == 1, [k for k, n in counted_runs.items() if n > 1]
        for key, _due, name in runs:
            if key.startswith("post:"):
                shard = shard_of(int(key.split(":")[1]), COUNT)
                assert shard in ({0, 1, 2} if name == "a" else {1, 2, 3})
        for g, channel in servers:
            posts = [m for m in sb.messages(channel.id) if m.get("embeds")]
            assert len(posts) == 1, (g.id, len(posts))
        async with a.db.read() as conn:
            rows = (await conn.exec_driver_sql("SELECT guild_id, status FROM debates")).all()
        assert sorted(r[0] for r in rows) == sorted(g.id for g, _ in servers)
        assert {r[1] for r in rows} == {"posted"}
        assert {name for _, _, name in runs} == {"a", "b"}, "both clusters did part of the work"
        if a.db.is_sqlite:
            await check_database(a.db)
        for cluster in (a, b):
            await cluster.stop()


@pytest.mark.skipif(not POSTGRES_URL, reason="clusters share PostgreSQL (scripts/test-postgres); SQLite serves one")
async def test_two_clusters_starting_at_once_take_turns_to_identify(url):
    """G3 is per bot, not per process: two clusters started in the same moment, one IDENTIFY bucket
    (max_concurrency 1). Each process paces its own shards; the database's advisory lock paces them
    against each other, so Discord never answers an IDENTIFY with Invalid Session. Fails with the pacing
    per process only (two IDENTIFYs inside one interval, the later one refused)."""
    interval = 0.5  # Discord's 5 s, scaled
    async with Sandbox(identify_interval=interval, max_concurrency=1) as sb:
        for k in range(8):
            sb.create_guild(f"s{k}", guild_id=spread_id(k))
        a, b = await asyncio.gather(
            start_cluster("a", sb, url, START_CLOCK(), "0-1"), start_cluster("b", sb, url, START_CLOCK(), "2-3")
        )
        try:
            assert sb.rejected_identifies == [], sb.rejected_identifies
            times = sorted(t for t, _shard in sb.identify_log)
            assert len(times) == COUNT
            assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= interval
            assert {tuple(shard) for _t, shard in sb.identify_log} == {(s, COUNT) for s in range(COUNT)}
        finally:
            for cluster in (a, b):
                await cluster.stop()
