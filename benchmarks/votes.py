"""Vote storage throughput: one commit per vote against group commit, synchronous=FULL, real SQLite file.

    .venv/bin/python -m benchmarks.votes [--voters 1000] [--rounds 20] [--single-rounds 3]
    .venv/bin/python -m benchmarks.votes --database-url postgresql+asyncpg://...   # emptied first

1,000 concurrent voters (asyncio tasks) each vote ``rounds`` times in a closed loop (the next vote
after the previous one's acknowledgement), alternating options so most votes are changes. Prints
votes/s and acknowledgement p50/p99 for both modes, then checks rows = last choice and integrity_check.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from bot.domain.clock import SystemClock
from bot.runtime import tune_gc
from bot.storage import guilds
from bot.storage import polls as store
from bot.storage.database import Database
from bot.storage.vote_writer import MAX_BATCH, Mode, VoteRequest, VoteWriter


async def run(db: Database, *, voters: int, rounds: int, max_batch: int, label: str) -> dict[str, float]:
    clock = SystemClock()
    now = clock.now()
    async with db.write() as conn:
        await guilds.ensure(conn, 1, now=now)
        poll_id = await store.insert_poll(
            conn,
            guild_id=1,
            channel_id=2,
            question="Bench?",
            options=[("a", -1.0), ("b", 0.0), ("c", 1.0)],
            opened_at=now,
            closes_at=now + timedelta(days=1),
        )
        await store.set_message(conn, poll_id, 10**17 + poll_id)
    writer = VoteWriter(db, clock, max_batch=max_batch)
    latencies: list[float] = []
    last: dict[int, int] = {}

    async def voter(user_id: int) -> None:
        for r in range(rounds):
            idx = (user_id + r) % 3
            req = VoteRequest(
                poll_id,
                1,
                user_id,
                idx,
                mode=Mode.CLICK,
                message_id=10**17 + poll_id,
                role_ids=frozenset(),
            )
            t0 = time.perf_counter()
            result = await writer.vote(req)
            latencies.append(time.perf_counter() - t0)
            assert result.outcome in ("cast", "changed"), result
            last[user_id] = idx

    start = time.perf_counter()
    await asyncio.gather(*(voter(u) for u in range(1, voters + 1)))
    elapsed = time.perf_counter() - start
    await writer.stop()
    async with db.read() as conn:
        found = await conn.execute(text("SELECT user_id, option_idx FROM votes WHERE poll_id = :p"), {"p": poll_id})
        rows = {int(user_id): int(idx) for user_id, idx in found.all()}
    assert rows == last, "rows differ from the last choices"
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    out = {
        "votes": len(latencies),
        "votes_per_s": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "batches": writer.batches,
    }
    print(
        f"{label:<22} {out['votes']:>7} votes in {elapsed:6.2f} s  {out['votes_per_s']:>9,.0f} votes/s  "
        f"ack p50 {out['p50_ms']:6.1f} ms  p99 {out['p99_ms']:6.1f} ms  ({writer.batches} commits)"
    )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20, help="votes per voter with group commit")
    parser.add_argument("--single-rounds", type=int, default=1, help="votes per voter with one commit per vote")
    parser.add_argument("--database-url", help="PostgreSQL (its public schema is emptied first); default: SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            from benchmarks.cluster import fresh_postgres  # the cluster benchmark's; only this run needs it

            await fresh_postgres(args.database_url)
        db = await Database.open(args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        # The collector settings `commonground run` uses (bot.runtime.tune_gc). Without them the figure
        # depends on what else is imported: a small heap (the chart stack is imported lazily) gets full
        # collections in the middle of the run, a large one hides them.
        tune_gc()
        try:
            check = await db.require_healthy()
            if db.is_sqlite:
                sync = check.value("synchronous")
                settings = f"SQLite journal_mode={check.value('journal_mode')} synchronous={sync}"
            else:
                sync = check.value("synchronous_commit")
                settings = f"PostgreSQL fsync={check.value('fsync')} synchronous_commit={sync}"
            print(f"{settings}; {args.voters} voters")
            single = await run(
                db, voters=args.voters, rounds=args.single_rounds, max_batch=1, label="one commit per vote"
            )
            group = await run(db, voters=args.voters, rounds=args.rounds, max_batch=MAX_BATCH, label="group commit")
            check = await db.require_healthy()
            print(f"integrity_check={check.integrity}")
        finally:
            await db.close()
    ratio = group["votes_per_s"] / single["votes_per_s"]
    print(f"group / single = {ratio:.1f}x")
    if args.database_url:
        return  # the bar is SQLite's (the embedded default)
    bar = ratio >= 5 and group["votes_per_s"] >= 30_000 and group["p99_ms"] <= 50
    print("bar (>= 5x, >= 30,000 votes/s, p99 <= 50 ms):", "met" if bar else "NOT met")


if __name__ == "__main__":
    asyncio.run(main())
