"""The database: migrations at start, durability settings, backups, refusing a newer schema."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from bot.storage import database as database_module
from bot.storage import guilds
from bot.storage.backups import backup_to
from bot.storage.database import Database, DatabaseSettingsError, SchemaTooNewError
from tests.conftest import POSTGRES_URL, sqlite_only

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


async def test_migrations_and_settings(db: Database):
    assert await db.current_revision() is not None
    check = await db.require_healthy()
    if db.is_sqlite:
        wanted = {"journal_mode": "wal", "synchronous": "full", "foreign_keys": "on"}
    else:
        wanted = {
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "server_encoding": "UTF8",
            "default_transaction_read_only": "off",
            "in_recovery": "no",
        }
    assert {s.name: s.value for s in check.settings} == wanted
    assert check.integrity == "ok" and check.problems == []


async def test_self_check_fails_when_a_table_cannot_be_read(db: Database):
    async with db.write() as conn:
        await conn.exec_driver_sql("DROP TABLE vote_events")
    with pytest.raises(DatabaseSettingsError, match=r"canary read failed: .*vote_events"):
        await db.require_healthy()


async def test_self_check_fails_on_a_schema_behind_this_version(db: Database):
    async with db.write() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0000_older'")
    with pytest.raises(DatabaseSettingsError, match="schema at revision 0000_older, this version needs"):
        await db.require_healthy()


async def test_self_check_reads_postgres_durability_settings(db: Database):
    """The settings are read from the server: turning synchronous_commit off for the database fails the check."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL settings (scripts/test-postgres); SQLite's are tests/reliability/test_selfcheck.py")
    async with db.write() as conn:
        name = (await conn.exec_driver_sql("SELECT current_database()")).scalar_one()
    async with db.writer.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        await db.writer.dispose()  # new connections take the database's new default
        with pytest.raises(DatabaseSettingsError, match=r"synchronous_commit=off \(want on or local"):
            await db.require_healthy()
    finally:
        async with db.writer.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(f'ALTER DATABASE "{name}" RESET synchronous_commit')
        await db.writer.dispose()
    assert (await db.require_healthy()).value("synchronous_commit") == "on"


async def test_reopen_is_idempotent(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/re.db"
    first = await Database.open(url)
    revision = await first.current_revision()
    await first.close()
    second = await Database.open(url)
    assert await second.current_revision() == revision
    await second.close()


async def test_refuses_a_newer_schema_and_changes_nothing(tmp_path):
    path = tmp_path / "new.db"
    db = await Database.open(f"sqlite+aiosqlite:///{path}")
    await db.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_future'")
    conn.close()  # checkpoints the WAL, so the file alone holds the state we compare
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError, match="newer version"):
        await Database.open(f"sqlite+aiosqlite:///{path}")
    assert path.read_bytes() == before


async def test_utc_round_trip(db: Database):
    async with db.write() as conn:
        await guilds.ensure(conn, 42, now=NOW, name="Demo")
    async with db.read() as conn:
        row = await guilds.get(conn, 42)
    assert row is not None and row.removed_at is None
    async with db.write() as conn:
        await guilds.mark_removed(conn, 42, now=NOW)
    async with db.read() as conn:
        row = await guilds.get(conn, 42)
    assert row.removed_at == NOW and row.removed_at.tzinfo is not None


async def test_ensure_many_records_servers_in_one_statement_and_keeps_names_it_is_not_given(db: Database):
    async with db.write() as conn:
        await guilds.ensure_many(conn, [(1, "One"), (2, "Two"), (3, None)], now=NOW)
        await guilds.mark_removed(conn, 2, now=NOW)
    statements: list[str] = []
    event.listen(db.writer.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    later = datetime(2026, 11, 2, tzinfo=UTC)
    async with db.write() as conn:  # 1 and 2 back (2 had been removed) nameless, as in an outage; 4 is new
        await guilds.ensure_many(conn, [(1, ""), (2, None), (3, "Three"), (4, "x" * 150)], now=later)
    assert len([s for s in statements if s.lstrip().upper().startswith("INSERT")]) == 1
    async with db.read() as conn:
        rows = {r.id: r for r in (await conn.execute(select(guilds.guilds))).all()}
    assert {i: r.name for i, r in rows.items()} == {1: "One", 2: "Two", 3: "Three", 4: "x" * 100}
    assert all(r.removed_at is None for r in rows.values())
    assert rows[1].joined_at == NOW and rows[4].joined_at == later  # the first contact is kept


@sqlite_only
async def test_backup_of_live_database_passes_integrity(db: Database, tmp_path):
    async with db.write() as conn:
        for gid in range(1, 200):
            await guilds.ensure(conn, gid, now=NOW)
    target, integrity, removed = await backup_to(db, tmp_path / "backups", keep=2, now=NOW)
    assert integrity == "ok" and removed == 0
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT count(*) FROM guilds").fetchone()[0] == 199
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@sqlite_only
async def test_backup_retention_keeps_newest(db: Database, tmp_path):
    folder = tmp_path / "backups"
    written = []
    for day in range(1, 5):
        target, _, _ = await backup_to(db, folder, keep=2, now=NOW.replace(day=day))
        written.append(target.name)
    assert sorted(p.name for p in folder.iterdir()) == sorted(written[-2:])


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL only: SQLite has its one writer connection anyway")
async def test_write_transactions_keep_one_connection_and_replace_one_the_server_closed(db: Database):
    """On PostgreSQL write transactions share a kept connection (a pool checkout would ping the server
    first: three round trips); when the server ends it, the next write runs on a new one."""

    async def server_pid() -> int:
        async with db.write() as conn:
            await guilds.ensure(conn, 42, now=datetime(2026, 3, 4, tzinfo=UTC))
            return int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())

    checkouts: list[object] = []
    event.listen(db.writer.sync_engine.pool, "checkout", lambda *args: checkouts.append(args))
    first = await server_pid()
    assert await server_pid() == first
    assert len(checkouts) <= 1  # at most the first write checked a connection out (and pinged it)
    async with db.read() as conn:  # an administrator, a failover or a restart ends the session
        assert (await conn.exec_driver_sql(f"SELECT pg_terminate_backend({first})")).scalar_one()
    kept = db._write_conn
    assert kept is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not await database_module._unusable(kept):  # asyncpg reads the server's goodbye from the socket
        assert loop.time() < deadline, "asyncpg never noticed the closed connection"
        await asyncio.sleep(0.01)
    checkouts.clear()
    second = await server_pid()
    assert second != first
    assert len(checkouts) == 1  # the replacement
    if db.on_asyncpg:  # the vote writer's transactions, driven by asyncpg, run on the same kept connection
        async with db.write_asyncpg() as driver:
            assert await driver.fetchval("SELECT pg_backend_pid()") == second
            await driver.execute("DELETE FROM guilds WHERE id = 42")
        assert await server_pid() == second
        assert len(checkouts) == 1
    async with db.read() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM guilds WHERE id = 42")).scalar_one() == 1
