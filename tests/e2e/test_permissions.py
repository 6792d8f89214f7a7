"""The bot invited exactly as the README says, against a sandbox as strict as Discord: pins, events, and
permission checks that name exactly what is missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import discord

from bot.domain.permissions import invite_permissions
from bot.storage import schedules as schedule_store
from tests.harness import Harness

P = discord.Permissions
# What the README asked for before Pin Messages and Create Events existed for bots.
OLD_README = invite_permissions() | P(manage_messages=True, manage_events=True).value


def answer_text(ix) -> str:
    texts = [(ix.original or {}).get("content") or ""] + [m.get("content") or "" for m in ix.followups]
    return "\n".join(texts)


async def setup(h: Harness, **extra) -> dict:
    options = {"channel": h.channel.id, "time": "09:00", "timezone": "Europe/London", **extra}
    return await h.reply(h.mod, "schedule setup", options)


async def status(h: Harness) -> str:
    return (await h.reply(h.mod, "schedule status"))["data"]["content"]


async def channel_perms_seen(h: Harness, predicate) -> None:
    """Wait until the bot's gateway cache shows the channel overwrite just set."""
    await h.sandbox.wait_for(
        lambda: predicate(h.bot.get_channel(h.channel.id).permissions_for(h.bot.get_guild(h.guild.id).me))
    )


# -- pins (M3) -----------------------------------------------------------------------------------------


async def test_pin_setup_with_only_manage_messages_is_refused_naming_pin_messages(tmp_path):
    async with Harness(tmp_path, bot_permissions=OLD_README) as h:
        reply = await setup(h, pin=True)
        text = reply["data"]["content"]
        assert reply["data"]["flags"] & 64
        assert "Pin Messages" in text and "Manage Messages" not in text
        async with h.db.read() as conn:
            assert await schedule_store.get(conn, h.guild.id) is None


async def test_pin_the_daily_post_and_unpin_the_previous_one(tmp_path):
    async with Harness(tmp_path, bot_permissions=invite_permissions({"pin"})) as h:
        reply = await setup(h, pin=True)
        assert "pinned" in reply["data"]["content"], reply
        await h.advance(timedelta(hours=3))
        first = h.posts()
        assert len(first) == 1
        assert [m["id"] for m in h.sandbox.pins(h.channel.id)] == [first[0]["id"]]
        await h.advance(timedelta(days=1))
        posts = h.posts()
        assert len(posts) == 2
        # Only today's debate stays pinned: the channel never fills up with old posts.
        assert [m["id"] for m in h.sandbox.pins(h.channel.id)] == [posts[1]["id"]]
        assert "not pinned" not in await status(h)


async def test_a_failed_pin_is_shown_in_schedule_status(tmp_path):
    async with Harness(tmp_path, bot_permissions=invite_permissions({"pin"})) as h:
        await setup(h, pin=True)
        h.sandbox.set_channel_permissions(h.channel.id, deny_bot=P(pin_messages=True).value)
        await channel_perms_seen(h, lambda p: not p.pin_messages)
        await h.advance(timedelta(hours=3))
        assert len(h.posts()) == 1, "a missing pin does not stop the debate"
        assert h.sandbox.pins(h.channel.id) == []
        text = await status(h)
        assert "not pinned" in text and "Pin Messages" in text, text


async def test_the_250_pin_cap_is_reported_in_schedule_status(tmp_path):
    async with Harness(tmp_path, bot_permissions=invite_permissions({"pin"})) as h:
        await setup(h, pin=True)
        ch = h.sandbox.channels[h.channel.id]
        for i in range(250):  # moderators' own pins fill the channel
            msg = h.sandbox.user_message(h.channel.id, h.mod.id, f"rule {i}")
            ch.pins[int(msg["id"])] = msg["timestamp"]
        await h.advance(timedelta(hours=3))
        assert len(h.posts()) == 1
        text = await status(h)
        assert "not pinned" in text and "250" in text, text


# -- events (R1) ---------------------------------------------------------------------------------------


async def test_plan_with_event_uses_create_events_and_cancel_deletes_the_bots_own_event(tmp_path):
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # events must be in the real future
    async with Harness(tmp_path, now=start, bot_permissions=invite_permissions({"events"})) as h:
        await setup(h, time="06:00", timezone="UTC")
        when = start + timedelta(days=2, hours=3)
        key = "individualism-collectivism/self-reliance-as-a-virtue"
        ix = await h.slash(h.mod, "schedule plan", {"prompt": key, "when": f"{when:%Y-%m-%d %H:%M}", "event": True})
        await ix.response()
        await h.sandbox.wait_for(lambda: "Planned" in answer_text(ix) or "missing" in answer_text(ix).lower())
        assert "event was created" in answer_text(ix), answer_text(ix)
        assert len(h.sandbox.scheduled_events(h.guild.id)) == 1
        choices = await h.sandbox.autocomplete(
            h.guild.id, h.channel.id, h.mod.id, "schedule cancel", {"planned": ""}, focused="planned"
        )
        ix = await h.slash(h.mod, "schedule cancel", {"planned": choices[0]["value"]})
        await ix.response()
        await h.sandbox.wait_for(lambda: "Cancelled" in answer_text(ix))
        assert "event is deleted too" in answer_text(ix)
        assert h.sandbox.scheduled_events(h.guild.id) == []


async def test_plan_with_event_and_only_manage_events_names_create_events(tmp_path):
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    async with Harness(tmp_path, now=start, bot_permissions=OLD_README) as h:
        await setup(h, time="06:00", timezone="UTC")
        when = start + timedelta(days=2, hours=3)
        key = "individualism-collectivism/self-reliance-as-a-virtue"
        ix = await h.slash(h.mod, "schedule plan", {"prompt": key, "when": f"{when:%Y-%m-%d %H:%M}", "event": True})
        first = await ix.response()
        await h.sandbox.wait_for(lambda: "Create Events" in answer_text(ix) or "Create Events" in str(first))
        assert "Manage Events" not in answer_text(ix) + str(first)
        assert h.sandbox.scheduled_events(h.guild.id) == []
        assert h.sandbox.requests_to("/scheduled-events", "POST") == []
