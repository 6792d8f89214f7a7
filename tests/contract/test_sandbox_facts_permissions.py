"""The sandbox is as strict as Discord about permissions: one test per DISCORD-FACTS row, named after it.

Each test gives the bot exactly the permission Discord used to accept (or none) and expects Discord's
refusal, then the permission Discord requires and expects success; a kinder sandbox fails the first half.
Sources (discord-api-docs): the Permissions table (developers/topics/permissions), Pin Message and Get
Channel Pins (developers/resources/message), Guild Scheduled Event Permissions Requirements, the
Interaction object's resolved data and the Channel object's `permissions` field, and the change log
entries of 2025-11-20 (PR #7991, CREATE_EVENTS) and 2025-11-24 (PR #8002, PIN_MESSAGES).

These talk to the sandbox over raw HTTP on 127.0.0.1 (no bot code), so they say what the sandbox does,
not what the bot does with it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import discord
import pytest

from bot.sandbox import Sandbox

pytestmark = pytest.mark.timeout(30)

P = discord.Permissions
BASE = P(view_channel=True, send_messages=True, read_message_history=True).value


class Rest:
    """A minimal REST client: (status, JSON body) per call, JSON or multipart with files."""

    def __init__(self, sb: Sandbox, http: aiohttp.ClientSession) -> None:
        self.sb = sb
        self.http = http

    async def __call__(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, files: dict[str, bytes] | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bot {self.sb.token}"}
        kwargs: dict[str, Any] = {}
        if files:
            form = aiohttp.FormData()
            form.add_field("payload_json", json.dumps(body or {}), content_type="application/json")
            for i, (name, data) in enumerate(files.items()):
                form.add_field(f"files[{i}]", data, filename=name, content_type="image/png")
            kwargs["data"] = form
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.sb.api_base + path, headers=headers, **kwargs) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)


@pytest.fixture
async def world():
    async with Sandbox() as sb, aiohttp.ClientSession() as http:
        yield sb, Rest(sb, http)


def guild_with(sb: Sandbox, bot_permissions: int, everyone: int = 0):
    """A guild whose bot holds exactly ``bot_permissions`` (@everyone grants ``everyone``, default nothing)."""
    g = sb.create_guild("Facts", bot_permissions=bot_permissions, everyone_permissions=everyone)
    ch = sb.create_channel(g.id, "debates")
    return g, ch


async def post(rest: Rest, ch, body: dict[str, Any] | None = None, **kwargs) -> tuple[int, Any]:
    return await rest("POST", f"/channels/{ch.id}/messages", body or {"content": "hello"}, **kwargs)


# -- M3 -------------------------------------------------------------------------------------------------


async def test_M3_pinning_needs_pin_messages_manage_messages_alone_is_refused(world):
    sb, rest = world
    _g, ch = guild_with(sb, BASE | P(manage_messages=True).value)
    status, msg = await post(rest, ch)
    assert status == 200
    for path in (f"/channels/{ch.id}/messages/pins/{msg['id']}", f"/channels/{ch.id}/pins/{msg['id']}"):
        status, body = await rest("PUT", path)
        assert (status, body["code"]) == (403, 50013), path
        status, body = await rest("DELETE", path)
        assert (status, body["code"]) == (403, 50013), path
    assert sb.pins(ch.id) == []
    sb.set_channel_permissions(ch.id, allow_bot=P(pin_messages=True).value, deny_bot=P(manage_messages=True).value)
    status, _ = await rest("PUT", f"/channels/{ch.id}/messages/pins/{msg['id']}")
    assert status == 204 and [m["id"] for m in sb.pins(ch.id)] == [msg["id"]]
    status, _ = await rest("DELETE", f"/channels/{ch.id}/messages/pins/{msg['id']}")
    assert status == 204 and sb.pins(ch.id) == []


async def test_M3_a_channel_holds_at_most_250_pins(world):
    sb, rest = world
    _g, ch = guild_with(sb, BASE | P(pin_messages=True).value)
    ids = []
    for i in range(251):
        status, msg = await post(rest, ch, {"content": f"m{i}"})
        assert status == 200
        ids.append(msg["id"])
    for mid in ids[:250]:
        status, _ = await rest("PUT", f"/channels/{ch.id}/messages/pins/{mid}")
        assert status == 204
    status, body = await rest("PUT", f"/channels/{ch.id}/messages/pins/{ids[250]}")
    assert (status, body["code"]) == (400, 30003)
    status, _ = await rest("PUT", f"/channels/{ch.id}/messages/pins/{ids[0]}")  # already pinned: fine
    assert status == 204
    await rest("DELETE", f"/channels/{ch.id}/messages/pins/{ids[0]}")
    status, _ = await rest("PUT", f"/channels/{ch.id}/messages/pins/{ids[250]}")
    assert status == 204 and len(sb.pins(ch.id)) == 250


async def test_M3_get_channel_pins_without_read_message_history_returns_none(world):
    sb, rest = world
    _g, ch = guild_with(sb, BASE | P(pin_messages=True).value)
    _, msg = await post(rest, ch)
    await rest("PUT", f"/channels/{ch.id}/messages/pins/{msg['id']}")
    status, body = await rest("GET", f"/channels/{ch.id}/messages/pins")
    assert status == 200 and [i["message"]["id"] for i in body["items"]] == [msg["id"]]
    sb.set_channel_permissions(ch.id, deny_bot=P(read_message_history=True).value)
    status, body = await rest("GET", f"/channels/{ch.id}/messages/pins")
    assert status == 200 and body["items"] == []


# -- R1 -------------------------------------------------------------------------------------------------


def external_event(start: datetime) -> dict[str, Any]:
    return {
        "name": "Debate",
        "privacy_level": 2,
        "entity_type": 3,
        "scheduled_start_time": start.isoformat(),
        "scheduled_end_time": (start + timedelta(hours=1)).isoformat(),
        "entity_metadata": {"location": "#debates"},
    }


async def test_R1_creating_an_event_needs_create_events_manage_events_alone_is_refused(world):
    sb, rest = world
    g, _ch = guild_with(sb, BASE | P(manage_events=True).value)
    body = external_event(datetime.now(UTC) + timedelta(days=1))
    status, err = await rest("POST", f"/guilds/{g.id}/scheduled-events", body)
    assert (status, err["code"]) == (403, 50013)
    assert sb.scheduled_events(g.id) == []
    g2, _ = guild_with(sb, BASE | P(create_events=True).value)
    status, ev = await rest("POST", f"/guilds/{g2.id}/scheduled-events", body)
    assert status == 200 and ev["creator_id"] == str(sb.bot_user_id)


async def test_R1_deleting_needs_create_events_for_own_events_manage_events_for_others(world):
    sb, rest = world
    g, _ch = guild_with(sb, BASE | P(create_events=True).value)
    start = datetime.now(UTC) + timedelta(days=1)
    _, own = await rest("POST", f"/guilds/{g.id}/scheduled-events", external_event(start))
    _, other = await rest("POST", f"/guilds/{g.id}/scheduled-events", external_event(start))
    g.scheduled_events[int(other["id"])]["creator_id"] = str(g.owner_id)  # somebody else's event
    status, err = await rest("DELETE", f"/guilds/{g.id}/scheduled-events/{other['id']}")
    assert (status, err["code"]) == (403, 50013)
    status, err = await rest("PATCH", f"/guilds/{g.id}/scheduled-events/{other['id']}", {"name": "x"})
    assert (status, err["code"]) == (403, 50013)
    status, _ = await rest("DELETE", f"/guilds/{g.id}/scheduled-events/{own['id']}")
    assert status == 204
    # With neither permission, not even its own event can be changed.
    g2, _ = guild_with(sb, BASE | P(create_events=True).value)
    _, mine = await rest("POST", f"/guilds/{g2.id}/scheduled-events", external_event(start))
    bot_role = next(r for r in g2.roles.values() if r.get("managed"))
    bot_role["permissions"] = str(BASE)
    status, err = await rest("DELETE", f"/guilds/{g2.id}/scheduled-events/{mine['id']}")
    assert (status, err["code"]) == (403, 50013)


# -- P1 -------------------------------------------------------------------------------------------------


def poll_body() -> dict[str, Any]:
    return {
        "poll": {
            "question": {"text": "Who first?"},
            "answers": [{"poll_media": {"text": "Me"}}, {"poll_media": {"text": "Us"}}],
            "duration": 24,
            "allow_multiselect": False,
        }
    }


async def test_P1_posting_a_poll_needs_send_polls(world):
    sb, rest = world
    _g, ch = guild_with(sb, BASE | P(embed_links=True).value)
    status, err = await post(rest, ch, poll_body())
    assert (status, err["code"]) == (403, 50013)
    assert sb.messages(ch.id) == []
    sb.set_channel_permissions(ch.id, allow_bot=P(send_polls=True).value)
    status, msg = await post(rest, ch, poll_body())
    assert status == 200 and msg["poll"]["question"]["text"] == "Who first?"


# -- M4 -------------------------------------------------------------------------------------------------


async def test_M4_uploading_a_file_needs_attach_files_also_on_an_edit(world):
    sb, rest = world
    _g, ch = guild_with(sb, BASE | P(embed_links=True).value)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    status, err = await post(rest, ch, {"content": "chart"}, files={"chart.png": png})
    assert (status, err["code"]) == (403, 50013)
    status, msg = await post(rest, ch, {"content": "result soon"})
    assert status == 200
    edit = {"content": "result", "attachments": [{"id": 0, "filename": "chart.png"}]}
    status, err = await rest("PATCH", f"/channels/{ch.id}/messages/{msg['id']}", edit, files={"chart.png": png})
    assert (status, err["code"]) == (403, 50013)
    assert sb.message(ch.id, int(msg["id"]))["attachments"] == []
    sb.set_channel_permissions(ch.id, allow_bot=P(attach_files=True).value)
    status, edited = await rest("PATCH", f"/channels/{ch.id}/messages/{msg['id']}", edit, files={"chart.png": png})
    assert status == 200 and [a["filename"] for a in edited["attachments"]] == ["chart.png"]


async def test_M4_embeds_render_only_with_embed_links(world):
    sb, rest = world
    _g, ch = guild_with(sb, BASE)
    embed = {"title": "Today's debate", "description": "> a passage"}
    status, msg = await post(rest, ch, {"content": "x", "embeds": [embed]})
    assert status == 200 and sb.message(ch.id, int(msg["id"]))["embeds"] == []
    sb.set_channel_permissions(ch.id, allow_bot=P(embed_links=True).value)
    status, msg = await post(rest, ch, {"content": "x", "embeds": [embed]})
    assert [e["title"] for e in sb.message(ch.id, int(msg["id"]))["embeds"]] == ["Today's debate"]


# -- M5 -------------------------------------------------------------------------------------------------


async def test_M5_threads_need_create_public_threads_and_send_messages_in_threads(world):
    sb, rest = world
    _g, ch = guild_with(sb, BASE)
    _, msg = await post(rest, ch)
    status, err = await rest("POST", f"/channels/{ch.id}/messages/{msg['id']}/threads", {"name": "talk"})
    assert (status, err["code"]) == (403, 50013)
    sb.set_channel_permissions(ch.id, allow_bot=P(create_public_threads=True).value)
    status, thread = await rest("POST", f"/channels/{ch.id}/messages/{msg['id']}/threads", {"name": "talk"})
    assert status == 201
    # Send Messages does not carry into threads: Send Messages in Threads does.
    status, err = await rest("POST", f"/channels/{thread['id']}/messages", {"content": "summary"})
    assert (status, err["code"]) == (403, 50013)
    sb.set_channel_permissions(ch.id, allow_bot=P(create_public_threads=True, send_messages_in_threads=True).value)
    status, _ = await rest("POST", f"/channels/{thread['id']}/messages", {"content": "summary"})
    assert status == 200


async def test_M5_reading_a_message_history_or_poll_voters_needs_read_message_history(world):
    sb, rest = world
    _g, ch = guild_with(sb, BASE | P(send_polls=True).value)
    _, msg = await post(rest, ch, poll_body())
    user = sb.add_member(_g.id, "voter")
    sb.poll_vote(ch.id, int(msg["id"]), user.id, 1, dispatch=False)
    sb.set_channel_permissions(ch.id, deny_bot=P(read_message_history=True).value)
    for path in (
        f"/channels/{ch.id}/messages/{msg['id']}",
        f"/channels/{ch.id}/messages?limit=10",
        f"/channels/{ch.id}/polls/{msg['id']}/answers/1",
    ):
        status, err = await rest("GET", path)
        assert (status, err["code"]) == (403, 50013), path
    sb.set_channel_permissions(ch.id, deny_bot=0)
    status, voters = await rest("GET", f"/channels/{ch.id}/polls/{msg['id']}/answers/1")
    assert status == 200 and [u["id"] for u in voters["users"]] == [str(user.id)]


# -- I4 -------------------------------------------------------------------------------------------------


async def test_I4_resolved_channel_permissions_are_the_invoking_members_the_bots_are_app_permissions(world):
    sb, rest = world
    g, ch = guild_with(sb, BASE | P(embed_links=True, send_polls=True).value, everyone=BASE)
    other = sb.create_channel(g.id, "announcements")
    # The bot may post polls in #announcements; the member may read it but not post there.
    sb.set_channel_permissions(other.id, target_id=g.id, deny=P(send_messages=True, send_polls=True).value)
    sb.set_channel_permissions(other.id, allow_bot=P(send_messages=True, send_polls=True).value)
    member = sb.add_member(g.id, "member")
    command = {
        "name": "where",
        "description": "Pick a channel",
        "options": [{"type": 7, "name": "channel", "description": "a channel", "required": True}],
    }
    status, _ = await rest("PUT", f"/applications/{sb.application_id}/commands", [command])
    assert status == 200
    ix = await sb.slash(g.id, ch.id, member.id, "where", {"channel": other.id})
    resolved = ix.payload["data"]["resolved"]["channels"][str(other.id)]
    member_perms = P(int(resolved["permissions"]))
    bot_perms = P(int(resolved["app_permissions"]))
    assert member_perms.view_channel and not member_perms.send_messages and not member_perms.send_polls
    assert bot_perms.send_messages and bot_perms.send_polls
    assert int(resolved["permissions"]) == sb.permissions_for(g.id, member.id, other.id)
    assert int(resolved["app_permissions"]) == sb.permissions_for(g.id, sb.bot_user_id, other.id)
    # And the interaction's own app_permissions are the bot's in the channel it was typed in.
    assert int(ix.payload["app_permissions"]) == sb.permissions_for(g.id, sb.bot_user_id, ch.id)


# -- defaults ---------------------------------------------------------------------------------------------


async def test_default_bot_permissions_are_exactly_the_readme_invite(world):
    from bot.domain.permissions import full_invite_permissions
    from bot.sandbox.server import DEFAULT_BOT

    sb, _rest = world
    assert full_invite_permissions() == DEFAULT_BOT
    g = sb.create_guild("Defaults", everyone_permissions=0)
    bot_role = next(r for r in g.roles.values() if r.get("managed"))
    assert int(bot_role["permissions"]) == full_invite_permissions()
    assert sb.permissions_for(g.id, sb.bot_user_id) == full_invite_permissions()
    # Nothing the README does not ask for: the old Manage Messages / Manage Events grants are gone.
    assert not DEFAULT_BOT & (P(manage_messages=True, manage_events=True, manage_threads=True).value)
