"""The sandbox honours the rows of Discord's facts not covered by the other contract files: P5 (poll limits
and the answer-voters page), I1 (the 3 s initial response and the 15-minute token), I5 (interaction
answers are outside the global limit: see ``test_sandbox_facts_ratelimits.test_L1_…``) and G5 (a RESUME
replays events without a new READY). Each fails against a kinder sandbox: one that accepts an 11th answer,
a 56-character answer, a 301-character question or a 769-hour poll, returns more than 100 voters a page,
accepts a late callback or an expired token's follow-up, or sends READY again after a RESUME.

Sources: Discord's developer documentation, Poll resource (Poll Create Request Object: duration up to
32 days = 768 hours, up to 10 answers, question text 300 and answer text 55 characters; Get Answer Voters:
``limit`` 1-100, default 25, ``after``); Receiving and Responding (3 s to respond, tokens valid for 15
minutes); Gateway, Resuming (replayed events, then RESUMED, no READY).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest
from discord import app_commands

from bot.sandbox import Sandbox
from tests.contract.sandbox_client import connected

pytestmark = pytest.mark.timeout(30)


class Client(discord.Client):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.ready_count = 0
        self.ready_event = asyncio.Event()
        self.resumed_event = asyncio.Event()
        self.release = asyncio.Event()
        self.late: list[discord.HTTPException] = []

        @self.tree.command(name="late", description="Answer only once released")
        async def late(interaction: discord.Interaction) -> None:
            await self.release.wait()
            try:
                await interaction.response.send_message("too late")
            except discord.HTTPException as exc:
                self.late.append(exc)

        @self.tree.command(name="quick", description="Defer at once")
        async def quick(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True)

    async def on_ready(self) -> None:
        self.ready_count += 1
        self.ready_event.set()

    async def on_resumed(self) -> None:
        self.resumed_event.set()


@pytest.fixture
async def env() -> AsyncIterator[tuple[Sandbox, Client, object, object]]:
    # Short windows stand in for Discord's 3 s and 15 min, so a test can be late without waiting long.
    sb = Sandbox(interaction_deadline=0.3, followup_ttl=0.6)
    await sb.start()
    g = sb.create_guild("Facts")
    ch = sb.create_channel(g.id, "general")
    client = Client()
    async with connected(sb, client, client.ready_event):
        yield sb, client, g, ch


def _poll_body(*, question: str = "Individual or community?", answers: int = 2, label: str = "A", hours=1) -> dict:
    return {
        "poll": {
            "question": {"text": question},
            "answers": [{"poll_media": {"text": f"{label}{i}" if len(label) < 50 else label}} for i in range(answers)],
            "duration": hours,
        }
    }


async def _post(client: Client, channel_id: int, body: dict) -> dict:
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
    return await client.http.request(route, json=body)


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        (_poll_body(answers=10), True),
        (_poll_body(answers=11), False),
        (_poll_body(question="q" * 300), True),
        (_poll_body(question="q" * 301), False),
        (_poll_body(label="a" * 55, answers=2), True),
        (_poll_body(label="a" * 56, answers=2), False),
        (_poll_body(hours=768), True),
        (_poll_body(hours=769), False),
        (_poll_body(hours=0), False),
    ],
    ids=["10-answers", "11-answers", "q300", "q301", "a55", "a56", "768h", "769h", "0h"],
)
async def test_P5_poll_limits_at_and_one_past(env, body, accepted) -> None:
    sb, client, _g, ch = env
    before = len(sb.messages(ch.id))
    if accepted:
        await _post(client, ch.id, body)
        assert len(sb.messages(ch.id)) == before + 1
    else:
        with pytest.raises(discord.HTTPException) as exc:
            await _post(client, ch.id, body)
        assert exc.value.status == 400 and exc.value.code == 50035
        assert len(sb.messages(ch.id)) == before  # nothing posted


async def test_P5_answer_voters_come_at_most_100_a_page_after_the_given_id(env) -> None:
    sb, client, g, ch = env
    msg = await _post(client, ch.id, _poll_body())
    members = [sb.add_member(g.id, f"m{i}") for i in range(130)]
    for m in members:
        sb.poll_vote(ch.id, int(msg["id"]), m.id, 1, dispatch=False)
    route = discord.http.Route(
        "GET",
        "/channels/{channel_id}/polls/{message_id}/answers/{answer_id}",
        channel_id=ch.id,
        message_id=int(msg["id"]),
        answer_id=1,
    )
    first = (await client.http.request(route, params={"limit": 100}))["users"]
    assert len(first) == 100
    default = (await client.http.request(route))["users"]
    assert len(default) == 25  # Discord's default page
    rest = (await client.http.request(route, params={"limit": 100, "after": first[-1]["id"]}))["users"]
    assert len(rest) == 30
    assert {int(u["id"]) for u in first + rest} == {m.id for m in members}


async def test_I1_initial_response_after_the_deadline_is_refused(env) -> None:
    sb, client, g, ch = env
    await client.tree.sync()
    alice = sb.add_member(g.id, "alice")
    ix = await sb.slash(g.id, ch.id, alice.id, "late")
    await asyncio.sleep(sb.interaction_deadline + 0.1)  # the point of the test: being late
    client.release.set()
    await sb.wait_for(lambda: client.late, timeout=5)
    assert client.late[0].status == 404 and client.late[0].code == 10062
    assert not ix.acknowledged


async def test_waiting_for_a_first_answer_ends_at_the_deadline(env) -> None:
    """The test client's side of I1: no first answer can come after the deadline, so waiting for one ends
    there (a test of a stopped bot learns it in 3 s, not in its whole timeout); one given in time is seen."""
    sb, client, g, ch = env
    await client.tree.sync()
    alice = sb.add_member(g.id, "alice")
    loop = asyncio.get_running_loop()
    started = loop.time()
    unanswered = await sb.slash(g.id, ch.id, alice.id, "late")
    with pytest.raises(TimeoutError):
        await unanswered.response(timeout=20)
    assert sb.interaction_deadline <= loop.time() - started < 5
    answered = await sb.slash(g.id, ch.id, alice.id, "quick")
    assert (await answered.response(timeout=20))["type"] == 5
    client.release.set()  # the first one answers now: refused, too late
    await sb.wait_for(lambda: client.late, timeout=5)
    assert client.late[0].code == 10062


async def test_I1_followup_after_the_token_lifetime_is_refused(env) -> None:
    sb, client, g, ch = env
    await client.tree.sync()
    alice = sb.add_member(g.id, "alice")
    ix = await sb.slash(g.id, ch.id, alice.id, "quick")
    assert (await ix.response())["type"] == 5
    webhook = discord.Webhook.partial(client.application_id, ix.token, client=client)
    await webhook.send("in time")
    await asyncio.sleep(sb.followup_ttl + 0.1)  # the token has expired
    with pytest.raises(discord.HTTPException) as exc:
        await webhook.send("too late")
    assert exc.value.status == 401 and exc.value.code == 50027


async def test_G5_resume_replays_events_without_a_new_ready(env) -> None:
    sb, client, g, _ch = env
    await sb.drop_gateway(resume=True)
    sb.create_channel(g.id, "while-away")
    await asyncio.wait_for(client.resumed_event.wait(), 10)
    await sb.wait_for(lambda: any(c.name == "while-away" for c in client.get_guild(g.id).channels), timeout=10)
    assert sb.resume_count == 1
    assert client.ready_count == 1  # on_resumed, not on_ready: reconciliation must not wait for a READY
