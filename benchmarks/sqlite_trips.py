"""Trips to aiosqlite's thread and CPU per transaction: SQLAlchemy's stock aiosqlite adapter against the
one-trip adapter the bot uses (bot/storage/sqlite_driver.py).

    .venv/bin/python -m benchmarks.sqlite_trips [N]

For each adapter: a read transaction (BEGIN, one indexed SELECT, rollback) and a write transaction (BEGIN
IMMEDIATE, one INSERT, COMMIT with synchronous=FULL), N of each through ``Database.read()``/``write()``;
prints the trips to the thread per transaction and the median CPU and wall time per transaction over 5
rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import aiosqlite
from sqlalchemy import insert, select

from bot.storage.database import Database
from bot.storage.tables import guilds


async def _measure(db: Database, n: int, calls: list[int]) -> dict[str, tuple[float, float, float]]:
    out: dict[str, tuple[float, float, float]] = {}
    now = datetime.now(UTC)

    async def read(i: int) -> None:
        async with db.read() as conn:
            (await conn.execute(select(guilds.c.name).where(guilds.c.id == i % 50))).first()

    async def write(i: int) -> None:
        async with db.write() as conn:
            await conn.execute(insert(guilds).values(id=10_000 + i, name="g", joined_at=now))

    for name, fn in (("read", read), ("write", write)):
        cpu_ms, wall_ms, trips = [], [], 0.0
        for r in range(5):
            calls[0] = 0
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(n):
                await fn(r * n + i)
            cpu_ms.append((time.process_time() - c0) / n * 1000)
            wall_ms.append((time.perf_counter() - t0) / n * 1000)
            trips = calls[0] / n
        out[name] = (trips, statistics.median(cpu_ms), statistics.median(wall_ms))
    return out


async def main(n: int) -> None:
    calls = [0]
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await real(self, fn, *args, **kwargs)

    print(f"{n} transactions of each kind, 5 rounds, median per transaction")
    print(f"{'adapter':<24}{'kind':<7}{'trips':>6}{'cpu ms':>9}{'wall ms':>9}")
    for label, opener in (("SQLAlchemy's aiosqlite", _open_stock), ("one trip (the bot's)", Database.open)):
        with tempfile.TemporaryDirectory() as folder, mock.patch.object(aiosqlite.Connection, "_execute", counted):
            db = await opener(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
            try:
                for kind, (trips, cpu_ms, wall_ms) in (await _measure(db, n, calls)).items():
                    print(f"{label:<24}{kind:<7}{trips:>6.0f}{cpu_ms:>9.3f}{wall_ms:>9.3f}")
            finally:
                await db.close()


async def _open_stock(url: str) -> Database:
    """The same Database, its engines built on SQLAlchemy's own aiosqlite adapter."""
    from sqlalchemy.ext import asyncio as sa_asyncio

    original = sa_asyncio.create_async_engine

    def stock(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("module", None)
        return original(*args, **kwargs)

    with mock.patch("bot.storage.database.create_async_engine", stock):
        return await Database.open(url)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
