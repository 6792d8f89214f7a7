"""The website's rows: a login state is single-use and browser-bound, the audit log keeps 90 days,
the migration builds exactly the tables the code queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.storage import guilds as guild_store
from bot.storage import web as web_store
from bot.storage.tables import metadata

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def test_login_state_is_used_once_and_only_by_its_browser(db):
    async with db.write() as conn:
        await web_store.start_login(conn, state="s1", browser="b1", verifier="v" * 50, next_path="/x", now=NOW)
        await web_store.start_login(conn, state="s2", browser="b1", verifier="v" * 50, next_path="/", now=NOW)
    async with db.write() as conn:
        assert await web_store.take_login(conn, state="s1", browser="b1", now=NOW) == ("v" * 50, "/x")
        assert await web_store.take_login(conn, state="s1", browser="b1", now=NOW) is None  # replayed
        assert await web_store.take_login(conn, state="s2", browser="other", now=NOW) is None  # another browser
        assert await web_store.take_login(conn, state="s2", browser="b1", now=NOW) is None  # burnt by that try


async def test_a_stale_login_state_is_refused(db):
    async with db.write() as conn:
        await web_store.start_login(conn, state="s", browser="b", verifier="v" * 50, next_path="/", now=NOW)
    async with db.write() as conn:
        later = NOW + web_store.LOGIN_TTL + timedelta(seconds=1)
        assert await web_store.take_login(conn, state="s", browser="b", now=later) is None


async def test_audit_keeps_ninety_days_and_forget_me_removes_the_name(db):
    async with db.write() as conn:
        await guild_store.ensure(conn, 1, now=NOW)
        for days in (100, 91, 89, 0):
            await web_store.audit(
                conn, 1, user_id=7, user_name="mod", action="schedule", detail=f"{days}", now=NOW - timedelta(days=days)
            )
    async with db.write() as conn:
        entries = await web_store.audit_log(conn, 1)  # writing today's row purged those past 90 days
    assert [e.detail for e in entries] == ["0", "89"]
    async with db.write() as conn:
        assert await web_store.purge_audit(conn, now=NOW + timedelta(days=2)) == 1
        assert [e.detail for e in await web_store.audit_log(conn, 1)] == ["0"]
    async with db.write() as conn:
        assert await web_store.forget_user(conn, 7) == 1
        entries = await web_store.audit_log(conn, 1)
    assert {(e.user_id, e.user_name) for e in entries} == {(None, "(forgotten)")}


async def test_migrations_match_the_tables(db):
    async with db.read() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    assert [d for d in diff if "web_" in repr(d)] == []
