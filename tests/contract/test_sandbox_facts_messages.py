"""The sandbox honours Discord's message, poll and follow-up facts (DISCORD-FACTS rows M1, M2, P2, P3, I2,
P4) as strictly as Discord does. One test per row, named after it; each fails against a kinder sandbox
(one that keeps other embeds, dedupes nonces forever or on real seconds, finalises polls at once, always
sends ``results``, makes every follow-up a new message, or delivers votes only for the bot's own polls).

These talk to the sandbox with a bare discord.py client (no project bot code), like ``tests/e2e``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import discord
import pytest
from discord import app_commands

from bot.domain.clock import FakeClock
from bot.sandbox import Sandbox
from tests.contract.sandbox_client import connected

pytestmark = pytest.mark.timeout(30)

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Client(discord.Client):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_polls = True
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.ready_event = asyncio.Event()
        self.votes: list[discord.RawPollVoteActionEvent] = []

        @self.tree.command(name="public-defer", description="Defer publicly, then follow up ephemerally")
        async def public_defer(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("only you should see this", ephemeral=True)

    async def on_ready(self) -> None:
        self.ready_event.set()

    async def on_raw_poll_vote_add(self, payload: discord.RawPollVoteActionEvent) -> None:
        self.votes.append(payload)


@pytest.fixture
async def env() -> AsyncIterator[tuple[Sandbox, Client, FakeClock, object, object]]:
    clock = FakeClock(START)
    sb = Sandbox(clock=clock)
    await sb.start()
    g = sb.create_guild("Facts")
    ch = sb.create_channel(g.id, "general")
    client = Client()
    async with connected(sb, client, client.ready_event):
        yield sb, client, clock, g, ch


def _poll(hours: int = 1) -> discord.Poll:
    poll = discord.Poll(question="Individual or community?", duration=timedelta(hours=hours))
    return poll.add_answer(text="Individual").add_answer(text="Community")


async def test_M1_edit_with_embeds_replaces_whole_array(env) -> None:
    sb, client, _clock, _g, ch = env
    channel = client.get_channel(ch.id)
    msg = await channel.send(embeds=[discord.Embed(title="passage"), discord.Embed(title="dilemma")])
    await msg.edit(embed=discord.Embed(title="result"))  # discord.py sends embeds=[result]
    assert [e["title"] for e in sb.message(ch.id, msg.id)["embeds"]] == ["result"]
    await msg.edit(content="only text")  # no embeds key: the embeds stay
    assert [e["title"] for e in sb.message(ch.id, msg.id)["embeds"]] == ["result"]


async def test_M2_enforce_nonce_dedupes_only_within_the_window_on_the_sandbox_clock(env) -> None:
    sb, client, clock, _g, ch = env
    assert sb.nonce_window <= 120  # "within the past few minutes": taken as at most 2 minutes
    channel = client.get_channel(ch.id)
    first = await channel.send("daily post", nonce="post-1")  # discord.py sends enforce_nonce: true
    clock.advance(timedelta(seconds=sb.nonce_window - 1))
    again = await channel.send("daily post", nonce="post-1")
    assert again.id == first.id and len(sb.messages(ch.id)) == 1
    # Past the window on the injected clock (no real time passes): a retry is a second message.
    clock.advance(timedelta(seconds=2))
    late = await channel.send("daily post", nonce="post-1")
    assert late.id != first.id
    assert [m["id"] for m in sb.messages(ch.id)] == [str(first.id), str(late.id)]


async def test_P2_expire_answers_not_finalized_and_finalizes_later_on_the_sandbox_clock(env) -> None:
    sb, client, clock, g, ch = env
    alice = sb.add_member(g.id, "alice")
    msg = await client.get_channel(ch.id).send(poll=_poll())
    sb.poll_vote(ch.id, msg.id, alice.id, 2)
    await msg.end_poll()
    ended = await client.get_channel(ch.id).fetch_message(msg.id)
    assert ended.poll is not None and not ended.poll.is_finalized()
    with pytest.raises(RuntimeError):
        sb.poll_vote(ch.id, msg.id, alice.id, 1)  # ended: no more votes
    clock.advance(timedelta(seconds=sb.poll_finalize_delay - 1))
    assert not (await client.get_channel(ch.id).fetch_message(msg.id)).poll.is_finalized()
    clock.advance(timedelta(seconds=1))  # the background tally is a step on the sandbox clock
    final = await client.get_channel(ch.id).fetch_message(msg.id)
    assert final.poll.is_finalized() and final.poll.get_answer(2).vote_count == 1


async def test_P2_expiry_ends_unfinalized_then_finalizes_later(env) -> None:
    sb, client, clock, g, ch = env
    alice = sb.add_member(g.id, "alice")
    msg = await client.get_channel(ch.id).send(poll=_poll(hours=1))
    sb.poll_vote(ch.id, msg.id, alice.id, 1)
    clock.advance(timedelta(hours=1))
    assert sb.poll_ended(msg.id)
    ended = await client.get_channel(ch.id).fetch_message(msg.id)
    assert not ended.poll.is_finalized()
    with pytest.raises(discord.HTTPException) as info:
        await ended.end_poll()
    assert info.value.code == 520001  # already expired: ending it again is refused
    clock.advance(timedelta(seconds=sb.poll_finalize_delay))
    final = await client.get_channel(ch.id).fetch_message(msg.id)
    assert final.poll.is_finalized() and final.poll.get_answer(1).vote_count == 1


async def test_P3_end_poll_response_omits_results(env) -> None:
    sb, client, _clock, g, ch = env
    alice = sb.add_member(g.id, "alice")
    msg = await client.get_channel(ch.id).send(poll=_poll())
    sb.poll_vote(ch.id, msg.id, alice.id, 2)
    data = await client.http.end_poll(ch.id, msg.id)
    assert "results" not in data["poll"]  # unknown, not "no votes"
    ended = discord.Message(state=client._connection, channel=msg.channel, data=data)
    assert ended.poll.get_answer(2).vote_count == 0  # what discord.py makes of it: never trust it as a count
    # A read of the ended poll carries results again.
    fetched = await client.get_channel(ch.id).fetch_message(msg.id)
    assert fetched.poll.get_answer(2).vote_count == 1


async def test_I2_first_followup_after_public_defer_edits_original_and_stays_public(env) -> None:
    sb, client, _clock, g, ch = env
    await client.tree.sync()
    alice = sb.add_member(g.id, "alice")
    ix = await sb.slash(g.id, ch.id, alice.id, "public-defer")
    assert (await ix.response())["type"] == 5
    await sb.wait_for(lambda: ix.followups)
    followup = ix.followups[0]
    assert followup["id"] == ix.original["id"]  # no new message: the loading message was edited
    assert followup["content"] == "only you should see this"
    assert not followup["flags"] & 64  # its ephemeral flag was ignored: the defer's (public) flags stay
    assert any(m["id"] == followup["id"] for m in sb.messages(ch.id))


async def test_P4_poll_votes_are_delivered_for_members_own_polls(env) -> None:
    sb, client, _clock, g, ch = env
    alice = sb.add_member(g.id, "alice")
    bob = sb.add_member(g.id, "bob")
    own = sb.user_message(
        ch.id,
        alice.id,
        "",
        poll={
            "question": {"text": "Pizza or pasta?"},
            "answers": [{"poll_media": {"text": "Pizza"}}, {"poll_media": {"text": "Pasta"}}],
            "duration": 1,
        },
    )
    sb.poll_vote(ch.id, int(own["id"]), bob.id, 1)
    await sb.wait_for(lambda: client.votes, timeout=5)
    vote = client.votes[0]
    assert (vote.message_id, vote.user_id, vote.answer_id) == (int(own["id"]), bob.id, 1)
