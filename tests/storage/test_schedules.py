"""Schedules and packs repositories on a real SQLite file with the migrations applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.storage import guilds, jobs
from bot.storage import packs as pack_store
from bot.storage import schedules as store

NOW = datetime(2026, 3, 2, 6, tzinfo=UTC)


async def make(db, guild_id: int, **over):
    values = {"channel_id": 10, "post_time": "09:00", "timezone": "Europe/London", "weekdays": 0b1111111}
    values.update(over)
    async with db.write() as conn:
        await guilds.ensure(conn, guild_id, now=NOW)
        return await store.upsert(conn, guild_id, now=NOW, **values)


async def test_upsert_replaces_and_clears_pause_and_block(db):
    s = await make(db, 1)
    assert s.days == frozenset(range(7)) and s.at.hour == 9 and s.active
    async with db.write() as conn:
        await store.set_paused(conn, 1, True, now=NOW)
        await store.block(conn, 1, "missing Send Messages in #general", now=NOW)
        got = await store.get(conn, 1)
    assert got.paused and got.blocked_reason == "missing Send Messages in #general" and not got.active
    s = await make(db, 1, post_time="18:30", weekdays=0b11111, ping_role_id=99)
    assert s.post_time == "18:30" and s.days == frozenset(range(5)) and s.ping_role_id == 99
    assert s.active and s.blocked_reason is None


async def test_resume_clears_block_and_skip_note_is_kept(db):
    await make(db, 1)
    async with db.write() as conn:
        await store.block(conn, 1, "x", now=NOW)
        await store.note_skip(conn, 1, "skipped", now=NOW)
        await store.resume(conn, 1, now=NOW)
        got = await store.get(conn, 1)
    assert got.active and got.last_skip_note == "skipped"


async def test_active_without_job_finds_exactly_the_unarmed_active_schedules(db):
    for gid in range(1, 7):
        await make(db, gid)
    async with db.write() as conn:
        await jobs.upsert(conn, kind=store.POST_KIND, key=store.post_key(1), due_at=NOW, now=NOW, guild_id=1)
        await store.set_paused(conn, 2, True, now=NOW)
        await store.block(conn, 3, "gone", now=NOW)
        await guilds.mark_removed(conn, 4, now=NOW)
        # A job of another kind for server 5 does not count as its post job.
        await jobs.upsert(conn, kind="poll-close", key="close:5", due_at=NOW, now=NOW, guild_id=5)
    async with db.read() as conn:
        missing = {s.guild_id for s in await store.active_without_job(conn)}
    assert missing == {5, 6}


async def test_bulk_insert_is_idempotent(db):
    for gid in (1, 2):
        await make(db, gid)
    due = NOW + timedelta(hours=3)
    async with db.write() as conn:
        assert await store.insert_post_jobs(conn, [(1, due, "2026-03-02"), (2, due, "2026-03-02")], now=NOW) == 2
        assert await store.insert_post_jobs(conn, [(1, due + timedelta(days=1), "2026-03-03")], now=NOW) == 0
        job = await jobs.get(conn, "post:1")
    assert job.due_at == due and job.payload == {"slot_date": "2026-03-02"} and job.kind == store.POST_KIND


async def test_packs_save_replace_enable_remove(db):
    async with db.write() as conn:
        await guilds.ensure(conn, 1, now=NOW)
        await guilds.ensure(conn, 2, now=NOW)
        assert await pack_store.save(conn, 1, slug="mine", name="Mine", source="a", prompt_count=1, now=NOW)
        assert await pack_store.set_enabled(conn, 1, "mine", False)
        assert not await pack_store.save(conn, 1, slug="mine", name="Mine 2", source="b", prompt_count=2, now=NOW)
        row = await pack_store.get(conn, 1, "mine")
        assert (row.name, row.source, row.prompt_count, row.enabled) == ("Mine 2", "b", 2, False)
        assert await pack_store.list_for(conn, 2) == []
        assert not await pack_store.remove(conn, 2, "mine")  # another server's pack is not reachable
        assert await pack_store.remove(conn, 1, "mine")
        assert await pack_store.count(conn, 1) == 0


async def test_suggestions_are_per_server_and_decided_once(db):
    async with db.write() as conn:
        await guilds.ensure(conn, 1, now=NOW)
        sid = await pack_store.add_suggestion(
            conn, 1, user_id=5, body={"q": "'; DROP TABLE packs; --"}, review_channel_id=9, now=NOW
        )
        assert await pack_store.get_suggestion(conn, sid, 2) is None
        s = await pack_store.get_suggestion(conn, sid, 1)
        assert s.body == {"q": "'; DROP TABLE packs; --"} and s.status == "pending"
        assert await pack_store.decide(conn, sid, "approved", now=NOW)
        assert not await pack_store.decide(conn, sid, "rejected", now=NOW)
        assert (await pack_store.get_suggestion(conn, sid, 1)).status == "approved"
