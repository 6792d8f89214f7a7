"""Past one process: a scheduler runs only its shards' jobs, and claims each with a lease.

Two schedulers here stand for two cluster processes: each has its own database engine on the same
database (SQLite file or PostgreSQL) and its own lease owner name.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.clock import FakeClock
from bot.domain.shards import ShardScope, shard_of
from bot.scheduler import LEASE, Scheduler
from bot.storage import jobs as job_store
from bot.storage.database import Database

START = datetime(2026, 3, 2, 0, tzinfo=UTC)
COUNT = 4


def guild_on(shard: int, k: int) -> int:
    return ((COUNT * (5_000_000 + k) + shard) << 22) | 9


@pytest.fixture
async def second(db):
    """Another process's connection to the same database."""
    other = await Database.open(db.url, migrate=False)
    try:
        yield other
    finally:
        await other.close()


async def test_overlapping_clusters_run_every_job_of_a_fake_day_exactly_once(db, second):
    clock = FakeClock(START)
    a = Scheduler(db, clock, scope=ShardScope(COUNT, (0, 1, 2)), owner="host-a:1:a")
    b = Scheduler(second, clock, scope=ShardScope(COUNT, (1, 2, 3)), owner="host-b:1:b")
    runs: list[tuple[str, str]] = []

    def handler(name: str):
        async def run(job) -> None:
            runs.append((job.key, name))
            for _ in range(3):  # yield, so the other cluster's claims interleave with this run
                await asyncio.sleep(0)

        return run

    a.register("t", handler("a"))
    b.register("t", handler("b"))
    guild_of: dict[str, int | None] = {}
    for k in range(240):
        guild = guild_on(k % COUNT, k)
        key = f"job:{k}"
        guild_of[key] = guild
        await a.schedule("t", key, START + timedelta(minutes=6 * k), guild_id=guild)  # spread over 24 h
    for k in range(3):
        guild_of[f"sweep:{k}"] = None
        await a.schedule("t", f"sweep:{k}", START + timedelta(hours=8 * k), guild_id=None)  # no server's work

    for _ in range(24 * 4):
        clock.advance(timedelta(minutes=15))
        await asyncio.wait_for(asyncio.gather(a.drain(), b.drain()), 30)

    counted = Counter(key for key, _ in runs)
    assert set(counted) == set(guild_of), "every job ran"
    assert max(counted.values()) == 1, [k for k, n in counted.items() if n > 1]
    by = dict(runs)
    for key, guild in guild_of.items():
        if guild is None:
            assert by[key] == "a", "work of no server runs only in the cluster holding shard 0"
        elif shard_of(guild, COUNT) == 0:
            assert by[key] == "a"
        elif shard_of(guild, COUNT) == 3:
            assert by[key] == "b"
    both = [by[k] for k, g in guild_of.items() if g is not None and shard_of(g, COUNT) in (1, 2)]
    assert set(both) <= {"a", "b"}
    async with db.read() as conn:
        assert await job_store.count(conn) == 0


async def test_a_cluster_does_not_touch_the_jobs_of_other_shards(db):
    clock = FakeClock(START)
    s = Scheduler(db, clock, scope=ShardScope(COUNT, (2,)))
    ran: list[str] = []

    async def handler(job) -> None:
        ran.append(job.key)

    s.register("t", handler)
    for shard in range(COUNT):
        await s.schedule("t", f"on:{shard}", START, guild_id=guild_on(shard, 1))
    await s.schedule("t", "global", START, guild_id=None)
    await s.drain()
    assert ran == ["on:2"]
    async with db.read() as conn:
        assert await job_store.count(conn) == COUNT  # the others wait for their own clusters
        assert await job_store.earliest_due(conn, s.scope) is None


async def test_a_live_lease_of_another_process_is_respected_until_it_expires(db):
    clock = FakeClock(START)
    wall = [datetime(2026, 11, 29, 12, tzinfo=UTC)]
    s = Scheduler(db, clock, owner="here:1:x", wall_clock=lambda: wall[0])
    ran: list[str] = []

    async def handler(job) -> None:
        ran.append(job.key)

    s.register("t", handler)
    await s.schedule("t", "k", START, guild_id=guild_on(0, 1))
    async with db.write() as conn:
        claimed = await job_store.claim_due(
            conn, START, 10, None, owner="elsewhere:77:y", wall_now=wall[0], lease_until=wall[0] + LEASE
        )
    assert [j.key for j in claimed] == ["k"]
    await s.drain()
    assert ran == [], "another process holds it"
    wall[0] += LEASE + timedelta(seconds=1)  # that process stopped renewing: it is gone
    await s.drain()
    assert ran == ["k"]


async def test_a_restarted_process_takes_over_the_leases_of_its_killed_predecessor_at_once(db):
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await asyncio.wait_for(gone.wait(), 30)  # its pid now names no process
    clock = FakeClock(START)
    s = Scheduler(db, clock)
    host = s.owner.split(":", 1)[0]
    ran = asyncio.Event()

    async def handler(job) -> None:
        ran.set()

    s.register("t", handler)
    await s.schedule("t", "k", START, guild_id=guild_on(1, 1))
    now = datetime.now(UTC)
    async with db.write() as conn:  # the killed process had claimed it a moment ago
        await job_store.claim_due(
            conn, START, 10, None, owner=f"{host}:{gone.pid}:old", wall_now=now, lease_until=now + LEASE
        )
    s.start()  # the loop looks for leases of dead local processes first
    try:
        await asyncio.wait_for(ran.wait(), 10)  # not after the lease's two minutes
    finally:
        await s.stop()


async def test_claims_from_two_connections_never_overlap(db, second):
    wall = datetime.now(UTC)
    for k in range(60):
        async with db.write() as conn:
            await job_store.upsert(
                conn, kind="t", key=f"k{k}", due_at=START, guild_id=guild_on(k % COUNT, k), now=START
            )

    async def claimer(database: Database, owner: str) -> list[int]:
        got: list[int] = []
        for _ in range(12):
            async with database.write() as conn:
                jobs = await job_store.claim_due(
                    conn, START, 7, None, owner=owner, wall_now=wall, lease_until=wall + LEASE
                )
            got += [j.id for j in jobs]
            await asyncio.sleep(0)
        return got

    first, other = await asyncio.wait_for(asyncio.gather(claimer(db, "p:1:a"), claimer(second, "p:2:b")), 30)
    assert not set(first) & set(other)
    assert len(first) + len(other) == 60
