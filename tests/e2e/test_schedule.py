"""/schedule end to end: a moderator sets it up by slash command, the fake clock brings the post."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import discord

from bot.domain.packs import load_builtin_pack
from bot.storage import jobs as job_store
from bot.storage import schedules as schedule_store
from tests.harness import Harness

SEND = discord.Permissions(send_messages=True).value
EXCERPTS = {p.excerpt for p in load_builtin_pack().prompts}


def post_requests(h: Harness):
    return [r for r in h.sandbox.requests_to(f"/channels/{h.channel.id}/messages", "POST") if r.status == 200]


def answer_text(ix) -> str:
    """What a deferred command finally said (its original message or its follow-ups)."""
    texts = [(ix.original or {}).get("content") or ""] + [m.get("content") or "" for m in ix.followups]
    return "\n".join(texts)


async def setup(h: Harness, **extra):
    options = {"channel": h.channel.id, "time": "09:00", "timezone": "Europe/London", **extra}
    reply = await h.reply(h.mod, "schedule setup", options)
    assert reply["type"] == 4, reply
    return reply["data"]["content"]


async def status(h: Harness) -> str:
    reply = await h.reply(h.mod, "schedule status")
    return reply["data"]["content"]


async def test_setup_then_one_post_with_the_verbatim_excerpt_a_role_ping_and_a_nonce(tmp_path):
    async with Harness(tmp_path) as h:
        role = h.sandbox.create_role(h.guild.id, "Debaters")
        text = await setup(h, **{"ping-role": role.id})
        assert "Next post:" in text and "09:00 Europe/London" in text
        await h.advance(timedelta(hours=2, minutes=59))
        assert h.posts() == []
        await h.advance(timedelta(minutes=1))  # 09:00 London = 09:00 UTC in March
        posts = h.posts()
        assert len(posts) == 1
        post = posts[0]
        embed = post["embeds"][0]
        quoted = embed["description"].split("\n— ")[0]
        assert quoted.startswith("> ") and quoted[2:] in EXCERPTS
        assert "Individualism and Collectivism, ¶" in embed["description"]
        assert post["content"] == f"<@&{role.id}>"
        body = post_requests(h)[0].json
        assert body["allowed_mentions"]["parse"] == []
        assert body["allowed_mentions"]["roles"] == [str(role.id)] or body["allowed_mentions"]["roles"] == [role.id]
        assert not body["allowed_mentions"].get("users")
        assert body["nonce"] and len(body["nonce"]) <= 25 and body["enforce_nonce"] is True
        assert post["components"], "the poll's buttons ride on the post"
        assert len(h.sandbox.threads(h.channel.id)) == 1
        # A day later: the next one, a different prompt.
        await h.advance(timedelta(days=1))
        assert len(h.posts()) == 2
        assert h.posts()[1]["embeds"][0]["description"] != embed["description"]
        assert "Last post:" in await status(h)


async def test_restart_mid_day_posts_nothing_twice(tmp_path):
    async with Harness(tmp_path) as h:
        await setup(h)
        await h.advance(timedelta(hours=3))
        assert len(h.posts()) == 1
        await h.restart()
        await h.advance(timedelta(hours=6))
        await h.restart()
        await h.advance(timedelta(hours=6))
        assert len(h.posts()) == 1
        await h.advance(timedelta(hours=12))  # the next day's 09:00
        assert len(h.posts()) == 2


async def test_a_403_blocks_the_schedule_and_status_says_why(tmp_path):
    async with Harness(tmp_path) as h:
        await setup(h)
        h.sandbox.set_channel_permissions(h.channel.id, deny_bot=SEND)
        await h.sandbox.wait_for(
            lambda: not h.bot.get_channel(h.channel.id).permissions_for(h.bot.get_guild(h.guild.id).me).send_messages
        )
        await h.advance(timedelta(hours=3))
        await h.advance(timedelta(days=2))
        assert h.posts() == []
        assert len(post_requests(h)) == 0
        text = await status(h)
        assert "Blocked:" in text and "missing Send Messages in #debates" in text
        # Fixed: resume posts again.
        h.sandbox.set_channel_permissions(h.channel.id, deny_bot=0)
        await h.sandbox.wait_for(
            lambda: h.bot.get_channel(h.channel.id).permissions_for(h.bot.get_guild(h.guild.id).me).send_messages
        )
        await h.reply(h.mod, "schedule resume")
        await h.advance(timedelta(days=1))
        assert len(h.posts()) == 1


async def test_a_403_from_discord_itself_blocks_after_one_request(tmp_path):
    async with Harness(tmp_path) as h:
        await setup(h)
        h.sandbox.faults.forbidden(f"/channels/{h.channel.id}/messages")
        await h.advance(timedelta(hours=3))
        await h.advance(timedelta(days=1))
        attempts = h.sandbox.requests_to(f"/channels/{h.channel.id}/messages", "POST")
        assert len(attempts) == 1
        assert "Blocked:" in await status(h)


async def test_a_member_without_manage_server_is_refused_and_nothing_changes(tmp_path):
    async with Harness(tmp_path) as h:
        member = h.members[0]
        reply = await h.reply(
            member, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "Europe/London"}
        )
        assert reply["data"]["flags"] & 64
        assert "Manage Server" in reply["data"]["content"]
        async with h.db.read() as conn:
            assert await schedule_store.get(conn, h.guild.id) is None
        await setup(h)
        reply = await h.reply(member, "schedule pause")
        assert "Manage Server" in reply["data"]["content"]
        async with h.db.read() as conn:
            assert (await schedule_store.get(conn, h.guild.id)).active


async def test_bad_input_is_refused_with_a_reason(tmp_path):
    async with Harness(tmp_path) as h:
        reply = await h.reply(
            h.mod, "schedule setup", {"channel": h.channel.id, "time": "25:00", "timezone": "Europe/London"}
        )
        assert "hours go from 00 to 23" in reply["data"]["content"]
        reply = await h.reply(
            h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "../../etc/passwd"}
        )
        assert "timezone" in reply["data"]["content"]
        async with h.db.read() as conn:
            assert await schedule_store.get(conn, h.guild.id) is None
        choices = await h.sandbox.autocomplete(
            h.guild.id,
            h.channel.id,
            h.mod.id,
            "schedule setup",
            {"channel": h.channel.id, "time": "09:00", "timezone": "lond"},
            focused="timezone",
        )
        assert "Europe/London" in [c["value"] for c in choices]


async def test_skip_pause_post_now_and_plan(tmp_path):
    async with Harness(tmp_path) as h:
        await setup(h)
        reply = await h.reply(h.mod, "schedule skip")
        assert "2026-03-02" in reply["data"]["content"]
        await h.advance(timedelta(hours=3))
        assert h.posts() == []
        assert "skipped by a moderator" in await status(h)
        ix = await h.slash(h.mod, "schedule post-now")
        await ix.response()
        await h.sandbox.wait_for(lambda: "Posted" in answer_text(ix))
        assert len(h.posts()) == 1
        assert len(h.posts()) == 1


async def test_plan_a_one_off_debate_with_a_discord_event(tmp_path):
    # The sandbox refuses events in the past by the real clock, so this test starts at the real time.
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    async with Harness(tmp_path, now=start) as h:
        await setup(h, time="06:00", timezone="UTC")
        when = start + timedelta(days=2, hours=3)
        key = "individualism-collectivism/self-reliance-as-a-virtue"
        ix = await h.slash(h.mod, "schedule plan", {"prompt": key, "when": f"{when:%Y-%m-%d %H:%M}", "event": True})
        await ix.response()
        await h.sandbox.wait_for(lambda: "Planned" in answer_text(ix))
        assert "event was created" in answer_text(ix)
        events = h.sandbox.scheduled_events(h.guild.id)
        assert len(events) == 1 and events[0]["entity_metadata"]["location"] == "#debates"
        before = len(h.posts())
        await h.advance(when - start)
        excerpt = load_builtin_pack().prompt("self-reliance-as-a-virtue").excerpt
        planned = [p for p in h.posts()[before:] if p["embeds"][0]["description"].startswith("> " + excerpt)]
        assert len(planned) == 1


async def test_catch_up_window_is_per_server(tmp_path):
    """Back 2 hours after the slot: posted with the default 3-hour window, skipped with a 1-hour one."""
    for hours, expected_posts in ((3, 1), (1, 0)):
        async with Harness(tmp_path / f"w{hours}") as h:
            text = await setup(h, **{"catch-up-hours": hours})
            assert f"within {hours} h" in text
            async with h.db.read() as conn:
                assert (await schedule_store.get(conn, h.guild.id)).catch_up_minutes == hours * 60
            await h.stop_bot()
            h.clock.advance(timedelta(hours=5))  # the slot was 3 hours after the start: now 2 hours late
            await h.start_bot()
            assert len(h.posts()) == expected_posts
            if expected_posts == 0:
                assert "skipped" in (await status(h)).lower()


async def test_cancel_a_planned_debate_and_its_event(tmp_path):
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # events must be in the real future
    async with Harness(tmp_path, now=start) as h:
        await setup(h, time="06:00", timezone="UTC")
        when = start + timedelta(days=2, hours=3)
        key = "individualism-collectivism/self-reliance-as-a-virtue"
        question = load_builtin_pack().prompt("self-reliance-as-a-virtue").question
        ix = await h.slash(h.mod, "schedule plan", {"prompt": key, "when": f"{when:%Y-%m-%d %H:%M}", "event": True})
        await ix.response()
        await h.sandbox.wait_for(lambda: "event was created" in answer_text(ix))
        assert len(h.sandbox.scheduled_events(h.guild.id)) == 1
        assert f"**Planned:** {when:%a %d %b %H:%M} UTC" in await status(h)

        choices = await h.sandbox.autocomplete(
            h.guild.id, h.channel.id, h.mod.id, "schedule cancel", {"planned": ""}, focused="planned"
        )
        assert len(choices) == 1 and choices[0]["name"].startswith(f"{when:%a %d %b %Y %H:%M} · ")
        assert " ".join(question.split())[:20] in choices[0]["name"]
        planned = choices[0]["value"]

        # A member may not cancel; a value that is not a planned debate of this server is refused.
        refused = await h.reply(h.members[0], "schedule cancel", {"planned": planned})
        assert "Manage Server" in refused["data"]["content"]
        for value in ("tomorrow", "999999", "9" * 30):
            ix = await h.slash(h.mod, "schedule cancel", {"planned": value})
            await ix.response()
            await h.sandbox.wait_for(lambda ix=ix: "planned debate" in answer_text(ix))
        assert len(h.sandbox.scheduled_events(h.guild.id)) == 1

        ix = await h.slash(h.mod, "schedule cancel", {"planned": planned})
        await ix.response()
        await h.sandbox.wait_for(lambda: "Cancelled" in answer_text(ix))
        assert "event is deleted too" in answer_text(ix)
        assert h.sandbox.scheduled_events(h.guild.id) == []
        assert "**Planned:**" not in await status(h)

        again = await h.slash(h.mod, "schedule cancel", {"planned": planned})
        await again.response()
        await h.sandbox.wait_for(lambda: "isn't a planned debate" in answer_text(again))

        before = len(h.posts())
        await h.advance(when - start + timedelta(hours=1))
        excerpt = load_builtin_pack().prompt("self-reliance-as-a-virtue").excerpt
        assert not [p for p in h.posts()[before:] if p["embeds"][0]["description"].startswith("> " + excerpt)]
        async with h.db.read() as conn:
            row = (await conn.exec_driver_sql("SELECT status, error FROM debates WHERE id = ?", (int(planned),))).one()
            jobs = (
                await conn.exec_driver_sql("SELECT count(*) FROM jobs WHERE key = ?", (f"plan:{planned}",))
            ).scalar()
        assert tuple(row) == ("skipped", "cancelled by a moderator") and jobs == 0


async def test_a_parked_post_job_shows_in_status_and_resume_arms_it_again(tmp_path):
    """The scheduler parks a job after PARK_AFTER failures (tests/storage/test_scheduler.py); here the
    moderator sees it with its error, and `/schedule resume` arms the daily post again."""
    async with Harness(tmp_path) as h:
        await setup(h)
        async with h.db.write() as conn:
            job = await job_store.get(conn, schedule_store.post_key(h.guild.id))
            await job_store.park(conn, job, error="DiscordServerError('503 Service Unavailable `x`')")
        shown = await status(h)
        assert "**Stopped retrying:** the daily post, after 10 failed attempts" in shown
        assert "503 Service Unavailable 'x'" in shown and "`/schedule resume` arms it again" in shown
        assert "Next post:** not armed" in shown
        await h.advance(timedelta(hours=3))
        assert h.posts() == []  # parked: nothing is posted
        reply = await h.reply(h.mod, "schedule resume")
        assert "Resumed" in reply["data"]["content"]
        assert "Stopped retrying" not in await status(h)
        await h.advance(timedelta(days=1))
        assert len(h.posts()) == 1


async def test_a_scheduled_post_and_its_close_cost_few_write_transactions_and_no_extra_request(tmp_path, monkeypatch):
    """The busy hour's pace is the bot's own work per job (issue 11). Besides the scheduler's claims (one
    transaction for every job due together), a scheduled post is three write transactions: the debate and its
    poll with the send's start (committed before the request leaves), the message attached to the poll (at
    once, before the thread: members click as soon as they see it), the record with the next slot and the
    job's end. Two requests (the message, its thread): no look for an earlier post on a first send. The close
    the next day is two: the close with its job's end, and the result's publish job cancelled once it is out."""
    async with Harness(tmp_path) as h:
        await setup(h)
        writes: list[str] = []
        real_write = h.db.write

        def counted_write(**kw):
            caller = sys._getframe(1)
            writes.append(f"{caller.f_code.co_name}")
            return real_write(**kw)

        monkeypatch.setattr(h.db, "write", counted_write)
        before = len(h.sandbox.requests)
        await h.advance(timedelta(hours=3))  # 09:00 London: the post
        post_writes = [w for w in writes if w != "run_due"]  # claims: the harness's drain and the loop both look
        post_calls = [(r.method, r.route) for r in h.sandbox.requests[before:]]
        assert len(h.posts()) == 1
        writes.clear()
        before = len(h.sandbox.requests)
        await h.advance(timedelta(days=1))  # the next 09:00: yesterday's poll closes, today's post goes out
        both_writes = [w for w in writes if w != "run_due"]
        both_calls = [(r.method, r.route) for r in h.sandbox.requests[before:]]
        assert len(h.posts()) == 2
        async with h.db.read() as conn:
            left = (await conn.exec_driver_sql("SELECT kind FROM jobs ORDER BY kind")).scalars().all()
    message, thread = (
        ("POST", "/channels/{channel_id}/messages"),
        ("POST", "/channels/{channel_id}/messages/{message_id}/threads"),
    )
    assert post_calls == [message, thread], post_calls
    assert len(post_writes) == 3, post_writes
    assert len(both_writes) == 3 + 2, both_writes
    edit = ("PATCH", "/channels/{channel_id}/messages/{message_id}")
    assert sorted(both_calls) == sorted([message, thread, edit, message]), both_calls  # + the result, the summary
    assert left == ["debate-post", "poll-close"], left  # tomorrow's post and today's close, nothing else
