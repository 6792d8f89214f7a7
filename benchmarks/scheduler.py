"""Scheduler figures for many servers: arming at start, cost per post, CPU while idle.

    .venv/bin/python benchmarks/scheduler.py [--servers 100000] [--posts 2000] [--idle 3]

1. Bulk-inserts N guilds and schedules (random local times, six timezones, a few day patterns) into a
   temporary SQLite file with the real migrations, then times ``DebateService.reconcile()`` — what runs
   on every ``on_ready`` — arming every schedule's post job from nothing, and once more when all are armed.
2. Moves a FakeClock across the next slots until ``--posts`` debates have been dispatched through the
   real dispatcher and the real handler (rotation, debate row, next-slot re-arm) with a fake sender
   instead of Discord; prints the wall time per post.
3. With the real SystemClock and every job an hour away, starts the dispatcher and measures the
   process's CPU time (``time.process_time``) over ``--idle`` seconds of real idle time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bot.domain.clock import FakeClock, SystemClock
from bot.scheduler import Scheduler
from bot.services.debates import DebateService, Delivered
from bot.storage.database import Database
from bot.storage.tables import debates, guilds, jobs, schedules

ZONES = ("UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham")
DAYS = (0b1111111, 0b0011111, 0b1100000, 0b0010101)
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


class FakeSender:
    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self, debate, prompt, options, poll_id):
        self.sent += 1
        return Delivered(10_000_000 + debate.id)


async def populate(db: Database, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    now = START
    batch = 20_000
    for lo in range(0, n, batch):
        ids = range(lo + 1, min(lo + batch, n) + 1)
        async with db.write() as conn:
            await conn.execute(guilds.insert(), [{"id": g, "name": f"g{g}", "joined_at": now} for g in ids])
            await conn.execute(
                schedules.insert(),
                [
                    {
                        "guild_id": g,
                        "channel_id": 1_000_000 + g,
                        "post_time": f"{rng.randrange(24):02d}:{rng.randrange(60):02d}",
                        "timezone": rng.choice(ZONES),
                        "weekdays": rng.choice(DAYS),
                        "updated_at": now,
                    }
                    for g in ids
                ],
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--posts", type=int, default=2_000)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        try:
            t0 = time.perf_counter()
            await populate(db, args.servers)
            print(f"servers: {args.servers:,} (inserted in {time.perf_counter() - t0:.1f} s)")

            # 1. arming at start
            clock = FakeClock(START)
            scheduler = Scheduler(db, clock)
            sender = FakeSender()
            service = DebateService(db, clock, scheduler, deliver=sender)
            service.register()
            t0 = time.perf_counter()
            armed = await service.reconcile()
            arm_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = await service.reconcile()
            again_s = time.perf_counter() - t0
            print(f"reconcile, nothing armed: {armed:,} jobs armed in {arm_s:.2f} s")
            print(f"reconcile, all armed (every later on_ready): {again} armed in {again_s:.2f} s")

            # 2. cost per dispatched post
            posted = 0
            t0 = time.perf_counter()
            while posted < args.posts:
                async with db.read() as conn:
                    earliest = (await conn.execute(select(func.min(jobs.c.due_at)))).scalar()
                clock.set(earliest)
                await scheduler.drain()
                posted = sender.sent
            post_s = time.perf_counter() - t0
            async with db.read() as conn:
                rows = (await conn.execute(select(func.count()).select_from(debates))).scalar_one()
                pending = (await conn.execute(select(func.count()).select_from(jobs))).scalar_one()
            print(
                f"dispatched posts: {posted:,} in {post_s:.2f} s = {post_s / posted * 1000:.2f} ms per post "
                f"(debate rows {rows:,}, jobs still armed {pending:,}; fake sender, no poll service)"
            )
            await scheduler.stop()

            # 3. idle CPU with the real clock: every job an hour away
            real = SystemClock()
            async with db.write() as conn:
                await conn.execute(update(jobs).values(due_at=real.now() + timedelta(hours=1)))
            idle_scheduler = Scheduler(db, real)
            idle_scheduler.start()
            await asyncio.sleep(0.2)  # let the dispatcher read the queue once and go to sleep
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(args.idle)
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            await idle_scheduler.stop()
            print(f"idle between slots: {cpu * 1000:.1f} ms CPU over {wall:.1f} s wall ({cpu / wall * 100:.3f} %)")
        finally:
            await db.close()


if __name__ == "__main__":
    asyncio.run(main())
