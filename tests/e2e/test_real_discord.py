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


def _sandbox_counts(h: Harness, message_id: int, n: int) -> list[int]:
    voters = h.sandbox.poll_voters(message_id)
    return [len(voters.get(i + 1, [])) for i in range(n)]


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
        expected = _sandbox_counts(h, message_id, len(poll.options))
        assert expected[:3] == [1, 2, 0] and sum(expected) == 3
        assert [o.final_count for o in poll.options] == expected
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
