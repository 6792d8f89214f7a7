"""Migrations: the head matches ``tables.py`` exactly, and 0003 → 0004 keeps existing rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select

from bot.storage.database import Database, alembic_config, shipped_head, shipped_revisions
from bot.storage.tables import debates, guilds, metadata, polls, prompt_skips
from tests.conftest import POSTGRES_URL, _fresh_postgres

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


async def test_head_matches_the_tables_module(db: Database):
    async with db.writer.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    assert diff == []


def test_shipped_revisions_read_from_the_files_are_alembics():
    """Start-up decides "nothing to migrate" from the files, without alembic: the same answer alembic gives."""
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///unused.db"))
    assert shipped_revisions() == {rev.revision: rev.down_revision for rev in script.walk_revisions()}
    assert shipped_head() == script.get_current_head()


async def _empty_database_url(sqlite_path):
    """An empty database: the PostgreSQL of scripts/test-postgres, emptied, or a new SQLite file."""
    if POSTGRES_URL:
        await _fresh_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{sqlite_path}"


async def test_a_database_at_the_head_is_not_migrated_again_and_one_behind_is(tmp_path):
    url = await _empty_database_url(tmp_path / "heads.db")
    previous = shipped_revisions()[shipped_head()]
    assert previous is not None
    db = await Database.open(url, migrate=False)
    try:
        await db.migrate(previous)
        assert await db.current_revision() == previous
        await db.migrate()  # one behind the head: alembic runs the last migration
        assert await db.current_revision() == shipped_head()
        await db.migrate()  # at the head: nothing to run
        assert await db.current_revision() == shipped_head()
    finally:
        await db.close()


async def test_two_processes_starting_on_an_empty_database_migrate_it_once(tmp_path):
    """Two clusters started together on a new database (the compose file's migration step skipped, or a
    second machine): one migrates, the other waits and finds the schema at the head. Without the lock
    both ran the first migration and the second failed on tables the first had just created."""
    url = await _empty_database_url(tmp_path / "together.db")
    opened = await asyncio.gather(Database.open(url), Database.open(url), return_exceptions=True)
    try:
        assert not [r for r in opened if isinstance(r, BaseException)], opened
        for db in opened:
            assert await db.current_revision() == shipped_head()
    finally:
        for db in opened:
            if isinstance(db, Database):
                await db.close()


async def test_upgrade_from_0003_keeps_rows_and_adds_the_new_columns(tmp_path):
    url = await _empty_database_url(tmp_path / "old.db")
    old = await Database.open(url, migrate=False)
    try:
        await old.migrate("0003")
        async with old.write() as conn:
            await conn.execute(insert(guilds).values(id=7, joined_at=NOW))
            await conn.execute(_old_debate())
    finally:
        await old.close()
    db = await Database.open(url)
    try:
        # Upgraded from 0003 through 0004 (this change) to whatever the head is now.
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert head is not None and head > "0004"
        assert await db.current_revision() == head
        async with db.read() as conn:
            guild = (await conn.execute(select(guilds.c.id, guilds.c.sensitive_prompts))).one()
            debate = (await conn.execute(select(debates.c.prompt_key, debates.c.dilemma_id))).one()
            assert (await conn.execute(select(polls.c.option_order))).all() == []
            assert (await conn.execute(select(prompt_skips))).all() == []
        assert (guild.id, bool(guild.sensitive_prompts)) == (7, False)
        assert (debate.prompt_key, debate.dilemma_id) == ("individualism-collectivism/x", None)
    finally:
        await db.close()


def _old_debate():
    # Only the 0001 columns: the new ones do not exist yet.
    from sqlalchemy import text

    return text(
        "INSERT INTO debates (guild_id, kind, due_at, prompt_key, paragraph, excerpt, question, theme, "
        "channel_id, nonce, status, created_at) VALUES (7, 'manual', :now, 'individualism-collectivism/x', 1, "
        "'e', 'q', 'balance', 1, 'n1', 'posted', :now)"
    ).bindparams(now=NOW.replace(tzinfo=None))
