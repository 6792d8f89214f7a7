"""Reconciliation guards: another application's token refuses to start (every table unchanged); a
guild list that would mark more than the allowed share of known servers as left changes nothing; a
403/404 while a server is in an outage (G4) blocks no schedule and closes no poll as deleted."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from bot.sandbox.server import Sandbox
from bot.storage import polls as poll_store
from bot.storage.database import make_url
from tests.reliability.support import check_database, click, dump_file, eventually, post_poll, world

ROOT = Path(__file__).resolve().parents[2]
COMMONGROUND = Path(sys.executable).with_name("commonground")


async def test_a_token_of_another_application_changes_nothing(tmp_path, summary):
    async with world(tmp_path, servers=3, members=1) as (h, _):
        reply = await h.reply(h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "UTC"})
        assert "Next post" in reply["data"]["content"]
        await h.stop_bot()
        await h.db.close()
        path = Path(make_url(h.settings.database_url).database)
        before = dump_file(path)
        async with Sandbox() as staging:  # another application, with servers of its own
            staging.create_guild("staging server")
            env = {
                **os.environ,
                "DISCORD_TOKEN": staging.token,
                "DISCORD_API_BASE": staging.api_base,
                "DISCORD_GATEWAY_URL": staging.gateway_url,
                "DATABASE_URL": h.settings.database_url,
                "LOG_LEVEL": "WARNING",
            }
            proc = await asyncio.create_subprocess_exec(
                str(COMMONGROUND),
                "run",
                env=env,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        after = dump_file(path)
        lines = [line for line in err.decode().splitlines() if "voice will NOT" not in line]
        changed = sum(len(set(before[t]) ^ set(after.get(t, []))) for t in before)
        summary("wrong-token start", "fault", exit=proc.returncode, rows_changed=changed, stderr_lines=len(lines))
        assert proc.returncode == 2, err.decode()[-3000:]
        assert len(lines) == 1 and "belongs to Discord application" in lines[0], lines
        assert str(h.sandbox.application_id) in lines[0] and str(staging.application_id) in lines[0]
        assert after == before
        assert before["bot_state"] == [("application_id", str(h.sandbox.application_id), before["bot_state"][0][2])]


async def removed_at(h) -> dict[int, object]:
    async with h.db.read() as conn:
        return dict((await conn.exec_driver_sql("SELECT id, removed_at FROM guilds")).all())


async def test_a_reconciliation_that_would_mark_too_many_servers_as_left_does_nothing(tmp_path, summary, caplog):
    async with world(tmp_path, servers=19, members=0) as (h, servers):
        sb = h.sandbox

        async def all_known():
            return len(await removed_at(h)) == 20

        await eventually(all_known, timeout=10)
        # 20 known servers: at most max(5, 10 % of 20) = 5 may be marked as left at once.
        await h.stop_bot()
        for s in servers[:6]:
            sb.remove_guild(s.guild.id)  # six removals while offline: more than allowed
        before = dump_file(Path(make_url(h.settings.database_url).database))
        with caplog.at_level(logging.WARNING, logger="bot.reconcile"):
            await h.start_bot()
            await eventually(lambda: asyncio.sleep(0, "reconciliation refused" in caplog.text), timeout=10)
        after = dump_file(Path(make_url(h.settings.database_url).database))
        refused = [r.getMessage() for r in caplog.records if "reconciliation refused" in r.getMessage()]
        summary("reconcile: 6 of 20 missing", "fault", refused=len(refused), rows_changed=int(after != before))
        assert len(refused) == 1 and "6 of 20 known servers" in refused[0], refused
        assert after == before
        # Five missing is within the limit: they are marked as left.
        await h.stop_bot()
        sb.rejoin_guild(servers[0].guild.id)
        await h.start_bot()

        async def five_left():
            return sum(v is not None for v in (await removed_at(h)).values()) == 5

        await eventually(five_left, timeout=10)


async def test_an_outage_blocks_no_schedule_and_closes_no_poll_as_deleted(tmp_path, summary):
    async with world(tmp_path) as (h, _):
        sb = h.sandbox
        reply = await h.reply(h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "UTC"})
        assert "Next post" in reply["data"]["content"]
        poll_id, message_id = await post_poll(h, hours=2)
        assert (await click(sb, h.channel.id, message_id, poll_id, 0, h.members[0].id)).acked
        sb.start_outage(h.guild.id)
        await sb.wait_for(lambda: h.bot.get_guild(h.guild.id).unavailable, timeout=5)
        # During an outage Discord may answer 403/404 for what is really there.
        sb.faults.forbidden(f"POST /channels/{h.channel.id}/messages", code=50001)
        sb.faults.not_found(f"/messages/{message_id}", code=10008)
        await h.advance(timedelta(hours=3, minutes=5))  # 09:05: the post is due, and the poll's close
        async with h.db.read() as conn:
            blocked = (await conn.exec_driver_sql("SELECT blocked_reason FROM schedules")).scalar()
            status = (await poll_store.get(conn, poll_id)).status
        assert blocked is None and status != "deleted", (blocked, status)
        sb.faults.clear()
        sb.end_outage(h.guild.id)
        await sb.wait_for(lambda: not h.bot.get_guild(h.guild.id).unavailable, timeout=5)

        await h.advance(timedelta(minutes=2))  # the result's publish job (60 s after the close)

        async def delivered():
            await h.bot.scheduler.drain()
            return any(m.get("embeds") for m in h.posts() if int(m["id"]) != message_id)

        await eventually(delivered, timeout=20)
        async with h.db.read() as conn:
            row = await poll_store.get(conn, poll_id)
            blocked = (await conn.exec_driver_sql("SELECT blocked_reason FROM schedules")).scalar()
        await check_database(h.db)
        summary("G4 403/404 during an outage", "fault", blocked=blocked, poll=row.status)
        assert blocked is None
        assert row.status == "closed"
        published = [r for r in sb.requests_to(f"/messages/{message_id}", "PATCH") if r.status == 200]
        tried = [(r.method, r.status, r.fault) for r in sb.requests_to(f"/messages/{message_id}")]
        assert published, f"the result was not published after the outage: {tried}"


async def test_5xx_during_an_outage_are_retried_quietly_and_never_park_a_job(tmp_path, summary, caplog):
    """G4: a server in an outage answers 503 to every call. The post and the result edit due then wait
    for it: one INFO line per retry, no warning, no traceback, not the failure path that parks a job after
    ten; when the server is back (within the post's catch-up window) both go out at once."""
    async with world(tmp_path) as (h, _):
        sb = h.sandbox
        reply = await h.reply(h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "UTC"})
        assert "Next post" in reply["data"]["content"]
        poll_id, message_id = await post_poll(h, hours=2)
        sb.start_outage(h.guild.id)  # every REST call on this server answers 503 from now on
        await sb.wait_for(lambda: h.bot.get_guild(h.guild.id).unavailable, timeout=5)
        caplog.set_level(logging.INFO, logger="bot")
        caplog.clear()
        await h.advance(timedelta(hours=3, minutes=5))  # 09:05: the post is due, and the poll's close
        for _ in range(15):  # two and a half hours of outage: eight backoffs and more
            await h.advance(timedelta(minutes=10))
        records = [r for r in caplog.records if r.name.startswith("bot.")]
        noisy = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in records if r.levelno >= logging.WARNING]
        tracebacks = [r.getMessage() for r in records if r.exc_info]
        waits = Counter(
            r.getMessage().split()[1]
            for r in records
            if "waits for its server" in r.getMessage() and "503" in r.getMessage()
        )
        posts_during = [m for m in h.posts() if int(m["id"]) != message_id]
        assert posts_during == [] and any(r.status == 503 for r in sb.requests), "the outage did not stop the post"
        assert noisy == [] and tracebacks == [], (noisy, tracebacks)
        assert waits[f"post:{h.guild.id}"] >= 5 and waits[f"poll-publish:{poll_id}"] >= 5, waits
        assert h.bot.scheduler.metrics["retried"] == 0 and h.bot.scheduler.metrics["parked"] == 0

        sb.end_outage(h.guild.id)  # back: what waited runs now, not at the end of its backoff

        async def delivered():
            await h.bot.scheduler.drain()
            posted = any(m.get("embeds") for m in h.posts() if int(m["id"]) != message_id)
            edited = [r for r in sb.requests_to(f"/messages/{message_id}", "PATCH") if r.status == 200]
            return posted and bool(edited)

        await eventually(delivered, timeout=20)
        async with h.db.read() as conn:
            blocked = (await conn.exec_driver_sql("SELECT blocked_reason FROM schedules")).scalar()
            row = await poll_store.get(conn, poll_id)
        await check_database(h.db)
        summary("G4 5xx during an outage", "fault", quiet_retries=sum(waits.values()), warnings=len(noisy), parked=0)
        assert blocked is None and row.status == "closed"
