"""F1 and F1b: the bot as a process of its own (``commonground run``, forked: tests/reliability/forked.py),
killed with SIGKILL.

F1: SIGKILL at a seeded random moment of a vote burst, then restart: every acknowledged vote is stored,
nothing is stored that was not sent, integrity_check passes, and the buttons of the old message still
work. F1b: SIGKILL just before (or in the middle of) a scheduled post, restart after the slot: exactly
one post under the catch-up rule (a slot missed by at most 3 hours is posted late, once; later, skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.storage.database import make_url
from tests.harness import START
from tests.reliability import forked
from tests.reliability.support import (
    check_database,
    click,
    eventually,
    post_poll,
    stored_votes,
    world,
)


class BotProcess:
    """One run of the bot in its own process, pointed at the test's sandbox and database."""

    def __init__(self, h, log: Path, *, now: datetime | None = None, log_level: str = "WARNING") -> None:
        self.h = h
        self.log = log
        self.now = now
        self.log_level = log_level
        self.proc: forked.ForkedProcess | None = None

    async def start(self, *, timeout: float = 30) -> None:
        sb = self.h.sandbox
        env = {
            **os.environ,
            "DISCORD_TOKEN": sb.token,
            "DISCORD_API_BASE": sb.api_base,
            "DISCORD_GATEWAY_URL": sb.gateway_url,
            "DATABASE_URL": self.h.settings.database_url,
            "LOG_LEVEL": self.log_level,
        }
        if self.now is not None:
            env["RELIABILITY_NOW"] = self.now.isoformat()
        identified = sb.identify_count
        entry: forked.Entry = "run" if self.now is None else "botproc"
        self.proc = await forked.start(entry, env=env, log=self.log)
        await sb.wait_for(lambda: sb.identify_count > identified or self.proc.returncode is not None, timeout)
        assert self.proc.returncode is None, self.log.read_text()[-3000:]
        # Ready for members: a command is answered (interactions sent before READY may go unanswered).
        for _ in range(int(timeout)):
            ix = await self.h.slash(self.h.members[0], "about")
            with contextlib.suppress(TimeoutError):
                await ix.response(timeout=1)
                return
        raise TimeoutError(f"the bot process did not answer /about: {self.log.read_text()[-3000:]}")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 10)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                await self.kill()


def integrity(path: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# -- F1 ----------------------------------------------------------------------------------------------


async def burst_then_kill(h, bot: BotProcess, members, poll_id: int, message_id: int, rng: random.Random):
    """Members click one after another, a few milliseconds apart, so answers and commits are always in
    flight; the process is SIGKILLed the moment the seeded number of answers has arrived."""
    sb = h.sandbox
    kill_after = rng.randrange(1, len(members) // 2)
    answered = 0
    killed = False

    async def one(m, idx):
        nonlocal answered, killed
        c = await click(sb, h.channel.id, message_id, poll_id, idx, m.id, timeout=3)
        if c.first_type is not None:
            answered += 1
            if answered >= kill_after and not killed:
                killed = True
                bot.proc.send_signal(signal.SIGKILL)  # at once: other clicks are mid-commit or mid-answer
        return c

    tasks = []
    for m in members:
        if killed:
            break
        tasks.append(asyncio.ensure_future(one(m, rng.randrange(3))))
        await asyncio.sleep(rng.uniform(0.001, 0.01))  # pacing the arrivals, not waiting for a result
    clicks = await asyncio.gather(*tasks)
    if not killed:
        await bot.kill()
    await asyncio.wait_for(bot.proc.wait(), 10)
    return clicks, killed


async def run_f1(tmp_path, summary, *, runs: int, per_run: int, case: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # `commonground run` uses the real clock
    async with world(tmp_path, now=now) as (h, _):
        sb = h.sandbox
        crowd = [sb.add_member(h.guild.id, f"f1-{i}") for i in range(runs * per_run + 1)]
        poll_id, message_id = await post_poll(h, hours=48)
        await h.stop_bot()
        path = make_url(h.settings.database_url).database
        log = tmp_path / "bot.log"
        clicks = []
        kills = 0
        for run in range(runs):
            rng = random.Random(run)
            bot = BotProcess(h, log)
            await bot.start()
            members = crowd[run * per_run : (run + 1) * per_run]
            burst, was_killed = await burst_then_kill(h, bot, members, poll_id, message_id, rng)
            clicks += burst
            kills += was_killed
            assert integrity(path) == "ok"
        final = BotProcess(h, log)
        await final.start()
        try:
            late = crowd[-1]
            after = await click(sb, h.channel.id, message_id, poll_id, 1, late.id, timeout=5)
            changed = await click(sb, h.channel.id, message_id, poll_id, 2, late.id, timeout=5)
        finally:
            await final.stop()
        stored = await stored_votes(h.db)
        sent = {(c.user_id, c.idx) for c in clicks}
        acked = [c for c in clicks if c.acked]
        lost = sum(1 for c in acked if stored.get((poll_id, c.user_id)) != c.idx)
        ghosts = sum(1 for (p, u), i in stored.items() if u != late.id and (u, i) not in sent)
        await check_database(h.db)
        summary(
            case,
            "fault",
            runs=runs,
            kills=kills,
            sent=len(clicks),
            acked=len(acked),
            stored=len(stored) - 1,
            lost=lost,
            double=ghosts,
            unanswered=sum(1 for c in clicks if c.first_type is None),
        )
        assert kills == runs
        assert lost == 0 and ghosts == 0
        assert after.acked and changed.acked and stored[(poll_id, late.id)] == 2


async def test_f1_sigkill_during_a_vote_burst_fast(tmp_path, summary):
    await run_f1(tmp_path, summary, runs=3, per_run=60, case="F1 SIGKILL in a burst, 3 runs")


@pytest.mark.soak
@pytest.mark.timeout(600)
async def test_f1_sigkill_during_a_vote_burst_soak(tmp_path, summary):
    await run_f1(tmp_path, summary, runs=30, per_run=100, case="F1 SIGKILL in a burst, 30 seeded runs")


# -- F1b ---------------------------------------------------------------------------------------------

SLOT = START.replace(hour=9)  # Monday 09:00 UTC; the harness starts at 06:00


async def scheduled_world(tmp_path):
    """A schedule set up through the real command, then the in-process bot stopped."""
    cm = world(tmp_path)
    h, _ = await cm.__aenter__()
    reply = await h.reply(h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "UTC"})
    assert "Next post" in reply["data"]["content"]
    await h.stop_bot()
    return cm, h


def bot_posts(h) -> list[dict]:
    return [m for m in h.posts() if m.get("embeds")]


async def debates(h) -> list[tuple]:
    async with h.db.read() as conn:
        return (await conn.exec_driver_sql("SELECT slot_date, status, message_id FROM debates")).all()


async def the_post_works(h, post: dict) -> None:
    """The adopted post is live: the debate row names it (and its thread), its buttons take votes, and
    ``/debate today`` links it."""
    sb = h.sandbox
    async with h.db.read() as conn:
        row = (await conn.exec_driver_sql("SELECT status, message_id, thread_id FROM debates")).one()
        poll_id, message_id = (await conn.exec_driver_sql("SELECT id, message_id FROM polls")).one()
    assert row[0] == "posted" and row[1] == int(post["id"]) and message_id == int(post["id"])
    threads = sb.threads(h.channel.id)
    assert len(threads) == 1 and row[2] == int(threads[0]["id"])
    voted = await click(sb, h.channel.id, int(post["id"]), poll_id, 0, h.members[1].id, timeout=10)
    assert voted.acked, voted.text
    today = await h.reply(h.members[0], "debate today", timeout=10)
    assert f"/{post['id']}" in today["data"]["content"], today


async def kill_mid_request(h, log: Path, now: datetime, route: str, action=None) -> None:
    """Start the bot at ``now`` and SIGKILL it the moment Discord has done what ``route`` asked (the
    message or the thread exists) but before the bot hears the answer."""
    sb = h.sandbox
    rule = sb.faults.slow_answer(route, seconds=30)
    first = BotProcess(h, log, now=now)
    mark = len(sb.requests)
    await first.start()
    if action is not None:
        await action()

    async def done():
        return rule.fired and any(f"{r.method} {r.route}" == route and r.status for r in sb.requests[mark:])

    await eventually(done, timeout=20, every=0.005)
    await first.kill()
    sb.faults.clear()


@pytest.mark.parametrize(
    ("kill_at", "restart_after"),
    [
        ("before the slot", timedelta(minutes=30)),
        # Restarted 1 minute after the kill: within Discord's nonce window (at most 2 minutes).
        ("POST /channels/{channel_id}/messages", timedelta(minutes=2)),
        # 20 minutes later: past the window, where a re-sent nonce makes a second message.
        ("POST /channels/{channel_id}/messages", timedelta(minutes=20)),
        ("POST /channels/{channel_id}/messages/{message_id}/threads", timedelta(minutes=20)),
        # Past the 3-hour catch-up window nothing is sent any more, but the post Discord has is adopted.
        ("POST /channels/{channel_id}/messages", timedelta(hours=3, minutes=30)),
    ],
)
async def test_f1b_sigkill_around_a_scheduled_post(tmp_path, summary, kill_at, restart_after):
    cm, h = await scheduled_world(tmp_path)
    try:
        sb = h.sandbox
        log = tmp_path / "bot.log"
        # The sandbox's nonce window runs on the same fake time as the bot processes.
        if kill_at == "before the slot":
            h.clock.set(SLOT - timedelta(minutes=1))
            first = BotProcess(h, log, now=SLOT - timedelta(minutes=1))
            await first.start()
            await first.kill()
            assert bot_posts(h) == []
        else:
            # The slot is due as the bot starts.
            h.clock.set(SLOT + timedelta(minutes=1))
            await kill_mid_request(h, log, SLOT + timedelta(minutes=1), kill_at)
        h.clock.set(SLOT + restart_after)
        second = BotProcess(h, log, now=SLOT + restart_after)
        await second.start()
        try:
            await sb.wait_for(lambda: bot_posts(h), timeout=20)

            async def recorded():
                return [r[1] for r in await debates(h)] == ["posted"]

            await eventually(recorded, timeout=20)
            posts = bot_posts(h)
            if kill_at != "before the slot":
                await the_post_works(h, posts[0])
        finally:
            await second.stop()
        posts = bot_posts(h)
        rows = await debates(h)
        async with h.db.read() as conn:
            job = (await conn.exec_driver_sql("SELECT due_at FROM jobs WHERE kind = 'debate-post'")).scalar_one()
        await check_database(h.db)
        where = kill_at if kill_at.startswith("before") else f"mid {kill_at.split('/')[-1]} request"
        summary(
            f"F1b SIGKILL {where}, restart +{int(restart_after.total_seconds() // 60)} min",
            "fault",
            posts=len(posts),
            threads=len(sb.threads(h.channel.id)),
        )
        assert len(posts) == 1, [(p["id"], p["timestamp"]) for p in posts]
        assert rows == [(SLOT.date().isoformat(), "posted", int(posts[0]["id"]))]
        assert str(job).startswith((SLOT + timedelta(days=1)).date().isoformat())  # the next day is armed
        threads = sb.threads(h.channel.id)
        assert len(threads) <= 1
        if threads:  # the debate row names the thread, even when the first attempt created it
            async with h.db.read() as conn:
                thread_id = (await conn.exec_driver_sql("SELECT thread_id FROM debates")).scalar_one()
            assert thread_id == int(threads[0]["id"])
    finally:
        await cm.__aexit__(None, None, None)


@pytest.mark.parametrize("restart_after", [timedelta(minutes=1), timedelta(minutes=20), timedelta(hours=3, minutes=30)])
async def test_f1b_sigkill_as_post_now_creates_its_message(tmp_path, summary, restart_after):
    """``/schedule post-now`` killed the moment Discord creates its message: the restart (within or past
    the nonce window, even past the catch-up window) finds the post and adopts it: one live post, one
    thread, working buttons."""
    cm, h = await scheduled_world(tmp_path)
    try:
        sb = h.sandbox
        log = tmp_path / "bot.log"
        at = SLOT - timedelta(hours=4)  # 05:00: even 3 h 30 later the day's 09:00 slot is not due yet
        h.clock.set(at)

        async def post_now():
            await h.slash(h.mod, "schedule post-now")

        await kill_mid_request(h, log, at, "POST /channels/{channel_id}/messages", post_now)
        assert len(bot_posts(h)) == 1  # Discord has it; the bot died before hearing so
        h.clock.set(at + restart_after)
        second = BotProcess(h, log, now=at + restart_after)
        await second.start()
        try:

            async def recorded():
                return [r[1] for r in await debates(h)] == ["posted"]

            await eventually(recorded, timeout=20)
            await the_post_works(h, bot_posts(h)[0])
        finally:
            await second.stop()
        await check_database(h.db)
        posts = bot_posts(h)
        summary(
            f"F1b SIGKILL mid post-now, restart +{int(restart_after.total_seconds() // 60)} min",
            "fault",
            posts=len(posts),
            threads=len(sb.threads(h.channel.id)),
        )
        assert len(posts) == 1, [p["id"] for p in posts]
        assert len(sb.threads(h.channel.id)) == 1
    finally:
        await cm.__aexit__(None, None, None)


async def test_f1b_restart_after_the_catch_up_window_skips_with_a_note(tmp_path, summary):
    cm, h = await scheduled_world(tmp_path)
    try:
        log = tmp_path / "bot.log"
        first = BotProcess(h, log, now=SLOT - timedelta(minutes=1))
        await first.start()
        await first.kill()
        second = BotProcess(h, log, now=SLOT + timedelta(hours=3, minutes=1))
        await second.start()
        try:

            async def noted():
                async with h.db.read() as conn:
                    note = (await conn.exec_driver_sql("SELECT last_skip_note FROM schedules")).scalar_one()
                return note

            await eventually(noted, timeout=20)
        finally:
            await second.stop()
        await check_database(h.db)
        summary("F1b restart past the 3 h window", "fault", posts=len(bot_posts(h)))
        assert bot_posts(h) == []
    finally:
        await cm.__aexit__(None, None, None)
