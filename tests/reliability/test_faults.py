"""Faults the bot must survive in-process: F3 (gateway drop, invalid session), F4 (429 storm while
posts are due), F5 (502 after the message was created), F6 (write lock held by another connection),
F7 (disk full), F11 (removed from a server), F12 (403/404 on a post), F13 (poll message deleted)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from datetime import timedelta

import pytest

from bot.storage import polls as poll_store
from bot.storage.database import make_url
from tests.reliability.support import (
    DEADLINE,
    STORE_FAILED,
    check_database,
    click,
    daily_schedule,
    diff,
    dump,
    gather_limited,
    mention_violations,
    p99,
    post_poll,
    reconciled_after,
    stored_votes,
    tiny_chart,
    world,
)

SEND_MESSAGES = 1 << 11


def posts_in(sb, channel_id: int) -> list[dict]:
    return [m for m in sb.messages(channel_id) if int(m["author"]["id"]) == sb.bot_user_id]


async def schedule(h, server, *, time_: str = "09:00", tz: str = "UTC") -> None:
    """A daily schedule for an extra server, saved through the debate service (the command's back end)."""
    await daily_schedule(h.bot.debates, server.guild.id, server.channel.id, post_time=time_, timezone=tz)


def lost_and_double(clicks, stored) -> tuple[int, int]:
    sent = {(c.poll_id, c.user_id, c.idx) for c in clicks}
    lost = sum(1 for c in clicks if c.acked and stored.get((c.poll_id, c.user_id)) != c.idx)
    double = sum(1 for (p, u), i in stored.items() if (p, u, i) not in sent)
    return lost, double


# -- F3 ----------------------------------------------------------------------------------------------


async def test_f3_gateway_drop_resume_and_invalid_session(tmp_path, summary):
    async with world(tmp_path) as (h, _):
        sb = h.sandbox
        crowd = [sb.add_member(h.guild.id, f"f3-{i}") for i in range(300)]
        poll_id, message_id = await post_poll(h)
        rng = random.Random(3)
        plan = [(m, rng.randrange(3)) for m in crowd]
        done = 0

        async def one(m, idx):
            nonlocal done
            c = await click(sb, h.channel.id, message_id, poll_id, idx, m.id)
            done += 1
            return c

        async def faults():
            await sb.wait_for(lambda: done >= 100, timeout=30)
            await sb.drop_gateway(resume=True)  # interactions sent meanwhile are replayed on RESUME
            await sb.wait_for(lambda: done >= 200, timeout=30)
            await sb.drop_gateway(resume=True, code=1006)

        burst = asyncio.ensure_future(gather_limited((one(m, i) for m, i in plan), 20))
        await faults()
        clicks = await burst
        assert sb.resume_count >= 2
        stored = await stored_votes(h.db)
        lost, double = lost_and_double(clicks, stored)
        acked = sum(c.acked for c in clicks)

        # An invalid session: a new READY, so on_ready (and the reconciliation) runs again, twice.
        await reconciled_after(h, sb.invalidate_session)
        first = await dump(h.db)
        await reconciled_after(h, sb.invalidate_session)
        second = await dump(h.db)
        changed = diff(first, second)
        after = await click(sb, h.channel.id, message_id, poll_id, 2, crowd[0].id)
        await check_database(h.db)
        summary(
            "F3 drop+RESUME x2, invalid session x2",
            "fault",
            sent=len(plan),
            acked=acked,
            stored=len(stored),
            lost=lost,
            double=double,
            p99=f"{p99([c.latency for c in clicks]):.3f}s",
            resumes=sb.resume_count,
            identifies=sb.identify_count,
            second_reconcile_changes=sum(a + b for a, b in changed.values()),
        )
        assert acked == len(plan)
        assert lost == 0 and double == 0 and len(stored) == len(plan)
        assert changed == {}
        assert sb.identify_count >= 3
        assert after.text.startswith("You chose")


# -- F4 ----------------------------------------------------------------------------------------------


async def run_f4(tmp_path, summary, *, servers: int, case: str) -> None:
    async with world(tmp_path, servers=servers, members=0) as (h, extra):
        for s in extra:
            await schedule(h, s)
        h.sandbox.faults.random_429(0.3, seed=4, global_fraction=0.25)
        before = len(h.sandbox.requests)
        await h.advance(timedelta(hours=3, minutes=5), timeout=180)  # 09:00 UTC passes: every post is due
        h.sandbox.faults.clear()
        limited = [r for r in h.sandbox.requests[before:] if r.status == 429]
        global_ = [r for r in limited if (r.response or {}).get("global")]
        counts = [len(posts_in(h.sandbox, s.channel.id)) for s in extra]
        async with h.db.read() as conn:
            posted = (await conn.exec_driver_sql("SELECT count(*) FROM debates WHERE status = 'posted'")).scalar_one()
            attached = (
                await conn.exec_driver_sql("SELECT count(*) FROM polls WHERE message_id IS NOT NULL")
            ).scalar_one()
        await check_database(h.db)
        summary(
            case,
            "fault",
            due=servers,
            delivered=sum(1 for n in counts if n == 1),
            duplicates=sum(max(0, n - 1) for n in counts),
            missed=sum(1 for n in counts if n == 0),
            r429=len(limited),
            global_429=len(global_),
        )
        assert counts == [1] * servers
        assert posted == servers and attached == servers
        assert limited and global_
        assert mention_violations(h.sandbox) == []


async def test_f4_429_storm_while_posts_are_due_fast(tmp_path, summary):
    await run_f4(tmp_path, summary, servers=30, case="F4 30% 429 (25% global), 30 posts")


@pytest.mark.soak
@pytest.mark.timeout(300)
async def test_f4_429_storm_while_posts_are_due_soak(tmp_path, summary):
    await run_f4(tmp_path, summary, servers=100, case="F4 30% 429 (25% global), 100 posts")


# -- F5 ----------------------------------------------------------------------------------------------


async def test_f5_502_after_the_scheduled_post_was_created(tmp_path, summary):
    async with world(tmp_path, servers=1, members=0) as (h, (s,)):
        await schedule(h, s)
        rule = h.sandbox.faults.server_error("POST /channels/{channel_id}/messages", count=1, after_effect=True)
        await h.advance(timedelta(hours=3, minutes=5))
        posts = posts_in(h.sandbox, s.channel.id)
        async with h.db.read() as conn:
            rows = (await conn.exec_driver_sql("SELECT status, message_id FROM debates")).all()
        await check_database(h.db)
        summary("F5 502 after create (scheduled post)", "fault", fired=rule.fired, messages=len(posts))
        assert rule.fired == 1
        assert len(posts) == 1
        assert rows == [("posted", int(posts[0]["id"]))]


async def test_f5_502_after_an_ad_hoc_poll_was_created(tmp_path, summary):
    async with world(tmp_path) as (h, _):
        rule = h.sandbox.faults.server_error("POST /channels/{channel_id}/messages", count=1, after_effect=True)
        try:
            poll_id, message_id = await post_poll(h)
        except Exception as exc:  # a refusal is acceptable only if nothing was left behind
            poll_id, message_id = None, None
            failure = repr(exc)
        else:
            failure = None
        posts = posts_in(h.sandbox, h.channel.id)
        async with h.db.read() as conn:
            open_polls = await poll_store.open_polls(conn)
        await check_database(h.db)
        summary("F5 502 after create (/poll post)", "fault", fired=rule.fired, messages=len(posts))
        assert rule.fired == 1
        assert len(posts) == 1, failure
        assert [p.message_id for p in open_polls] == [int(posts[0]["id"])] == [message_id], poll_id


async def test_f5_5xx_on_the_thread_is_retried_and_the_post_gets_its_thread(tmp_path, summary):
    """Discord fails the thread after the post went out (a 503 as an outage begins, a bad minute): the
    debate is not left without its thread. The job is retried, finds its post (not a second one) and opens
    the thread then. Before, the debate stood threadless with a note, as for a lost permission."""
    async with world(tmp_path, servers=1, members=0) as (h, (s,)):
        await schedule(h, s)
        threads = "POST /channels/{channel_id}/messages/{message_id}/threads"
        rule = h.sandbox.faults.server_error(threads, count=1, status=503, after_effect=False)  # discord.py: no retry
        await h.advance(timedelta(hours=3, minutes=5))
        assert rule.fired == 1 and h.sandbox.threads(s.channel.id) == []
        await h.advance(timedelta(minutes=30))  # the job's retry
        posts = posts_in(h.sandbox, s.channel.id)
        made = h.sandbox.threads(s.channel.id)
        async with h.db.read() as conn:
            rows = (await conn.exec_driver_sql("SELECT status, message_id, thread_id, error FROM debates")).all()
        await check_database(h.db)
        summary("F5 503 on the thread", "fault", fired=rule.fired, messages=len(posts), threads=len(made))
        assert len(posts) == 1 and len(made) == 1
        assert rows == [("posted", int(posts[0]["id"]), int(made[0]["id"]), None)]  # no "no thread" note


# -- F6 ----------------------------------------------------------------------------------------------


def hold_write_lock(path: str, seconds: float, held: threading.Event, released: threading.Event) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE guilds SET name = name")
        held.set()
        time.sleep(seconds)  # the one real duration the spec asks for: another process holding the lock
        conn.execute("COMMIT")
    finally:
        conn.close()
        released.set()


async def run_f6(tmp_path, summary, *, clicks: int, lock_seconds: float, case: str, timing: bool = True) -> None:
    """``timing``: also hold the first vote after the lock to its 2 s recovery bar (wall clock)."""
    async with world(tmp_path) as (h, _):
        sb = h.sandbox
        crowd = [sb.add_member(h.guild.id, f"f6-{i}") for i in range(clicks + 1)]
        poll_id, message_id = await post_poll(h)
        path = make_url(h.settings.database_url).database
        held, released = threading.Event(), threading.Event()
        holder = asyncio.ensure_future(asyncio.to_thread(hold_write_lock, path, lock_seconds, held, released))
        await asyncio.wait_for(asyncio.to_thread(held.wait, 10), 15)
        locked_at = time.monotonic()
        rng = random.Random(6)
        spacing = lock_seconds / clicks  # the clicks arrive while the lock is held

        async def one(i, m):
            await asyncio.sleep(i * spacing)  # pacing the arrivals, not waiting for anything to settle
            return await click(sb, h.channel.id, message_id, poll_id, rng.randrange(3), m.id, timeout=60)

        results = await asyncio.gather(*(one(i, m) for i, m in enumerate(crowd[:-1])))
        await holder
        release_at = time.perf_counter()
        probe = await click(sb, h.channel.id, message_id, poll_id, 0, crowd[-1].id)
        recovery = time.perf_counter() - release_at
        stored = await stored_votes(h.db)
        lost, double = lost_and_double([*results, probe], stored)
        failed = [c for c in results if STORE_FAILED in c.text]
        false_failure = [c for c in failed if (c.poll_id, c.user_id) in stored]
        other = [c for c in results if not c.acked and STORE_FAILED not in c.text]
        late = [c for c in results if c.latency >= DEADLINE]
        rejected = sum(len(c.interaction.rejected_callbacks) for c in results)
        await check_database(h.db)
        summary(
            case,
            "fault",
            sent=len(results),
            acked=sum(c.acked for c in results),
            refused=len(failed),
            stored=len(stored) - 1,
            lost=lost,
            double=double,
            p99_first_answer=f"{p99([c.latency for c in results]):.3f}s",
            recovery=f"{recovery:.3f}s",
        )
        unanswered = [c for c in results if c.first_type is None]
        assert unanswered == [], [
            (f"sent {c.interaction.created_at - locked_at:.2f}s into the lock", c.text[:60]) for c in unanswered
        ]
        assert late == [] and rejected == 0
        assert all(c.ephemeral for c in results)
        assert other == [], [c.text for c in other][:3]
        assert lost == 0 and double == 0 and false_failure == []
        assert probe.acked
        if timing:
            assert recovery < 2.0, recovery


# Every click answered within Discord's 3 s, on the wall clock: with the suite's other worker competing
# for the 2 cores this fails for reasons that are not the code's, so it runs in the serial timing step.
@pytest.mark.timing
async def test_f6_write_lock_held_during_clicks_fast(tmp_path, summary):
    await run_f6(tmp_path, summary, clicks=300, lock_seconds=6.0, case="F6 write lock 6 s, 300 clicks", timing=False)


@pytest.mark.timing
async def test_f6_recovers_within_2s_of_the_lock(tmp_path, summary):
    await run_f6(tmp_path, summary, clicks=300, lock_seconds=6.0, case="F6 write lock 6 s, recovery bar")


@pytest.mark.soak
@pytest.mark.timeout(300)
async def test_f6_write_lock_held_during_clicks_soak(tmp_path, summary):
    await run_f6(tmp_path, summary, clicks=1000, lock_seconds=8.0, case="F6 write lock 8 s, 1,000 clicks")


# -- F7 ----------------------------------------------------------------------------------------------


async def set_max_pages(h, pages: int | None) -> int:
    """Cap (or uncap) the bot's one writer connection at ``pages``; returns the current page count."""
    async with h.db.write_lock, h.db.writer.connect() as conn:
        current = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
        await conn.exec_driver_sql(f"PRAGMA max_page_count = {pages or 1073741823}")
        await conn.commit()
    return current


async def test_f7_disk_full(tmp_path, summary):
    async with world(tmp_path) as (h, _):
        sb = h.sandbox
        crowd = [sb.add_member(h.guild.id, f"f7-{i}") for i in range(600)]
        poll_id, message_id = await post_poll(h)
        current = await set_max_pages(h, 0)
        await set_max_pages(h, current + 1)  # just above the current size
        rng = random.Random(7)
        full = await gather_limited(
            (click(sb, h.channel.id, message_id, poll_id, rng.randrange(3), m.id) for m in crowd[:500]), 50
        )
        stored_full = await stored_votes(h.db)
        refused = [c for c in full if STORE_FAILED in c.text]
        false_success = [c for c in full if c.acked and (c.poll_id, c.user_id) not in stored_full]
        still_up = await h.reply(h.members[0], "about")
        await set_max_pages(h, None)  # space returns
        later = await gather_limited(
            (click(sb, h.channel.id, message_id, poll_id, rng.randrange(3), m.id) for m in crowd[500:]), 50
        )
        retry = await click(sb, h.channel.id, message_id, poll_id, 1, refused[0].user_id) if refused else None
        stored = await stored_votes(h.db)
        lost, double = lost_and_double([*full, *later, *([retry] if retry else [])], stored)
        await check_database(h.db)
        summary(
            "F7 disk full (max_page_count)",
            "fault",
            sent=len(full) + len(later),
            acked=sum(c.acked for c in [*full, *later]),
            refused=len(refused),
            stored=len(stored),
            lost=lost,
            double=double,
        )
        assert refused, "the cap never bit: the test proved nothing"
        assert false_success == []
        assert all(c.acked or STORE_FAILED in c.text for c in full)
        assert still_up["type"] == 4
        assert all(c.acked for c in later) and retry is not None and retry.acked
        assert lost == 0 and double == 0


# -- F11 ---------------------------------------------------------------------------------------------


def rows_naming(dumped: dict[str, list[tuple]], value: int) -> dict[str, int]:
    found = {}
    for table, rows in dumped.items():
        n = sum(1 for r in rows if any(v == value or v == str(value) for v in r))
        if n:
            found[table] = n
    return found


async def identities(h, guild_id: int) -> set[tuple]:
    """The rows of one server, by key: its guild and schedule rows, debates, polls, options and votes."""
    queries = {
        "guilds": "SELECT id FROM guilds WHERE id = ?",
        "schedules": "SELECT guild_id FROM schedules WHERE guild_id = ?",
        "debates": "SELECT id FROM debates WHERE guild_id = ?",
        "polls": "SELECT id FROM polls WHERE guild_id = ?",
        "poll_options": "SELECT o.poll_id, o.idx FROM poll_options o JOIN polls p ON p.id = o.poll_id "
        "WHERE p.guild_id = ?",
        "votes": "SELECT poll_id, user_id, option_idx FROM votes WHERE guild_id = ?",
        "vote_events": "SELECT id FROM vote_events WHERE guild_id = ?",
    }
    out = set()
    async with h.db.read() as conn:
        for table, sql in queries.items():
            out |= {(table, *r) for r in (await conn.exec_driver_sql(sql, (guild_id,))).all()}
    return out


async def test_f11_removed_from_a_server(tmp_path, summary, monkeypatch):
    monkeypatch.setattr("bot.ui.charts.tally_chart", tiny_chart)  # 30 days of results for the kept server
    async with world(tmp_path, servers=2, members=5) as (h, (gone, kept)):
        sb = h.sandbox
        for s in (gone, kept):
            await schedule(h, s)
        polls = {s.guild.id: await post_poll(h, s.channel, hours=72) for s in (gone, kept)}
        for s in (gone, kept):
            pid, mid = polls[s.guild.id]
            for m in s.members:
                assert (await click(sb, s.channel.id, mid, pid, 1, m.id)).acked
        await h.advance(timedelta(hours=4))  # the first post of each
        kept_before = await identities(h, kept.guild.id)

        sb.remove_guild(gone.guild.id)
        await h.sandbox.wait_for(lambda: h.bot.get_guild(gone.guild.id) is None, timeout=10)
        await h.wait_reconciled()
        mark = len(sb.requests)
        for _ in range(29):
            await h.advance(timedelta(days=1), timeout=60)
        calls = [r for r in sb.requests[mark:] if str(gone.channel.id) in r.path or str(gone.guild.id) in r.path]
        before_purge = rows_naming(await dump(h.db), gone.guild.id)
        await h.advance(timedelta(days=1, hours=1), timeout=60)  # past the 30-day retention
        after = await dump(h.db)
        left = rows_naming(after, gone.guild.id)
        kept_after = await identities(h, kept.guild.id)
        await check_database(h.db)
        summary(
            "F11 removed from a server",
            "fault",
            calls_after_removal=len(calls),
            rows_before_purge=sum(before_purge.values()),
            rows_after_purge=sum(left.values()),
            other_server_posts=len(posts_in(sb, kept.channel.id)),
        )
        assert calls == []
        assert before_purge  # kept during the retention time
        assert left == {}
        assert len(posts_in(sb, kept.channel.id)) == 31 + 1  # its first post, 30 days, and its poll message
        assert kept_before <= kept_after  # the other server lost nothing


# -- F12 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("forbidden", "missing"),
        ("not_found", "no longer exists"),
        ("deny", "missing Send Messages"),
    ],
)
async def test_f12_post_refused_blocks_the_schedule(tmp_path, summary, how, reason):
    async with world(tmp_path) as (h, _):
        sb = h.sandbox
        first = await h.reply(
            h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "Europe/London"}
        )
        assert first["type"] == 4 and "Next post" in first["data"]["content"]
        route = f"POST /channels/{h.channel.id}/messages"
        if how == "forbidden":
            sb.faults.forbidden(route, code=50013)
        elif how == "not_found":
            sb.faults.not_found(route, code=10003)
        else:
            sb.set_channel_permissions(h.channel.id, deny_bot=SEND_MESSAGES)
            await sb.wait_for(
                lambda: (
                    not h.bot.get_channel(h.channel.id).permissions_for(h.bot.get_guild(h.guild.id).me).send_messages
                ),
                timeout=5,
            )
        mark = len(sb.requests)
        await h.advance(timedelta(hours=3, minutes=5))  # 09:05 London: the first slot
        for _ in range(2):  # and two more daily slots
            await h.advance(timedelta(days=1), timeout=60)
        failing = [r for r in sb.requests[mark:] if r.status >= 400 and r.path.startswith(f"/channels/{h.channel.id}")]
        status = await h.reply(h.mod, "schedule status")
        text = status["data"]["content"]
        async with h.db.read() as conn:
            jobs = (await conn.exec_driver_sql("SELECT count(*) FROM jobs WHERE kind = 'debate-post'")).scalar_one()
        await check_database(h.db)
        summary(f"F12 {how} on post", "fault", slots=3, failing_requests=len(failing), jobs_left=jobs)
        assert len(failing) <= 1
        assert "**Blocked:**" in text and reason in text, text
        assert jobs == 0  # no retry loop: nothing armed until /schedule resume


# -- F13 ---------------------------------------------------------------------------------------------


async def test_f13_poll_message_deleted_by_a_moderator(tmp_path, summary):
    async with world(tmp_path) as (h, _):
        sb = h.sandbox
        poll_id, message_id = await post_poll(h, hours=2)
        for m in h.members:
            assert (await click(sb, h.channel.id, message_id, poll_id, 0, m.id)).acked
        sb.delete_message(h.channel.id, message_id)
        await h.advance(timedelta(hours=3))
        await h.advance(timedelta(hours=3))  # and the publish retry time, twice over
        await h.advance(timedelta(days=1))
        edits = [r for r in sb.requests if r.method == "PATCH" and r.path.endswith(f"/messages/{message_id}")]
        async with h.db.read() as conn:
            row = await poll_store.get(conn, poll_id)
            jobs = (await conn.exec_driver_sql("SELECT count(*) FROM jobs")).scalar_one()
        await check_database(h.db)
        summary("F13 poll message deleted", "fault", status=row.status, edits_tried=len(edits), jobs_left=jobs)
        assert row.status == "deleted"
        assert {o.idx: o.final_count for o in row.options} == {0: len(h.members), 1: 0, 2: 0}
        assert len(edits) <= 1
        assert jobs == 0
