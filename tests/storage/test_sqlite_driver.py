"""The one-trip aiosqlite adapter (bot/storage/sqlite_driver.py): one trip to the driver's thread per
statement, BEGIN sent with the first one, no trip to end a transaction that is not open, and everything
SQLAlchemy reads from a cursor as its own adapter reports it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import aiosqlite
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.storage.database import Database
from bot.storage.sqlite_driver import OneTripCursor
from bot.storage.tables import guilds, jobs
from tests.conftest import sqlite_only

pytestmark = sqlite_only
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture
def trips(monkeypatch):
    """Calls to aiosqlite's connection thread, counted."""
    count = [0]
    real = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        count[0] += 1
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return count


async def test_a_statement_is_one_trip_and_a_transaction_of_one_statement_two(db: Database, trips):
    async with db.read() as conn:
        assert isinstance((await conn.get_raw_connection()).dbapi_connection.cursor(), OneTripCursor)
        await conn.execute(select(guilds.c.id))  # BEGIN and a first statement
        before = trips[0]
        assert (await conn.execute(select(guilds.c.id))).all() == []
        assert trips[0] - before == 1  # SQLAlchemy's own adapter: cursor, execute, fetchall, close
    trips[0] = 0
    async with db.read() as conn:
        await conn.execute(select(guilds.c.id))
    assert trips[0] == 2  # BEGIN with the SELECT, the rollback
    trips[0] = 0
    async with db.write() as conn:
        await conn.execute(insert(guilds).values(id=1, name="g", joined_at=NOW))
    assert trips[0] == 2  # BEGIN IMMEDIATE with the INSERT, the commit (the pool's rollback after it: none)
    trips[0] = 0
    async with db.write():
        pass
    async with db.read():
        pass
    assert trips[0] == 0  # never begun: nothing to send


async def test_a_call_runs_inside_the_transaction_after_its_begin(db: Database):
    def insert_raw(sqlite, gid: int) -> bool:
        sqlite.execute("INSERT INTO guilds (id, name, joined_at) VALUES (?, 'raw', '2026-11-01 12:00:00')", (gid,))
        return sqlite.in_transaction

    async def call_then_fail() -> None:
        async with db.write() as conn:
            adapter = (await conn.get_raw_connection()).dbapi_connection
            assert await adapter.call(insert_raw, 7) is True  # BEGIN IMMEDIATE went first, in the same trip
            raise RuntimeError("after the call")

    with pytest.raises(RuntimeError, match="after the call"):
        await call_then_fail()
    async with db.read() as conn:
        assert (await conn.execute(select(guilds.c.id))).all() == []  # rolled back with the transaction


async def test_a_locked_database_refuses_at_the_first_statement_and_the_next_write_works(db: Database):
    async def write() -> None:
        async with db.write() as conn:
            await conn.execute(insert(guilds).values(id=1, name="g", joined_at=NOW))

    async with db.write() as conn:  # the one write connection, opened before the lock; refused in 50 ms
        await conn.exec_driver_sql("PRAGMA busy_timeout=50")
    other = sqlite3.connect(db.url.split("///", 1)[1], isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(OperationalError, match="database is locked"):
            await write()
        other.execute("ROLLBACK")
        await write()  # the refused BEGIN left nothing behind on the connection
    finally:
        other.close()
    async with db.read() as conn:
        assert (await conn.execute(select(guilds.c.id))).scalars().all() == [1]


async def test_rows_rowcount_and_inserted_keys_as_sqlalchemy_reads_them(db: Database):
    async with db.write() as conn:
        many = [{"id": i, "name": f"g{i}", "joined_at": NOW} for i in (1, 2, 3)]
        assert (await conn.execute(insert(guilds), many)).rowcount == 3  # executemany
        job = await conn.execute(insert(jobs).values(kind="post", key="k", guild_id=1, due_at=NOW, created_at=NOW))
        stored = (await conn.execute(select(jobs.c.id).where(jobs.c.key == "k"))).scalar_one()
        assert job.inserted_primary_key == (stored,)  # the cursor's lastrowid
        renamed = await conn.execute(update(guilds).where(guilds.c.id >= 2).values(name="x"))
        assert renamed.rowcount == 2
        stamped = await conn.execute(text("UPDATE guilds SET name = 'y' WHERE id = 99"))
        assert stamped.rowcount == 0
    async with db.read() as conn:
        result = await conn.execute(select(guilds.c.id, guilds.c.name).order_by(guilds.c.id))
        assert list(result.keys()) == ["id", "name"]  # the description
        assert result.fetchmany(2) == [(1, "g1"), (2, "x")]
        assert result.fetchone() == (3, "x")
        assert result.fetchone() is None


async def test_errors_are_the_ones_sqlalchemy_raises_and_the_transaction_rolls_back(db: Database):
    async with db.write() as conn:
        await conn.execute(insert(guilds).values(id=1, name="kept", joined_at=NOW))

    async def insert_two() -> None:
        async with db.write() as conn:
            await conn.execute(insert(guilds).values(id=2, name="rolled back", joined_at=NOW))
            await conn.execute(insert(guilds).values(id=1, name="again", joined_at=NOW))

    async def read_nowhere() -> None:
        async with db.read() as conn:
            await conn.execute(text("SELECT * FROM nowhere"))

    with pytest.raises(IntegrityError, match=r"UNIQUE constraint failed: guilds\.id"):
        await insert_two()
    with pytest.raises(OperationalError, match="no such table: nowhere"):
        await read_nowhere()
    async with db.read() as conn:
        assert (await conn.execute(select(guilds.c.name))).scalars().all() == ["kept"]
