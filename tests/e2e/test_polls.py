"""Polls end to end: the real bot and discord.py against the sandbox, on a FakeClock.

Members click, change, withdraw; forged custom_ids write nothing; the poll closes on the fake clock and
its message shows the result and chart; a restarted bot still accepts clicks on the old message;
native-poll votes dropped while the bot was down are recovered at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.domain.packs import Dilemma, Option
from bot.storage import polls as store
from tests.harness import Harness

DILEMMA = Dilemma(
    "Who should **you** look after first? @everyone",
    (Option("Myself *first*", -1.0), Option("Both", 0.0), Option("My street", 1.0)),
)
EPHEMERAL = 64


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 5.0) -> Any:
    """Re-check an async condition until it holds (for gateway events with no reply to wait on)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


async def post_poll(h: Harness, *, style: str = "buttons", hours: int = 2) -> tuple[int, int]:
    service = h.bot.polls
    channel = h.bot.get_partial_messageable(h.channel.id, guild_id=h.guild.id)
    poll_id = await service.post(
        channel,
        guild_id=h.guild.id,
        channel_id=h.channel.id,
        dilemma=DILEMMA,
        closes_at=h.clock.now() + timedelta(hours=hours),
        style=style,
    )
    async with h.db.read() as conn:
        poll = await store.get(conn, poll_id)
    return poll_id, poll.message_id


async def click(h: Harness, message_id: int, custom_id: str, member, *, forged: bool = False) -> dict:
    if forged:  # a payload naming any custom_id, as a modified client could send
        msg = h.sandbox.message(h.channel.id, message_id)
        ix = await h.sandbox._send_interaction(
            3, h.guild.id, h.channel.id, member.id, {"custom_id": custom_id, "component_type": 2}, message=msg
        )
    else:
        ix = await h.sandbox.click(h.channel.id, message_id, custom_id, member.id)
    reply = await ix.response(timeout=5)
    reply["ix"] = ix
    return reply


async def votes(h: Harness, poll_id: int) -> dict[int, int]:
    async with h.db.read() as conn:
        result = await conn.exec_driver_sql("SELECT user_id, option_idx FROM votes WHERE poll_id = ?", (poll_id,))
        return dict(result.all())


async def test_click_change_withdraw_close_and_restart(tmp_path):
    async with Harness(tmp_path, members=3) as h:
        a, b, c = h.members
        poll_id, message_id = await post_poll(h)
        posted = h.sandbox.message(h.channel.id, message_id)
        buttons = [comp["custom_id"] for row in posted["components"] for comp in row["components"]]
        assert buttons == [f"poll:vote:{poll_id}:{i}" for i in range(3)]
        assert "@everyone" not in posted["embeds"][0]["description"].replace("@\u200beveryone", "")

        first = await click(h, message_id, f"poll:vote:{poll_id}:0", a)
        assert first["type"] == 4 and first["data"]["flags"] & EPHEMERAL
        assert first["data"]["content"].startswith(
            "You chose *Myself \\*first\\**. You can change your vote until the poll closes <t:"
        )
        await click(h, message_id, f"poll:vote:{poll_id}:2", b)
        changed = await click(h, message_id, f"poll:vote:{poll_id}:1", a)
        assert "You chose *Both*" in changed["data"]["content"]
        assert await votes(h, poll_id) == {a.id: 1, b.id: 2}

        # Clicking your current choice offers to withdraw it; the offer is ephemeral.
        same = await click(h, message_id, f"poll:vote:{poll_id}:2", b)
        assert same["data"]["flags"] & EPHEMERAL and "already chose" in same["data"]["content"]
        offer = same["ix"].original
        withdraw_id = offer["components"][0]["components"][0]["custom_id"]
        assert withdraw_id == f"poll:withdraw:{poll_id}"
        # The offer's button is a registered dynamic item: no view is kept alive (with a 15-minute
        # timer) per offer, which at hundreds of clicks a second filled the heap.
        timers = [t for t in asyncio.all_tasks() if "timeout_task_impl" in t.get_coro().__qualname__]
        assert timers == []
        wix = await h.sandbox.click(h.channel.id, offer["id"], withdraw_id, b.id)
        assert "withdrawn" in (await wix.response())["data"]["content"]
        assert await votes(h, poll_id) == {a.id: 1}

        # Results stay hidden while open: the public message was never edited with counts.
        assert h.sandbox.message(h.channel.id, message_id)["embeds"][0]["title"] == "Dilemma"

        # A restarted bot accepts clicks on the old message (DynamicItem, nothing in memory).
        await h.restart()
        after = await click(h, message_id, f"poll:vote:{poll_id}:2", c)
        assert "You chose *My street*" in after["data"]["content"]
        assert await votes(h, poll_id) == {a.id: 1, c.id: 2}

        await h.advance(timedelta(hours=2))
        closed = h.sandbox.message(h.channel.id, message_id)
        embed = closed["embeds"][0]
        assert embed["title"].startswith("Results")
        assert "2 voters" in embed["fields"][0]["name"]
        assert "Both — 1 (50%)" in embed["fields"][0]["value"] and "My street — 1 (50%)" in embed["fields"][0]["value"]
        assert "based on 2 votes" in embed["fields"][1]["value"]
        assert embed["image"]["url"].endswith(f"poll-{poll_id}.png")
        assert [att["filename"] for att in closed["attachments"]] == [f"poll-{poll_id}.png"]
        assert all(comp["disabled"] for row in closed["components"] for comp in row["components"])
        # Nothing public names a voter.
        for member in (a, b, c):
            assert str(member.id) not in str(embed)
        async with h.db.read() as conn:
            poll = await store.get(conn, poll_id)
        assert poll.status == "closed" and [o.final_count for o in poll.options] == [0, 1, 1]

        # After close a click (forged: the button is disabled) is refused and writes nothing.
        late = await click(h, message_id, f"poll:vote:{poll_id}:0", b, forged=True)
        assert late["data"]["content"] == "This poll isn't available here."
        assert await votes(h, poll_id) == {a.id: 1, c.id: 2}


async def test_forged_custom_ids_are_refused(tmp_path):
    async with Harness(tmp_path, members=2) as h:
        member = h.members[0]
        poll_id, message_id = await post_poll(h)
        # Another server's poll, posted in its own channel.
        other_guild = h.sandbox.create_guild("Elsewhere")
        other_channel = h.sandbox.create_channel(other_guild.id, "general")
        service = h.bot.polls
        async with h.db.write() as conn:
            other_id = await service.create(
                conn,
                guild_id=other_guild.id,
                channel_id=other_channel.id,
                dilemma=DILEMMA,
                closes_at=h.clock.now() + timedelta(hours=1),
            )
        closed_id, closed_message = await post_poll(h)
        await service.close(closed_id)
        for custom_id, msg in [
            (f"poll:vote:{other_id}:0", message_id),  # another server's poll
            (f"poll:vote:{poll_id}:3", message_id),  # option out of range
            (f"poll:vote:{poll_id}:99999999999999999999999", message_id),
            (f"poll:vote:{closed_id}:0", closed_message),  # a closed poll
            (f"poll:vote:{closed_id}:0", message_id),  # a poll that is not this message's
            (f"poll:vote:{poll_id + 1000}:0", message_id),  # no such poll
        ]:
            reply = await click(h, msg, custom_id, member, forged=True)
            assert reply["data"]["content"] == "This poll isn't available here.", custom_id
            assert reply["data"]["flags"] & EPHEMERAL
        async with h.db.read() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM votes")).scalar() == 0
            assert (await conn.exec_driver_sql("SELECT count(*) FROM vote_events")).scalar() == 0


async def test_required_role_and_deleted_message(tmp_path):
    async with Harness(tmp_path, members=1) as h:
        member = h.members[0]
        role = h.sandbox.create_role(h.guild.id, "Voters")
        reply = await h.reply(h.mod, "poll settings", {"required-role": role.id, "live-counts": False})
        assert "Saved" in reply["data"]["content"]
        poll_id, message_id = await post_poll(h)
        refused = await click(h, message_id, f"poll:vote:{poll_id}:0", member)
        assert f"<@&{role.id}>" in refused["data"]["content"] and "can vote" in refused["data"]["content"]
        assert await votes(h, poll_id) == {}
        cleared = await h.reply(h.mod, "poll settings", {"clear-role": True})
        assert "anyone" in cleared["data"]["content"]
        ok = await click(h, message_id, f"poll:vote:{poll_id}:0", member)
        assert "You chose" in ok["data"]["content"]

        # A moderator deletes the poll's message: the close marks it deleted, with one failed edit only.
        h.sandbox.delete_message(h.channel.id, message_id)
        await h.advance(timedelta(hours=2))
        async with h.db.read() as conn:
            poll = await store.get(conn, poll_id)
        assert poll.status == "deleted" and poll.final_voters == 1
        edits = h.sandbox.requests_to(f"/messages/{message_id}", "PATCH")
        assert len(edits) == 1
        await h.advance(timedelta(hours=2))
        assert len(h.sandbox.requests_to(f"/messages/{message_id}", "PATCH")) == 1


async def test_poll_create_modal_positions_and_close_command(tmp_path):
    async with Harness(tmp_path, members=1) as h:
        ix = await h.slash(h.mod, "poll create", {"hours": 3})
        modal_reply = await ix.response()
        assert modal_reply["type"] == 9
        modal = ix.modal
        fields = [row["components"][0]["custom_id"] for row in modal["components"]]
        submit = await h.sandbox.submit_modal(
            h.channel.id,
            h.mod.id,
            modal["custom_id"],
            {fields[0]: "Rules or freedom?", fields[1]: "1. Rules first\n2. Freedom first"},
            from_interaction=ix,
        )
        wizard = await submit.response()
        assert wizard["data"]["flags"] & EPHEMERAL and "Option 1 of 2" in wizard["data"]["content"]
        message = submit.original
        for value in ("1.0", "-1.0"):
            select_id = message["components"][0]["components"][0]["custom_id"]
            step = await h.sandbox.select(h.channel.id, message["id"], select_id, h.mod.id, [value])
            assert (await step.response())["type"] == 7  # the wizard message is updated in place
            message = step.original
        post_id = message["components"][0]["components"][0]["custom_id"]
        done = await h.sandbox.click(h.channel.id, message["id"], post_id, h.mod.id)
        await done.response()
        await eventually(lambda: _posted(done))  # "Poll #n posted": after the message id is stored
        poll_id = await h.bot.polls.latest_poll_id(h.guild.id)
        async with h.db.read() as conn:
            poll = await store.get(conn, poll_id)
        assert [(o.label, o.position) for o in poll.options] == [("Rules first", 1.0), ("Freedom first", -1.0)]
        assert poll.closes_at == h.clock.now() + timedelta(hours=3)
        assert poll.message_id is not None

        choices = await h.sandbox.autocomplete(
            h.guild.id, h.channel.id, h.mod.id, "poll close", {"poll": "rules"}, "poll"
        )
        assert [c["value"] for c in choices] == [poll_id]
        closing = await h.slash(h.mod, "poll close", {"poll": poll_id})
        assert (await closing.response())["type"] == 5  # deferred: the chart renders off the loop
        followup = await eventually(lambda: _followups(closing))
        assert f"Poll #{poll_id} is closed" in followup[0]["content"] and followup[0]["flags"] & EPHEMERAL
        assert poll_id == await h.bot.polls.latest_poll_id(h.guild.id, closed_only=True)
        result = h.sandbox.message(h.channel.id, poll.message_id)
        assert result["embeds"][0]["title"].startswith("Results")
        again = await h.reply(h.mod, "poll close", {"poll": poll_id})
        assert "already closed" in again["data"]["content"]
        member = await h.reply(h.members[0], "poll close", {"poll": poll_id})
        assert "Manage Server" in member["data"]["content"]


async def test_native_poll_votes_recovered_at_start(tmp_path):
    async with Harness(tmp_path, members=4) as h:
        a, b, c, d = h.members
        poll_id, message_id = await post_poll(h, style="native")
        posted = h.sandbox.message(h.channel.id, message_id)
        assert [ans["poll_media"]["text"] for ans in posted["poll"]["answers"]] == [o.label for o in DILEMMA.options]
        h.sandbox.poll_vote(h.channel.id, message_id, a.id, 1)
        h.sandbox.poll_vote(h.channel.id, message_id, b.id, 3)
        await eventually(lambda: _has(h, poll_id, {a.id: 0, b.id: 2}))

        await h.stop_bot()
        h.sandbox.poll_vote(h.channel.id, message_id, c.id, 2, dispatch=False)
        h.sandbox.poll_vote(h.channel.id, message_id, b.id, 3, add=False, dispatch=False)
        h.sandbox.poll_vote(h.channel.id, message_id, d.id, 1, dispatch=False)
        await h.start_bot()
        await eventually(lambda: _has(h, poll_id, {a.id: 0, c.id: 1, d.id: 0}))

        h.sandbox.poll_vote(h.channel.id, message_id, b.id, 2, dispatch=False)  # a lost event
        await h.advance(timedelta(hours=2))
        assert h.sandbox.poll_ended(message_id)  # ended; Discord finalises its own tally later (P2)
        async with h.db.read() as conn:
            poll = await store.get(conn, poll_id)
        assert poll.status == "closed"
        assert [o.final_count for o in poll.options] == [2, 2, 0]
        assert await votes(h, poll_id) == {a.id: 0, b.id: 1, c.id: 1, d.id: 0}


async def _has(h: Harness, poll_id: int, expected: dict[int, int]) -> bool:
    return await votes(h, poll_id) == expected


async def _followups(ix) -> list[dict]:
    return ix.followups


async def _posted(ix) -> bool:
    original = ix.original
    return bool(original and "posted in" in (original.get("content") or ""))
