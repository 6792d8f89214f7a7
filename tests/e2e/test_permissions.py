"""The bot invited exactly as the README says, against a sandbox as strict as Discord: pins, events, and
permission checks that name exactly what is missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import discord
import pytest

from bot.domain.errors import UserError
from bot.domain.packs import Dilemma, Option
from bot.domain.permissions import invite_permissions
from bot.storage import polls as poll_store
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


# -- naming exactly what is missing (P1, M4, M5, I4) -----------------------------------------------------


async def test_setup_names_the_permission_each_option_needs(tmp_path):
    async with Harness(tmp_path, bot_permissions=invite_permissions({"native-polls"})) as h:
        cases = [
            (P(send_polls=True), {"poll-style": "native"}, "Send Polls"),
            (P(read_message_history=True), {"poll-style": "native"}, "Read Message History"),
            (P(send_messages_in_threads=True), {"thread": True}, "Send Messages in Threads"),
            (P(attach_files=True), {}, "Attach Files"),
        ]
        for denied, options, name in cases:
            h.sandbox.set_channel_permissions(h.channel.id, deny_bot=denied.value)
            await channel_perms_seen(h, lambda p, d=denied: not (p.value & d.value))
            text = (await setup(h, **options))["data"]["content"]
            assert name in text and "Send Messages," not in text, (name, text)
            async with h.db.read() as conn:
                assert await schedule_store.get(conn, h.guild.id) is None
        # Send Polls only matters for native polls.
        h.sandbox.set_channel_permissions(h.channel.id, deny_bot=P(send_polls=True).value)
        await channel_perms_seen(h, lambda p: not p.send_polls)
        assert "Next post" in (await setup(h))["data"]["content"]


async def test_a_native_post_without_send_polls_blocks_naming_send_polls(tmp_path):
    async with Harness(tmp_path, bot_permissions=invite_permissions({"native-polls"})) as h:
        await setup(h, **{"poll-style": "native"})
        h.sandbox.set_channel_permissions(h.channel.id, deny_bot=P(send_polls=True).value)
        await channel_perms_seen(h, lambda p: not p.send_polls)
        await h.advance(timedelta(hours=3))
        assert h.posts() == []
        text = await status(h)
        assert "Blocked:" in text and "missing Send Polls in #debates" in text, text
        assert "Embed Links" not in text


async def test_status_names_what_the_bot_lacks_now(tmp_path):
    async with Harness(tmp_path, bot_permissions=invite_permissions()) as h:
        await setup(h)
        h.sandbox.set_channel_permissions(
            h.channel.id, deny_bot=P(attach_files=True, send_messages_in_threads=True).value
        )
        await channel_perms_seen(h, lambda p: not p.attach_files)
        text = await status(h)
        assert "**Permissions:**" in text and "Attach Files" in text and "Send Messages in Threads" in text, text


async def test_poll_create_checks_the_bots_permissions_in_the_target_channel_not_the_members(tmp_path):
    async with Harness(tmp_path, bot_permissions=invite_permissions({"native-polls"})) as h:
        other = h.sandbox.create_channel(h.guild.id, "announcements")
        # The bot may not post polls there; the moderator may (I4: resolved permissions are the member's).
        h.sandbox.set_channel_permissions(other.id, deny_bot=P(send_polls=True).value)
        h.sandbox.set_channel_permissions(
            other.id, target_id=h.mod_role.id, allow=P(send_polls=True, send_messages=True).value
        )
        await h.sandbox.wait_for(
            lambda: (
                (c := h.bot.get_channel(other.id)) is not None
                and not c.permissions_for(h.bot.get_guild(h.guild.id).me).send_polls
            )
        )
        ix = await h.slash(h.mod, "poll create", {"channel": other.id, "style": "native"})
        reply = await ix.response()
        assert reply["type"] == 4 and reply["data"]["flags"] & 64, reply
        assert "Send Polls" in reply["data"]["content"] and "announcements" in reply["data"]["content"]
        # Buttons need no Send Polls: the form opens.
        ix = await h.slash(h.mod, "poll create", {"channel": other.id})
        assert (await ix.response())["type"] == 9
        # The bot may post in #debates, though the moderator there may not: the form opens too.
        h.sandbox.set_channel_permissions(
            h.channel.id, target_id=h.mod_role.id, deny=P(send_messages=True, send_polls=True).value
        )
        ix = await h.slash(h.mod, "poll create", {"channel": h.channel.id, "style": "native"})
        assert (await ix.response())["type"] == 9


async def test_a_result_without_attach_files_is_published_without_its_chart(tmp_path):
    async with Harness(tmp_path, bot_permissions=invite_permissions()) as h:
        await setup(h, thread=False)
        await h.advance(timedelta(hours=3))
        post = h.posts()[0]
        h.sandbox.set_channel_permissions(h.channel.id, deny_bot=P(attach_files=True).value)
        await channel_perms_seen(h, lambda p: not p.attach_files)
        await h.advance(timedelta(hours=24))
        shown = h.sandbox.message(h.channel.id, int(post["id"]))
        assert shown["attachments"] == []
        assert any("Result" in (e.get("title") or "") or "result" in str(e).lower() for e in shown["embeds"]), shown
        assert shown["edited_timestamp"] is not None


async def test_a_refused_ad_hoc_post_names_what_the_poll_needs(tmp_path):
    """Permissions can change between /poll create's check and the form's submit: Discord's 403 on the
    post is answered with what this poll's style needs, not a fixed "View Channel and Send Messages"."""
    async with Harness(tmp_path, bot_permissions=invite_permissions({"native-polls"})) as h:
        h.sandbox.set_channel_permissions(h.channel.id, deny_bot=P(send_polls=True).value)
        await channel_perms_seen(h, lambda p: not p.send_polls)
        channel = h.bot.get_partial_messageable(h.channel.id, guild_id=h.guild.id)
        with pytest.raises(UserError) as refused:
            await h.bot.polls.post(
                channel,
                guild_id=h.guild.id,
                channel_id=h.channel.id,
                dilemma=Dilemma("Who first?", (Option("Me", -1.0), Option("Us", 1.0))),
                closes_at=h.clock.now() + timedelta(hours=1),
                style="native",
            )
        text = refused.value.message
        assert "Send Polls" in text and "Send Messages" not in text, text
        async with h.db.read() as conn:
            assert await poll_store.open_polls(conn) == []  # the refused poll is not left open
