"""The sandbox against a bare, unmodified discord.py client (no project bot code)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator

import discord
import pytest
import yarl
from discord import app_commands

from bot.sandbox import Sandbox
from tests.harness import TEST_IDENTIFY_INTERVAL

pytestmark = pytest.mark.timeout(30)


class Bare(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.ready_count = 0
        self.ready_event = asyncio.Event()
        self.resumed_event = asyncio.Event()
        self.clicks: list[str] = []

        @self.tree.command(name="hello", description="Say hello")
        @app_commands.describe(times="how many")
        async def hello(interaction: discord.Interaction, times: int, channel: discord.TextChannel) -> None:
            await interaction.response.send_message(f"hello x{times} in {channel.name}")

        @self.tree.command(name="later", description="Defer, then edit and follow up")
        async def later(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content="edited original")
            await interaction.followup.send("follow-up")

        poll_group = app_commands.Group(name="poll", description="Polls")

        async def poll_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            names = ["about-freedom", "about-duty", "other"]
            return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

        @poll_group.command(name="close", description="Close a poll")
        @app_commands.autocomplete(poll=poll_names)
        async def close(interaction: discord.Interaction, poll: str) -> None:
            await interaction.response.send_modal(Reason())

        @poll_group.command(name="upload", description="Upload a pack")
        async def upload(interaction: discord.Interaction, pack: discord.Attachment, role: discord.Role) -> None:
            data = await pack.read()
            await interaction.response.send_message(
                f"{pack.filename}:{len(data)}:{role.name}",
                file=discord.File(io.BytesIO(data), "echo.yaml"),
            )

        self.tree.add_command(poll_group)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s before every IDENTIFY but the first (Discord's pacing, G3); the sandbox
        paces at TEST_IDENTIFY_INTERVAL here, and the pacing has its own tests (test_sharding.py)."""
        await asyncio.sleep(0 if initial else TEST_IDENTIFY_INTERVAL)

    async def on_ready(self) -> None:
        self.ready_count += 1
        self.ready_event.set()

    async def on_resumed(self) -> None:
        self.resumed_event.set()


class Buttons(discord.ui.View):
    def __init__(self, client: Bare) -> None:
        super().__init__(timeout=None)
        self.client = client

    @discord.ui.button(label="Yes", custom_id="vote:yes")
    async def yes(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.client.clicks.append(button.custom_id or "")
        await interaction.response.send_message("counted", ephemeral=True)


class Reason(discord.ui.Modal, title="Why close?"):
    reason = discord.ui.TextInput(label="Reason", custom_id="reason", max_length=50)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"closed: {self.reason.value}", ephemeral=True)


@pytest.fixture
async def env() -> AsyncIterator[tuple[Sandbox, Bare, object, object]]:
    # IDENTIFY pacing scaled down as in every harness test (G3 has its own tests in test_sharding.py).
    sb = Sandbox(heartbeat_interval=41250, interaction_deadline=0.3, identify_interval=TEST_IDENTIFY_INTERVAL)
    await sb.start()
    old_base, old_gw = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = sb.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sb.gateway_url)
    g = sb.create_guild("Demo Server")
    ch = sb.create_channel(g.id, "general")
    client = Bare()
    task = asyncio.create_task(client.start(sb.token))
    try:
        await asyncio.wait_for(client.ready_event.wait(), 10)
        yield sb, client, g, ch
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        await sb.stop()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gw


async def test_login_ready_and_guild_cache(env) -> None:
    sb, client, g, ch = env
    guild = client.get_guild(g.id)
    assert guild is not None and guild.name == "Demo Server"
    assert guild.get_channel(ch.id).name == "general"
    assert client.user.id == sb.bot_user_id
    assert client.application_id == sb.application_id


async def test_slash_command_answered(env) -> None:
    sb, client, g, ch = env
    guild = discord.Object(g.id)
    client.tree.copy_global_to(guild=guild)
    await client.tree.sync(guild=guild)
    alice = sb.add_member(g.id, "alice")
    ix = await sb.slash(g.id, ch.id, alice.id, "hello", {"times": 3, "channel": ch.id})
    resp = await ix.response(timeout=5)
    assert resp["type"] == 4
    assert resp["data"]["content"] == "hello x3 in general"
    assert sb.messages(ch.id)[-1]["content"] == "hello x3 in general"
    with pytest.raises(LookupError):
        await sb.slash(g.id, ch.id, alice.id, "never-synced")


async def test_followup_and_original_edit(env) -> None:
    sb, client, g, ch = env
    await client.tree.sync()
    alice = sb.add_member(g.id, "alice")
    ix = await sb.slash(g.id, ch.id, alice.id, "later")
    assert (await ix.response())["type"] == 5
    await sb.wait_for(lambda: ix.original and ix.original["content"] == "edited original" and ix.followups)
    # The loading message was edited first, so this follow-up is a message of its own (I2 covers the
    # other order: a first follow-up right after the defer edits the loading message).
    assert ix.followups[0]["content"] == "follow-up"
    assert ix.followups[0]["id"] != ix.original["id"]
    assert not ix.original["flags"] & 128


async def test_button_click(env) -> None:
    sb, client, g, ch = env
    alice = sb.add_member(g.id, "alice")
    view = Buttons(client)
    client.add_view(view)
    msg = await client.get_channel(ch.id).send("vote", view=view)
    ix = await sb.click(ch.id, msg.id, "vote:yes", alice.id)
    resp = await ix.response()
    assert resp["type"] == 4 and resp["data"]["flags"] == 64
    assert client.clicks == ["vote:yes"]
    assert ix.original["content"] == "counted"
    assert all(m["content"] != "counted" for m in sb.messages(ch.id))  # ephemeral
    with pytest.raises(LookupError):
        await sb.click(ch.id, msg.id, "vote:nope", alice.id)


async def test_validation_rejections(env) -> None:
    sb, client, _g, ch = env
    channel = client.get_channel(ch.id)
    with pytest.raises(discord.HTTPException) as exc:
        await channel.send("x" * 2001)
    assert exc.value.code == 50035 and exc.value.status == 400
    assert sb.requests[-1].response["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    # 26 buttons: discord.py itself refuses to build it, so post the raw payload
    rows = [
        {"type": 1, "components": [{"type": 2, "style": 1, "label": "b", "custom_id": f"b{r}{i}"} for i in range(5)]}
        for r in range(5)
    ]
    rows.append({"type": 1, "components": [{"type": 2, "style": 1, "label": "b", "custom_id": "b26"}]})
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=ch.id)
    with pytest.raises(discord.HTTPException) as exc:
        await client.http.request(route, json={"content": "many", "components": rows})
    assert exc.value.code == 50035
    with pytest.raises(discord.HTTPException) as exc:
        await client.http.request(route, json={})
    assert exc.value.code == 50006
    assert sb.messages(ch.id) == []


async def test_second_callback_rejected(env) -> None:
    sb, client, g, ch = env
    alice = sb.add_member(g.id, "alice")
    view = Buttons(client)
    msg = await client.get_channel(ch.id).send("vote", view=view)
    ix = await sb.click(ch.id, msg.id, "vote:yes", alice.id)
    await ix.response()
    route = discord.http.Route("POST", "/interactions/{i}/{t}/callback", i=ix.id, t=ix.token)
    with pytest.raises(discord.HTTPException) as exc:
        await client.http.request(route, json={"type": 6})
    assert exc.value.code == 40060


async def test_nonce_dedupe(env) -> None:
    sb, client, _g, ch = env
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=ch.id)
    body = {"content": "daily", "nonce": "slot-1", "enforce_nonce": True}
    first = await client.http.request(route, json=body)
    second = await client.http.request(route, json=body)
    assert first["id"] == second["id"]
    assert len(sb.messages(ch.id)) == 1


async def test_429_retried(env) -> None:
    sb, client, _g, ch = env
    sb.faults.rate_limit("/messages", count=2, retry_after=0.05)
    sb.faults.rate_limit("/messages", count=1, retry_after=0.05, global_=True)
    msg = await client.get_channel(ch.id).send("after limits")
    posts = sb.requests_to("/channels/{channel_id}/messages", method="POST")
    assert [r.status for r in posts] == [429, 429, 429, 200]
    assert sb.message(ch.id, msg.id)["content"] == "after limits"


async def test_server_error_after_effect_with_nonce(env) -> None:
    sb, client, _g, ch = env
    sb.faults.server_error("POST /channels/{channel_id}/messages", count=1, status=502, after_effect=True)
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=ch.id)
    await client.http.request(route, json={"content": "once", "nonce": "n1", "enforce_nonce": True})
    assert [m["content"] for m in sb.messages(ch.id)] == ["once"]


async def test_forbidden_channel(env) -> None:
    sb, client, _g, ch = env
    sb.set_channel_permissions(ch.id, deny_bot=discord.Permissions(send_messages=True).value)
    with pytest.raises(discord.Forbidden) as exc:
        await client.get_channel(ch.id).send("nope")
    assert exc.value.code == 50013


async def test_drop_gateway_resumes(env) -> None:
    sb, client, g, _ch = env
    await sb.drop_gateway(resume=True)
    sb.create_channel(g.id, "while-away")
    await asyncio.wait_for(client.resumed_event.wait(), 10)
    assert sb.resume_count == 1 and client.ready_count == 1
    await sb.wait_for(lambda: any(c.name == "while-away" for c in client.get_guild(g.id).channels))


async def test_invalidate_session_second_ready(env) -> None:
    sb, client, _g, _ch = env
    client.ready_event.clear()
    await sb.invalidate_session()
    await asyncio.wait_for(client.ready_event.wait(), 10)
    assert client.ready_count == 2 and sb.identify_count == 2


async def test_native_poll_votes(env) -> None:
    sb, client, g, ch = env
    alice = sb.add_member(g.id, "alice")
    poll = discord.Poll(question="Individual or community?", duration=__import__("datetime").timedelta(hours=1))
    poll.add_answer(text="Individual").add_answer(text="Community")
    msg = await client.get_channel(ch.id).send(poll=poll)
    sb.poll_vote(ch.id, msg.id, alice.id, 2)
    voters = [u async for u in msg.poll.get_answer(2).voters()]
    assert [u.id for u in voters] == [alice.id]
    ended = await msg.end_poll()
    assert not ended.poll.is_finalized()  # the final tally comes later (P2, contract tests)
    sb.finalize_poll(ch.id, msg.id)
    final = await client.get_channel(ch.id).fetch_message(msg.id)
    assert final.poll.is_finalized() and final.poll.get_answer(2).vote_count == 1


async def test_autocomplete_modal_and_attachment(env) -> None:
    sb, client, g, ch = env
    await client.tree.sync(guild=None)
    mods = sb.create_role(g.id, "Moderators", permissions=discord.Permissions(manage_guild=True).value)
    alice = sb.add_member(g.id, "alice", roles=[mods.id])
    choices = await sb.autocomplete(g.id, ch.id, alice.id, "poll close", {"poll": "about"}, focused="poll")
    assert [c["value"] for c in choices] == ["about-freedom", "about-duty"]
    ix = await sb.slash(g.id, ch.id, alice.id, "poll close", {"poll": "about-duty"})
    assert (await ix.response())["type"] == 9
    assert int(ix.payload["member"]["permissions"]) & discord.Permissions(manage_guild=True).value
    with pytest.raises(ValueError):
        await sb.submit_modal(ch.id, alice.id, ix.modal["custom_id"], {"reason": "x" * 51}, from_interaction=ix)
    sub = await sb.submit_modal(ch.id, alice.id, ix.modal["custom_id"], {"reason": "done"}, from_interaction=ix)
    assert (await sub.response())["data"]["content"] == "closed: done"
    att = sb.attach("pack.yaml", b"prompts: []\n")
    up = await sb.slash(g.id, ch.id, alice.id, "poll upload", {"pack": att, "role": mods.id})
    resp = await up.response()
    assert resp["data"]["content"] == "pack.yaml:12:Moderators"
    assert up.original["attachments"][0]["filename"] == "echo.yaml"


async def test_threads_pins_events(env) -> None:
    sb, client, g, ch = env
    import datetime as dt

    channel = client.get_channel(ch.id)
    msg = await channel.send("daily debate", allowed_mentions=discord.AllowedMentions.none())
    thread = await msg.create_thread(name="Discussion")
    await thread.send("first reply")
    await msg.pin()
    assert [t["name"] for t in sb.threads(ch.id)] == ["Discussion"]
    assert [m["id"] for m in sb.pins(ch.id)] == [str(msg.id)]
    assert [p.id async for p in channel.pins()] == [msg.id]
    assert sb.message(ch.id, msg.id)["allowed_mentions"] == {"parse": []}
    guild = client.get_guild(g.id)
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    await guild.create_scheduled_event(
        name="Debate night",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        entity_type=discord.EntityType.external,
        location="Here",
        privacy_level=discord.PrivacyLevel.guild_only,
    )
    assert [e["name"] for e in sb.scheduled_events(g.id)] == ["Debate night"]


async def test_random_429_all_delivered(env) -> None:
    sb, client, _g, ch = env
    sb.faults.random_429(0.3, seed=7, retry_after=0.01)
    channel = client.get_channel(ch.id)
    for i in range(20):
        await channel.send(f"post {i}")
    assert [m["content"] for m in sb.messages(ch.id)] == [f"post {i}" for i in range(20)]
    assert any(r.status == 429 for r in sb.requests)


async def test_remove_guild(env) -> None:
    sb, client, g, ch = env
    waiter = asyncio.ensure_future(client.wait_for("guild_remove", timeout=5))
    sb.remove_guild(g.id)
    assert (await waiter).id == g.id
    assert client.get_guild(g.id) is None
    with pytest.raises(discord.Forbidden):
        await client.http.send_message(ch.id, params=discord.http.handle_message_parameters(content="x"))


async def test_raw_gateway_uncompressed_and_bad_token() -> None:
    import aiohttp

    async with Sandbox() as sb, aiohttp.ClientSession() as http:
        async with http.ws_connect(sb.gateway_url + "?v=10&encoding=json") as ws:
            hello = json.loads((await ws.receive(timeout=5)).data)
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41250
            await ws.send_json({"op": 1, "d": None})
            assert json.loads((await ws.receive(timeout=5)).data)["op"] == 11
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 1, "properties": {}}})
            closed = await ws.receive(timeout=5)
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4004
        async with http.get(sb.api_base + "/nowhere", headers={"Authorization": f"Bot {sb.token}"}) as resp:
            assert resp.status == 404 and resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"message": "404: Not Found", "code": 0}
