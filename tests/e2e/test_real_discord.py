"""Bugs a Discord-strict sandbox shows in the real bot: the daily post's embeds through live edits and the
close (M1), native-poll final counts (P2, P3), public errors after a public defer (I2), an unreadable native
poll (403), and member polls' votes (P4)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.storage import polls as store
from tests.harness import Harness
from tests.reliability.support import eventually

pytestmark = pytest.mark.timeout(60)


async def _daily_post(h: Harness, style: str) -> tuple[dict, int]:
    """Set up a schedule (poll open one hour), reach its slot; returns (post, poll id)."""
    reply = await h.reply(
        h.mod,
        "schedule setup",
        {"channel": h.channel.id, "time": "09:00", "timezone": "UTC", "poll-hours": 1, "poll-style": style},
    )
    assert "Next post" in reply["data"]["content"], reply
    await h.advance(timedelta(hours=3))  # 06:00 -> 09:00
    posts = [m for m in h.posts() if m.get("embeds")]
    assert len(posts) == 1
    async with h.db.read() as conn:
        poll_id = (await conn.exec_driver_sql("SELECT id FROM polls")).scalar_one()
    return posts[0], poll_id


async def _poll(h: Harness, poll_id: int) -> store.PollRow:
    async with h.db.read() as conn:
        poll = await store.get(conn, poll_id)
    assert poll is not None
    return poll


def _sandbox_counts(h: Harness, message_id: int, poll: store.PollRow) -> dict[int, int]:
    """Discord's voters per option idx (answer ids follow the order the options are shown in)."""
    counts = {o.idx: 0 for o in poll.options}
    for answer_id, users in h.sandbox.poll_voters(message_id).items():
        counts[poll.idx_of_answer(answer_id)] += len(users)
    return counts


@pytest.mark.parametrize("how", ["deadline", "moderator"])
async def test_native_final_counts_are_the_voters_not_unfinalized_or_absent_results(tmp_path, how):
    async with Harness(tmp_path, members=3) as h:
        post, poll_id = await _daily_post(h, "native")
        message_id = int(post["id"])
        a, b, c = h.members
        h.sandbox.poll_vote(h.channel.id, message_id, a.id, 1)
        h.sandbox.poll_vote(h.channel.id, message_id, b.id, 2, dispatch=False)  # a lost event
        h.sandbox.poll_vote(h.channel.id, message_id, c.id, 2)
        if how == "deadline":
            # Discord ends the poll at its expiry too; its tally is finalised only a minute later (P2).
            await h.advance(timedelta(hours=1))
        else:
            # Ended early: End Poll's answer carries no results at all (P3).
            ix = await h.slash(h.mod, "poll close", {"poll": poll_id})
            await h.sandbox.wait_for(lambda: ix.followups, timeout=10)
        await eventually(lambda: _closed(h, poll_id), timeout=10)
        poll = await _poll(h, poll_id)
        expected = _sandbox_counts(h, message_id, poll)
        assert sorted(expected.values(), reverse=True)[:3] == [2, 1, 0] and sum(expected.values()) == 3
        assert {o.idx: o.final_count for o in poll.options} == expected
        assert poll.final_voters == 3


async def _closed(h: Harness, poll_id: int) -> bool:
    return (await _poll(h, poll_id)).status == "closed"


def _embeds(h: Harness, post: dict) -> list[dict]:
    return h.sandbox.message(h.channel.id, int(post["id"]))["embeds"]


@pytest.mark.parametrize("style", ["buttons", "native"])
async def test_daily_post_keeps_its_passage_through_live_edits_and_close(tmp_path, style):
    async with Harness(tmp_path, members=3) as h:
        settings = await h.reply(h.mod, "poll settings", {"live-counts": True})
        assert settings["type"] == 4
        post, poll_id = await _daily_post(h, style)
        passage = _embeds(h, post)[0]
        assert passage["title"].startswith("Today's debate") and len(_embeds(h, post)) == 2
        a, b, _ = h.members
        if style == "buttons":
            click = await h.sandbox.click(h.channel.id, int(post["id"]), f"poll:vote:{poll_id}:0", a.id)
            assert (await click.response())["type"] == 4
            # The live-count edit (the first one goes out at once).
            await h.sandbox.wait_for(lambda: h.sandbox.message(h.channel.id, int(post["id"]))["edited_timestamp"])
            live = _embeds(h, post)
            assert len(live) == 2 and live[0] == passage, live
            assert live[1]["fields"][-1]["name"] == "So far (1 vote)"  # the counts are in the poll's own embed
        else:
            h.sandbox.poll_vote(h.channel.id, int(post["id"]), a.id, 1)
            h.sandbox.poll_vote(h.channel.id, int(post["id"]), b.id, 2)
        await h.advance(timedelta(hours=1))  # the poll closes; its result replaces the dilemma
        await eventually(lambda: _closed(h, poll_id), timeout=10)
        closed = _embeds(h, post)
        assert len(closed) == 2, closed
        assert closed[0] == passage  # the quoted passage and the question are still there
        assert closed[1]["title"].startswith("Results")


def _public_bot_texts(h: Harness) -> str:
    return " ".join(
        (m.get("content") or "") + str(m.get("embeds") or "")
        for m in h.sandbox.messages(h.channel.id)
        if int(m["author"]["id"]) == h.sandbox.bot_user_id
    )


async def test_debate_results_error_is_private_after_all(tmp_path):
    async with Harness(tmp_path, members=1) as h:
        ix = await h.slash(h.members[0], "debate results", {"poll": "#4242"})
        await ix.response(timeout=5)
        await h.sandbox.wait_for(lambda: ix.followups or (ix.original and ix.original.get("content")), timeout=10)
        answer = (ix.followups or [ix.original])[0]
        assert "no such poll" in answer["content"].lower()
        assert answer["flags"] & 64, answer  # only the member sees it
        assert "no such poll" not in _public_bot_texts(h).lower()


async def test_leaning_failure_after_a_public_defer_is_answered_privately(tmp_path, monkeypatch):
    async with Harness(tmp_path, members=1) as h:
        from bot.storage import leaning

        async def broken(*_args, **_kwargs):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(leaning, "poll_finals", broken)
        ix = await h.slash(h.members[0], "leaning show")
        assert (await ix.response(timeout=5))["type"] == 5  # a public "thinking…"

        def private_answer():
            return [f for f in ix.followups if f["flags"] & 64 and "went wrong" in f["content"]]

        await h.sandbox.wait_for(private_answer, timeout=10)
        await h.sandbox.wait_for(lambda: ix.original is None, timeout=10)  # the loading message is gone
        assert "went wrong" not in _public_bot_texts(h)


async def test_post_now_retried_past_the_nonce_window_adopts_the_earlier_post(tmp_path, quick_discord_retries):
    """Discord created the post but answered 502 every time (discord.py's retries reuse the nonce and get
    it back deduped, then give up): the moderator hears it failed. Retried 20 minutes later, past the
    nonce window, the bot finds its earlier post instead of making a second one."""
    async with Harness(tmp_path, members=2) as h:
        reply = await h.reply(h.mod, "schedule setup", {"channel": h.channel.id, "time": "18:00", "timezone": "UTC"})
        assert "Next post" in reply["data"]["content"]
        h.sandbox.faults.server_error("POST /channels/{channel_id}/messages", count=10, status=502)
        first = await h.slash(h.mod, "schedule post-now")
        await h.sandbox.wait_for(lambda: first.followups, timeout=30)
        assert "try again" in first.followups[0]["content"]
        h.sandbox.faults.clear()
        assert len(h.posts()) == 1  # Discord has it

        await h.advance(timedelta(minutes=20))
        retry = await h.slash(h.mod, "schedule post-now")
        await h.sandbox.wait_for(lambda: retry.followups, timeout=15)
        posts = h.posts()
        assert len(posts) == 1, [p["id"] for p in posts]
        assert f"/{posts[0]['id']}" in retry.followups[0]["content"]
        async with h.db.read() as conn:
            rows = (await conn.exec_driver_sql("SELECT status, message_id FROM debates")).all()
            poll_message = (await conn.exec_driver_sql("SELECT message_id FROM polls")).scalar_one()
        assert rows == [("posted", int(posts[0]["id"]))] and poll_message == int(posts[0]["id"])
        assert [int(t["id"]) for t in h.sandbox.threads(h.channel.id)] == [int(posts[0]["id"])]


async def test_native_poll_the_bot_can_no_longer_read_closes_from_stored_votes(tmp_path):
    async with Harness(tmp_path, members=3) as h:
        post, poll_id = await _daily_post(h, "native")
        message_id = int(post["id"])
        a, b, c = h.members
        h.sandbox.poll_vote(h.channel.id, message_id, a.id, 1)
        h.sandbox.poll_vote(h.channel.id, message_id, b.id, 2)
        await eventually(lambda: _stored(h, poll_id, 2), timeout=10)
        # A moderator takes Read Message History away: the poll and its voters can't be read any more.
        history = 1 << 16
        h.sandbox.set_channel_permissions(h.channel.id, deny_bot=history)
        h.sandbox.poll_vote(h.channel.id, message_id, c.id, 2, dispatch=False)  # lost, and now unreadable
        await h.advance(timedelta(hours=1))
        poll = await _poll(h, poll_id)
        assert poll.status == "closed"
        stored = {o.idx: o.final_count for o in poll.options}
        # The votes it had stored (answers 1 and 2), not Discord's 3 voters.
        assert stored[poll.idx_of_answer(1)] == 1 and stored[poll.idx_of_answer(2)] == 1
        assert sum(stored.values()) == 2
        async with h.db.read() as conn:
            jobs = (await conn.exec_driver_sql("SELECT key FROM jobs WHERE key LIKE 'poll-%'")).scalars().all()
        assert jobs == []  # no close retried hourly forever
        result = _embeds(h, post)[-1]
        assert result["title"].startswith("Results") and "couldn't read" in str(result), result
        # /debate results says so too.
        ix = await h.slash(h.members[0], "debate results", {"poll": str(poll_id)})
        await h.sandbox.wait_for(lambda: ix.original and ix.original.get("embeds"), timeout=10)
        assert "couldn't read" in str(ix.original["embeds"])


async def _stored(h: Harness, poll_id: int, n: int) -> bool:
    async with h.db.read() as conn:
        return (await conn.exec_driver_sql(f"SELECT count(*) FROM votes WHERE poll_id = {poll_id}")).scalar() == n


async def test_votes_on_members_own_polls_do_not_read_the_database_each_time(tmp_path, monkeypatch):
    """GUILD_MESSAGE_POLLS delivers votes for every poll in the server (P4): a member's own poll must not
    cost a database read per vote."""
    async with Harness(tmp_path, members=12) as h:
        service = h.bot.polls
        lookups = 0
        handled = 0
        by_message = store.by_message
        native_vote = service.native_vote

        async def counted_lookup(*args, **kwargs):
            nonlocal lookups
            lookups += 1
            return await by_message(*args, **kwargs)

        async def counted_vote(**kwargs):
            nonlocal handled
            try:
                return await native_vote(**kwargs)
            finally:
                handled += 1

        monkeypatch.setattr(store, "by_message", counted_lookup)
        monkeypatch.setattr(service, "native_vote", counted_vote)
        own = h.sandbox.user_message(
            h.channel.id,
            h.members[0].id,
            "",
            poll={
                "question": {"text": "Pizza or pasta on Friday?"},
                "answers": [{"poll_media": {"text": "Pizza"}}, {"poll_media": {"text": "Pasta"}}],
                "duration": 24,
            },
        )
        for i, member in enumerate(h.members):
            h.sandbox.poll_vote(h.channel.id, int(own["id"]), member.id, 1 + i % 2)
        await eventually(lambda: _at_least(lambda: handled, len(h.members)), timeout=10)
        assert lookups == 1
        async with h.db.read() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM votes")).scalar() == 0


async def _at_least(value, n: int) -> bool:
    return value() >= n
