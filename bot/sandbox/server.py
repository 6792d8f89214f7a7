"""The sandbox: a local Discord-compatible REST API and gateway, served by aiohttp on 127.0.0.1.

See bot/sandbox/README.md for the public API. Everything here runs on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from aiohttp import web

from . import validation as v
from ._util import DiscordHTTPError, SnowflakeFactory, forbidden, iso, not_found
from .conditions import Clocks, Conditions
from .faults import Faults
from .gateway import I_MEMBERS, GatewayMixin, _Conn, _Session
from .interact import InteractionsMixin
from .oauth import OAuth
from .ratelimits import RateLimits, Refusal
from .records import ChannelRecord, GuildRecord, Interaction, MemberRecord, RequestRecord, RoleRecord

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
JSON_KEY = web.RequestKey("sandbox_json", object)
FILES_KEY = web.RequestKey("sandbox_files", list)
ALL_PERMISSIONS = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions(administrator=True).value
P = discord.Permissions
VIEW = P(view_channel=True).value
SEND = P(send_messages=True).value
SEND_THREADS = P(send_messages_in_threads=True).value
HISTORY = P(read_message_history=True).value
MANAGE_MESSAGES = P(manage_messages=True).value
PIN_MESSAGES = P(pin_messages=True).value
ATTACH = P(attach_files=True).value
PUBLIC_THREADS = P(create_public_threads=True).value
PRIVATE_THREADS = P(create_private_threads=True).value
EMBED = P(embed_links=True).value
MAX_PINS = 250  # per channel (JSON error 30003)
POLLS = P(send_polls=True).value
CREATE_EVENTS = P(create_events=True).value
MANAGE_EVENTS = P(manage_events=True).value

DEFAULT_EVERYONE = P(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    create_private_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    use_external_emojis=True,
    read_message_history=True,
    use_application_commands=True,
    create_instant_invite=True,
    change_nickname=True,
    connect=True,
    speak=True,
).value
# The bot's managed role: exactly what the README's invite asks for with every feature
# (`commonground invite-url --features native-polls,pin,events,ping`), no more, so a test passes only if a
# bot invited as documented would work (tests/contract/test_sandbox_facts_permissions.py keeps them equal).
DEFAULT_BOT = P(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    create_public_threads=True,
    send_messages_in_threads=True,
    send_polls=True,
    pin_messages=True,
    create_events=True,
    mention_everyone=True,
).value

OPTION_TYPES = {
    "subcommand": 1,
    "group": 2,
    "string": 3,
    "integer": 4,
    "boolean": 5,
    "user": 6,
    "channel": 7,
    "role": 8,
    "mentionable": 9,
    "number": 10,
    "attachment": 11,
}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    hdrs = {"Content-Type": "application/json"}
    if headers:
        hdrs.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=hdrs)


def _no_content() -> web.Response:
    return web.Response(status=204)


def _id_of(obj: Any) -> int:
    if isinstance(obj, dict):
        return int(obj["id"])
    if hasattr(obj, "id"):
        return int(obj.id)
    return int(obj)


class _WallClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class Sandbox(GatewayMixin, InteractionsMixin):
    """A local Discord: REST under ``api_base`` and a gateway at ``gateway_url``.

    Parameters: ``heartbeat_interval`` (ms, sent in HELLO), ``interaction_deadline`` (s, the initial
    callback window, Discord's is 3.0), ``followup_ttl`` (s, interaction token lifetime, 900),
    ``nonce_window`` (s on ``clock``, how long ``enforce_nonce`` dedupes; Discord: "the past few minutes",
    taken as 2), ``poll_finalize_delay`` (s on ``clock`` between a native poll ending and its final
    tally), ``clock`` (an object with ``now()`` -> aware datetime, e.g. the tests' FakeClock; default the
    wall clock), ``privileged_intents`` (whether the
    application may request GUILD_MEMBERS / PRESENCES / MESSAGE_CONTENT; if not, IDENTIFY with one
    of them is closed with 4014 like Discord does).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        heartbeat_interval: int = 41250,
        interaction_deadline: float = 3.0,
        followup_ttl: float = 900.0,
        nonce_window: float = 120.0,
        poll_finalize_delay: float = 60.0,
        privileged_intents: bool = False,
        bot_name: str = "Common Ground",
        clock: Any = None,
        conditions: Conditions | None = None,
        max_concurrency: int = 1,
        identify_interval: float = 5.0,
        session_start_total: int = 1000,
    ) -> None:
        self.host = host
        self.port = port
        self.conditions = conditions or Conditions()
        self.clocks = Clocks(self.conditions)
        self.limits = RateLimits(self.conditions, self.clocks)
        self._snow = SnowflakeFactory(self.clocks.wall)
        self.application_id = self._snow()
        self.bot_user_id = self.application_id
        self.token = token or f"sandbox.{secrets.token_urlsafe(24)}"
        self.heartbeat_interval = heartbeat_interval
        self.interaction_deadline = interaction_deadline
        self.followup_ttl = followup_ttl
        self.nonce_window = nonce_window
        self.poll_finalize_delay = poll_finalize_delay
        self.privileged_intents = privileged_intents
        # Identify pacing (discord-api-docs, Gateway, "Identifying" and "Max Concurrency"): at most one
        # IDENTIFY per ``identify_interval`` (Discord: 5 s) per bucket ``shard_id % max_concurrency``;
        # one too early is answered with op 9 Invalid Session. Tests scale the interval down.
        self.max_concurrency = max_concurrency
        self.identify_interval = identify_interval
        self.session_start_total = session_start_total
        self.session_starts = 0
        self._bucket_last_identify: dict[int, float] = {}
        self.identify_log: list[tuple[float, list[int]]] = []  # (loop time, [shard_id, num_shards]) accepted
        self.rejected_identifies: list[tuple[list[int] | None, str]] = []  # (shard, why)
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.in_flight = 0  # REST requests received and not yet answered (latency included)
        self.gateway_events: list[tuple[str, dict[str, Any]]] = []  # (event name, data) as dispatched
        self.identify_count = 0
        self.resume_count = 0
        self.connect_count = 0
        self.users: dict[int, dict[str, Any]] = {}
        self.guilds: dict[int, GuildRecord] = {}
        self.channels: dict[int, ChannelRecord] = {}
        self.interactions: dict[int, Interaction] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.attachments: dict[int, tuple[str, bytes, str]] = {}
        self.poll_votes: dict[int, dict[int, list[int]]] = {}  # message id -> answer id -> user ids
        self._ephemeral: dict[int, dict[str, Any]] = {}
        self._by_token: dict[str, Interaction] = {}
        self._nonces: dict[tuple[int, str], tuple[dt.datetime, int]] = {}
        # Native polls on the sandbox clock: open ones by their expiry, ended ones by when the background
        # tally finalises them (message id -> (channel id, when)).
        self._poll_expiry: dict[int, tuple[int, dt.datetime]] = {}
        self._poll_finalize_at: dict[int, tuple[int, dt.datetime]] = {}
        self._polls_ended: set[int] = set()
        self.clock: Any = _WallClock()
        self.use_clock(clock or _WallClock())
        self._sessions: dict[str, _Session] = {}
        self._conns: set[_Conn] = set()
        self._changed = asyncio.Event()
        # Set by stop(): answers held by a slow_answer fault are dropped then (the client that waited for
        # them is gone), instead of the HTTP server's shutdown waiting out the rest of their hold.
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.bot_user = self._make_user(self.bot_user_id, bot_name, bot=True)
        self.oauth = OAuth(self)  # /oauth2/authorize, /oauth2/token, /users/@me(/guilds) with Bearer tokens

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start serving; afterwards ``api_base`` and ``gateway_url`` are valid."""
        self._stopping.clear()
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._add_routes(app)
        self.oauth.install(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close every gateway connection and stop the HTTP server."""
        self._stopping.set()
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    def configure_discord(self) -> None:
        """Point discord.py at this sandbox (sets ``Route.BASE`` and ``DEFAULT_GATEWAY``)."""
        import yarl

        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    # ------------------------------------------------------------------ conditions
    def set_conditions(self, conditions: Conditions) -> None:
        """Switch latency, skew and rate limits now (e.g. mid-soak). Bucket and invalid-request counts
        carry over; the latency sampler restarts from the new seed."""
        self.conditions = conditions
        self.clocks.use(conditions)
        self.limits.conditions = conditions

    def lift_ban(self) -> None:
        """End an invalid-request ban now (Discord lifts it after a while)."""
        self.limits.lift_ban()
        self._bump()

    # ------------------------------------------------------------------ time
    def use_clock(self, clock: Any) -> None:
        """Measure the nonce window and native polls (expiry, final tally) on ``clock`` (``now()``).

        A clock with ``add_listener`` (the tests' FakeClock) also runs due poll steps when it moves.
        """
        old = self.clock
        if hasattr(old, "remove_listener"):
            old.remove_listener(self._on_clock)
        self.clock = clock
        if hasattr(clock, "add_listener"):
            clock.add_listener(self._on_clock)

    def discord_now(self) -> dt.datetime:
        """Discord's clock on the sandbox clock: ``clock.now()`` plus the conditions' skew. Native polls
        expire and the nonce window runs on it."""
        return self.clock.now() + dt.timedelta(seconds=self.clocks.skew)

    def _on_clock(self, _now: Any) -> None:
        self.tick()

    def tick(self) -> None:
        """Run what the sandbox clock has made due: native polls past their expiry end (not yet
        finalised), and ended polls whose background tally is done are finalised (P2)."""
        now = self.discord_now()
        for mid, (cid, expiry) in list(self._poll_expiry.items()):
            if expiry <= now:
                self._end_poll(cid, mid, at=expiry)
        for mid, (cid, when) in list(self._poll_finalize_at.items()):
            if when <= now:
                self.finalize_poll(cid, mid)

    def _end_poll(self, channel_id: int, message_id: int, *, at: dt.datetime | None = None) -> dict[str, Any] | None:
        """End a native poll: no more votes, ``results.is_finalized`` still false; the final tally runs
        ``poll_finalize_delay`` later on the sandbox clock. Poll Results object (discord-api-docs,
        resources/poll): "after a poll is finished there is a background job which performs a final,
        accurate tally of votes. This tally concludes once is_finalized is true"."""
        self._poll_expiry.pop(message_id, None)
        self._polls_ended.add(message_id)
        ch = self.channels.get(channel_id)
        msg = ch.messages.get(message_id) if ch else None
        if msg is None:
            return None
        ended = at or self.discord_now()
        self._update_counts(msg)
        msg["poll"]["expiry"] = iso(ended)
        msg["poll"]["results"]["is_finalized"] = False
        self._poll_finalize_at[message_id] = (
            channel_id,
            ended + dt.timedelta(seconds=self.poll_finalize_delay),
        )
        self._dispatch_sync("MESSAGE_UPDATE", msg)
        self._bump()
        return msg

    def poll_ended(self, message_id: int) -> bool:
        """True once a native poll has ended (expired or ended early), finalised or not."""
        return int(message_id) in self._polls_ended

    # ------------------------------------------------------------------ waiting
    def _bump(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every state change); return its value.

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"sandbox.wait_for: condition not met within {timeout}s")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.5))

    # ------------------------------------------------------------------ model builders
    def _make_user(self, uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
        user = {
            "id": str(uid),
            "username": name,
            "discriminator": "0",
            "global_name": None if bot else name,
            "avatar": None,
            "bot": bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }
        self.users[uid] = user
        return user

    def _member_dict(self, user: dict[str, Any], roles: list[int], joined_at: str) -> dict[str, Any]:
        return {
            "user": user,
            "nick": None,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in roles],
            "joined_at": joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }

    def _role_dict(self, rid: int, name: str, permissions: int, position: int, **extra: Any) -> dict[str, Any]:
        data = {
            "id": str(rid),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        data.update(extra)
        return data

    def _guild_dict(self, g: GuildRecord) -> dict[str, Any]:
        return {
            "id": str(g.id),
            "name": g.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(g.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": list(g.roles.values()),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": g.locale,
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "safety_alerts_channel_id": None,
        }

    def _guild_create_payload(self, g: GuildRecord, intents: int) -> dict[str, Any]:
        data = self._guild_dict(g)
        members = list(g.members.values()) if intents & I_MEMBERS else [g.members[self.bot_user_id]]
        channels, threads = [], []
        for cid in g.channel_ids:
            ch = self.channels[cid]
            d = {k: val for k, val in ch.data.items() if k != "guild_id"}
            (threads if ch.data["type"] in (10, 11, 12) else channels).append(d)
        data.update(
            {
                "joined_at": g.joined_at,
                "large": False,
                "unavailable": False,
                "member_count": len(g.members),
                "voice_states": [],
                "members": members,
                "channels": channels,
                "threads": [{**t, "guild_id": str(g.id)} for t in threads],
                "presences": [],
                "stage_instances": [],
                "guild_scheduled_events": list(g.scheduled_events.values()),
                "soundboard_sounds": [],
            }
        )
        return data

    # ------------------------------------------------------------------ public state API
    def create_guild(
        self,
        name: str,
        *,
        owner_name: str = "owner",
        bot_permissions: int = DEFAULT_BOT,
        everyone_permissions: int = DEFAULT_EVERYONE,
        locale: str = "en-US",
        guild_id: int | None = None,
    ) -> GuildRecord:
        """Create a guild with the bot as a member (a managed bot role holds ``bot_permissions``).

        Sent in GUILD_CREATE after READY, or live as GUILD_CREATE when a session is connected.
        ``guild_id`` picks the id (and so the shard, ``(id >> 22) % num_shards``); by default ids are
        time-based, so servers created in the same millisecond share a shard.
        """
        if guild_id is not None and guild_id in self.guilds:
            raise ValueError(f"guild {guild_id} exists already")
        gid = guild_id if guild_id is not None else self._snow()
        owner_id = self._snow()
        owner = self._make_user(owner_id, owner_name)
        now = iso(self.clocks.now())
        g = GuildRecord(id=gid, name=name, owner_id=owner_id, joined_at=now, locale=locale)
        g.roles[gid] = self._role_dict(gid, "@everyone", everyone_permissions, 0)
        bot_role = self._snow()
        g.roles[bot_role] = self._role_dict(
            bot_role,
            self.bot_user["username"],
            bot_permissions,
            1,
            managed=True,
            tags={"bot_id": str(self.bot_user_id)},
        )
        g.members[owner_id] = self._member_dict(owner, [], now)
        g.members[self.bot_user_id] = self._member_dict(self.bot_user, [bot_role], now)
        self.guilds[gid] = g
        self._dispatch_sync("GUILD_CREATE", None, guild=g)
        self._bump()
        return g

    def remove_guild(self, guild_id: int) -> None:
        """The bot is removed from the guild: GUILD_DELETE; its routes then answer 403 50001."""
        g = self._guild(guild_id)
        g.bot_present = False
        self._dispatch_sync("GUILD_DELETE", {"id": str(g.id)})
        self._bump()

    def rejoin_guild(self, guild_id: int) -> None:
        """The bot is added back: a fresh GUILD_CREATE."""
        g = self.guilds[guild_id]
        g.bot_present = True
        g.joined_at = iso(self.clocks.now())
        self._dispatch_sync("GUILD_CREATE", None, guild=g)
        self._bump()

    def start_outage(self, guild_id: int, *, status: int = 503) -> None:
        """A Discord outage of the guild (G4): GUILD_DELETE with ``unavailable: true`` (not a removal);
        until :meth:`end_outage` READY lists it as unavailable with no GUILD_CREATE, and every REST call
        on its guild, channels and messages answers ``status`` (5xx)."""
        g = self._guild(guild_id)
        g.outage = status
        self._dispatch_sync("GUILD_DELETE", {"id": str(g.id), "unavailable": True})
        self._bump()

    def end_outage(self, guild_id: int) -> None:
        """The guild is back: a full GUILD_CREATE, REST answers again."""
        g = self._guild(guild_id)
        g.outage = None
        if g.bot_present:
            self._dispatch_sync("GUILD_CREATE", None, guild=g)
        self._bump()

    def create_channel(
        self, guild_id: int, name: str, *, type: int = 0, topic: str | None = None, parent_id: int | None = None
    ) -> ChannelRecord:
        """Create a text channel (type 0 by default); CHANNEL_CREATE if connected."""
        g = self._guild(guild_id)
        cid = self._snow()
        data = {
            "id": str(cid),
            "type": type,
            "guild_id": str(g.id),
            "name": name,
            "position": len(g.channel_ids),
            "permission_overwrites": [],
            "topic": topic,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": str(parent_id) if parent_id else None,
            "default_auto_archive_duration": 1440,
            "flags": 0,
            "last_pin_timestamp": None,
        }
        ch = ChannelRecord(id=cid, guild_id=g.id, data=data)
        self.channels[cid] = ch
        g.channel_ids.append(cid)
        self._dispatch_sync("CHANNEL_CREATE", data, guild_id=g.id)
        self._bump()
        return ch

    def delete_channel(self, channel_id: int) -> None:
        """Delete a channel or thread (CHANNEL_DELETE / THREAD_DELETE); later calls get 404 10003."""
        ch = self._channel(channel_id)
        del self.channels[channel_id]
        g = self.guilds[ch.guild_id]
        g.channel_ids.remove(channel_id)
        if ch.data["type"] in (10, 11, 12):
            self._dispatch_sync(
                "THREAD_DELETE",
                {"id": str(ch.id), "guild_id": str(g.id), "parent_id": ch.data["parent_id"], "type": ch.data["type"]},
            )
        else:
            self._dispatch_sync("CHANNEL_DELETE", ch.data, guild_id=g.id)
        self._bump()

    def create_role(self, guild_id: int, name: str, permissions: int = 0) -> RoleRecord:
        """Create a role (GUILD_ROLE_CREATE if connected)."""
        g = self._guild(guild_id)
        rid = self._snow()
        data = self._role_dict(rid, name, permissions, len(g.roles))
        g.roles[rid] = data
        self._dispatch_sync("GUILD_ROLE_CREATE", {"guild_id": str(g.id), "role": data})
        self._bump()
        return RoleRecord(id=rid, guild_id=g.id, data=data)

    def add_member(
        self,
        guild_id: int,
        name: str,
        *,
        roles: list[int] | None = None,
        joined_at: dt.datetime | None = None,
        user_id: int | None = None,
    ) -> MemberRecord:
        """Add a (human) member; ``.id`` is the user id. GUILD_MEMBER_ADD if the bot has the intent."""
        g = self._guild(guild_id)
        uid = user_id or self._snow()
        user = self.users.get(uid) or self._make_user(uid, name)
        data = self._member_dict(user, [int(r) for r in roles or []], iso(joined_at or self.clocks.now()))
        g.members[uid] = data
        self._dispatch_sync("GUILD_MEMBER_ADD", {**data, "guild_id": str(g.id)})
        self._bump()
        return MemberRecord(id=uid, guild_id=g.id, data=data)

    def set_channel_permissions(
        self,
        channel_id: int,
        *,
        allow_bot: int = 0,
        deny_bot: int = 0,
        target_id: int | None = None,
        allow: int = 0,
        deny: int = 0,
        target_type: int = 0,
    ) -> None:
        """Set a permission overwrite (for the bot member, or for ``target_id`` role(0)/member(1)).

        Sends CHANNEL_UPDATE. REST calls the bot then lacks permission for get 403 50013.
        """
        ch = self._channel(channel_id)
        overwrites = ch.data["permission_overwrites"]
        if target_id is None:
            target_id, target_type, allow, deny = self.bot_user_id, 1, allow_bot, deny_bot
        overwrites[:] = [o for o in overwrites if int(o["id"]) != target_id]
        overwrites.append({"id": str(target_id), "type": target_type, "allow": str(allow), "deny": str(deny)})
        event = "THREAD_UPDATE" if ch.data["type"] in (10, 11, 12) else "CHANNEL_UPDATE"
        self._dispatch_sync(event, ch.data, guild_id=ch.guild_id)
        self._bump()

    def delete_message(self, channel_id: int, message_id: int) -> None:
        """Delete a message as a moderator would (MESSAGE_DELETE)."""
        ch = self._channel(channel_id)
        if ch.messages.pop(message_id, None) is None:
            raise KeyError(message_id)
        ch.pins.pop(message_id, None)
        self._dispatch_sync(
            "MESSAGE_DELETE", {"id": str(message_id), "channel_id": str(ch.id), "guild_id": str(ch.guild_id)}
        )
        self._bump()

    def user_message(
        self, channel_id: int, user_id: int, content: str, *, poll: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A member posts a message (MESSAGE_CREATE; content hidden without the MESSAGE_CONTENT intent).

        ``poll``: a poll create request (``{"question": {"text": ...}, "answers": [...], "duration": h}``),
        for a member's own native poll."""
        ch = self._channel(channel_id)
        payload: dict[str, Any] = {"content": content}
        if poll is not None:
            v.validate_message({**payload, "poll": poll})
            payload["poll"] = poll
        msg = self._new_message(ch, payload, [], author=self.users[user_id])
        self._store_message(ch, msg)
        return msg

    def attach(self, filename: str, data: bytes, content_type: str = "application/octet-stream") -> dict[str, Any]:
        """Register a file and return an attachment dict (for attachment options); served over HTTP."""
        aid = self._snow()
        self.attachments[aid] = (filename, data, content_type)
        url = f"{self.base_url}/attachments/{aid}/{filename}"
        return {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    # queries
    def messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Current messages in a channel, oldest first (ephemeral messages are not included)."""
        return list(self._channel(channel_id).messages.values())

    def message(self, channel_id: int, message_id: int) -> dict[str, Any] | None:
        return self._channel(channel_id).messages.get(message_id)

    def threads(self, channel_id: int) -> list[dict[str, Any]]:
        return [
            c.data
            for c in self.channels.values()
            if c.data["type"] in (10, 11, 12) and c.data["parent_id"] == str(channel_id)
        ]

    def pins(self, channel_id: int) -> list[dict[str, Any]]:
        ch = self._channel(channel_id)
        return [ch.messages[m] for m in ch.pins if m in ch.messages]

    def scheduled_events(self, guild_id: int) -> list[dict[str, Any]]:
        return list(self.guilds[guild_id].scheduled_events.values())

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The synced commands: global ones, or a guild's."""
        return list(self.global_commands if guild_id is None else self.guild_commands.get(guild_id, []))

    def requests_to(self, route_substring: str, method: str | None = None) -> list[RequestRecord]:
        """Recorded requests whose path or route template contains ``route_substring``."""
        return [
            r
            for r in self.requests
            if (route_substring in r.path or route_substring in r.route) and (method is None or r.method == method)
        ]

    # ------------------------------------------------------------------ lookups
    def _guild(self, guild_id: int) -> GuildRecord:
        try:
            return self.guilds[int(guild_id)]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}") from None

    def _channel(self, channel_id: int) -> ChannelRecord:
        try:
            return self.channels[int(channel_id)]
        except KeyError:
            raise KeyError(f"unknown channel {channel_id}") from None

    def _find_message(self, message_id: int) -> dict[str, Any] | None:
        if message_id in self._ephemeral:
            return self._ephemeral[message_id]
        for ch in self.channels.values():
            if message_id in ch.messages:
                return ch.messages[message_id]
        return None

    def _rest_guild(self, guild_id: str | int) -> GuildRecord:
        g = self.guilds.get(int(guild_id))
        if g is None:
            raise not_found(10004)
        self._check_outage(g)
        if not g.bot_present:
            raise forbidden(50001)
        return g

    def _check_outage(self, g: GuildRecord) -> None:
        if g.outage is not None:
            names = {500: "500: Internal Server Error", 502: "502: Bad Gateway", 503: "503: Service Unavailable"}
            raise DiscordHTTPError(g.outage, 0, names.get(g.outage, f"{g.outage}: Server Error"))

    def _rest_channel(self, channel_id: str | int, need: int = VIEW) -> ChannelRecord:
        try:
            ch = self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise not_found(10003) from None
        g = self.guilds[ch.guild_id]
        self._check_outage(g)
        if not g.bot_present:
            raise forbidden(50001)
        perms = self.permissions_for(g.id, self.bot_user_id, ch.id)
        if not perms & VIEW:
            raise forbidden(50001)
        if perms & need != need:
            raise forbidden(50013)
        return ch

    def _rest_message(self, ch: ChannelRecord, message_id: str) -> dict[str, Any]:
        msg = ch.messages.get(int(message_id))
        if msg is None:
            raise not_found(10008)
        return msg

    def permissions_for(self, guild_id: int, user_id: int, channel_id: int | None = None) -> int:
        """Discord's permission computation (owner/admin = all, roles, then channel overwrites)."""
        g = self.guilds[guild_id]
        if user_id == g.owner_id:
            return ALL_PERMISSIONS
        member = g.members.get(user_id)
        role_ids = [int(r) for r in member["roles"]] if member else []
        perms = int(g.roles[g.id]["permissions"])
        for rid in role_ids:
            if rid in g.roles:
                perms |= int(g.roles[rid]["permissions"])
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        if channel_id is None or channel_id not in self.channels:
            return perms
        ch = self.channels[channel_id]
        if ch.data["type"] in (10, 11, 12) and ch.data.get("parent_id"):
            ch = self.channels.get(int(ch.data["parent_id"]), ch)
        ows = {int(o["id"]): o for o in ch.data.get("permission_overwrites", [])}
        if g.id in ows:
            perms = (perms & ~int(ows[g.id]["deny"])) | int(ows[g.id]["allow"])
        allow = deny = 0
        for rid in role_ids:
            if rid in ows:
                allow |= int(ows[rid]["allow"])
                deny |= int(ows[rid]["deny"])
        perms = (perms & ~deny) | allow
        if user_id in ows:
            perms = (perms & ~int(ows[user_id]["deny"])) | int(ows[user_id]["allow"])
        if not perms & VIEW:
            return 0
        return perms

    # ------------------------------------------------------------------ messages
    def _mentions(self, ch: ChannelRecord, payload: dict[str, Any], author_is_bot: bool) -> dict[str, Any]:
        content = payload.get("content") or ""
        am = payload.get("allowed_mentions")
        parse = {"users", "roles", "everyone"} if am is None else set(am.get("parse") or [])
        allowed_users = {int(u) for u in (am or {}).get("users", [])}
        allowed_roles = {int(r) for r in (am or {}).get("roles", [])}
        g = self.guilds[ch.guild_id]
        users = []
        for uid in dict.fromkeys(int(m) for m in re.findall(r"<@!?(\d+)>", content)):
            if ("users" in parse or uid in allowed_users) and uid in self.users:
                users.append(self.users[uid])
        roles = []
        for rid in dict.fromkeys(int(r) for r in re.findall(r"<@&(\d+)>", content)):
            if ("roles" in parse or rid in allowed_roles) and rid in g.roles:
                roles.append(str(rid))
        everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
        if (
            everyone
            and author_is_bot
            and not self.permissions_for(g.id, self.bot_user_id, ch.id) & P(mention_everyone=True).value
        ):
            everyone = False
        return {"mentions": users, "mention_roles": roles, "mention_everyone": everyone}

    def _make_attachments(
        self,
        specs: list[dict[str, Any]] | None,
        files: list[tuple[str, str, bytes, str]],
        existing: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """files: (field name, filename, data, content type). Keeps existing attachments listed by id."""
        by_index = {}
        for field, filename, data, ctype in files:
            m = re.match(r"files\[(\d+)\]", field)
            idx = int(m.group(1)) if m else len(by_index)
            by_index[idx] = (filename, data, ctype)
        existing_by_id = {int(a["id"]): a for a in existing}
        out: list[dict[str, Any]] = []
        used = set()
        for spec in specs or []:
            sid = int(spec["id"])
            if sid in by_index:
                filename, data, ctype = by_index[sid]
                used.add(sid)
                att = self.attach(spec.get("filename") or filename, data, ctype)
                if spec.get("description"):
                    att["description"] = spec["description"]
                out.append(att)
            elif sid in existing_by_id:
                out.append(existing_by_id[sid])
        for idx, (filename, data, ctype) in sorted(by_index.items()):
            if idx not in used:
                out.append(self.attach(filename, data, ctype))
        return out

    def _build_poll(self, poll: dict[str, Any]) -> dict[str, Any]:
        hours = poll.get("duration", 24)
        return {
            "question": {"text": poll["question"]["text"]},
            "answers": [
                {"answer_id": i + 1, "poll_media": dict(a.get("poll_media") or {})}
                for i, a in enumerate(poll["answers"])
            ],
            "expiry": iso(self.discord_now() + dt.timedelta(hours=hours)),
            "allow_multiselect": bool(poll.get("allow_multiselect", False)),
            "layout_type": poll.get("layout_type", 1),
            "results": {"is_finalized": False, "answer_counts": []},
        }

    def _new_message(
        self,
        ch: ChannelRecord,
        payload: dict[str, Any],
        files: list[tuple[str, str, bytes, str]],
        *,
        author: dict[str, Any],
        msg_type: int = 0,
        interaction: Interaction | None = None,
    ) -> dict[str, Any]:
        mid = self._snow()
        author_is_bot = int(author["id"]) == self.bot_user_id
        msg: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(ch.id),
            "guild_id": str(ch.guild_id),
            "author": author,
            "content": payload.get("content") or "",
            "timestamp": iso(self.clocks.now()),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts", False)),
            "attachments": self._make_attachments(payload.get("attachments"), files, []),
            "embeds": [{"type": "rich", **e} for e in payload.get("embeds") or []],
            "components": payload.get("components") or [],
            "pinned": False,
            "type": msg_type,
            "flags": int(payload.get("flags") or 0),
            "nonce": payload.get("nonce"),
            "allowed_mentions": payload.get("allowed_mentions"),
            "sticker_items": [],
            "reactions": [],
        }
        g = self.guilds.get(ch.guild_id)
        member = g.members.get(int(author["id"])) if g else None
        if member is not None:
            msg["member"] = {k: val for k, val in member.items() if k != "user"}
        msg.update(self._mentions(ch, payload, author_is_bot))
        if payload.get("poll"):
            msg["poll"] = self._build_poll(payload["poll"])
            self.poll_votes[mid] = {a["answer_id"]: [] for a in msg["poll"]["answers"]}
            expiry = self.discord_now() + dt.timedelta(hours=payload["poll"].get("duration", 24))
            self._poll_expiry[mid] = (ch.id, expiry)
        if payload.get("message_reference"):
            ref = payload["message_reference"]
            msg["message_reference"] = {
                "type": ref.get("type", 0),
                "message_id": ref.get("message_id"),
                "channel_id": ref.get("channel_id", str(ch.id)),
                "guild_id": str(ch.guild_id),
            }
            if msg_type == 0:
                msg["type"] = 19
        if interaction is not None:
            msg["webhook_id"] = str(self.application_id)
            msg["application_id"] = str(self.application_id)
            meta: dict[str, Any] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": self.users[interaction.user_id],
                "authorizing_integration_owners": {"0": str(interaction.guild_id)},
            }
            if interaction.type == 2:
                meta["name"] = interaction.payload["data"]["name"]
                meta["command_type"] = 1
            if interaction.message is not None:
                meta["interacted_message_id"] = interaction.message["id"]
            msg["interaction_metadata"] = meta
        return msg

    def _store_message(self, ch: ChannelRecord, msg: dict[str, Any]) -> None:
        if msg["flags"] & v.EPHEMERAL_FLAG:
            self._ephemeral[int(msg["id"])] = msg
            self._bump()
            return
        ch.messages[int(msg["id"])] = msg
        ch.data["last_message_id"] = msg["id"]
        if ch.data["type"] in (10, 11, 12):
            ch.data["message_count"] = ch.data.get("message_count", 0) + 1
            ch.data["total_message_sent"] = ch.data.get("total_message_sent", 0) + 1
        self._dispatch_sync("MESSAGE_CREATE", msg)
        self._bump()

    def _edit_message(self, msg: dict[str, Any], payload: dict[str, Any], files: list[Any]) -> dict[str, Any]:
        v.validate_message({**payload, "flags": payload.get("flags", msg["flags"])}, edit=True)
        for key in ("content", "components", "allowed_mentions"):
            if key in payload:
                msg[key] = payload[key] if payload[key] is not None else ([] if key == "components" else "")
        if "embeds" in payload:
            msg["embeds"] = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if "flags" in payload and payload["flags"] is not None:
            msg["flags"] = (msg["flags"] & ~0x4) | (int(payload["flags"]) & 0x4) | (msg["flags"] & v.EPHEMERAL_FLAG)
        if "attachments" in payload or files:
            specs = payload.get("attachments")
            if specs is None:
                specs = [{"id": a["id"]} for a in msg["attachments"]]
            msg["attachments"] = self._make_attachments(specs, files, msg["attachments"])
        msg["flags"] &= ~128  # no longer "loading" after an edit
        msg["edited_timestamp"] = iso(self.clocks.now())
        if int(msg["id"]) not in self._ephemeral:
            self._dispatch_sync("MESSAGE_UPDATE", msg)
        self._bump()
        return msg

    def _remove_message(self, msg: dict[str, Any]) -> None:
        mid = int(msg["id"])
        if self._ephemeral.pop(mid, None) is not None:
            self._bump()
            return
        ch = self.channels.get(int(msg["channel_id"]))
        if ch is not None and ch.messages.pop(mid, None) is not None:
            ch.pins.pop(mid, None)
            self._dispatch_sync(
                "MESSAGE_DELETE", {"id": msg["id"], "channel_id": msg["channel_id"], "guild_id": str(ch.guild_id)}
            )
        self._bump()

    # ------------------------------------------------------------------ HTTP plumbing
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path
        if not path.startswith(API_PREFIX):
            return await handler(request)
        self.in_flight += 1
        try:
            return await self._serve(request, handler, path)
        finally:
            self.in_flight -= 1
            self._bump()

    async def _serve(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        path: str,
    ) -> web.StreamResponse:
        rel = path[len(API_PREFIX) :]
        info = request.match_info
        resource = info.route.resource if info.route is not None else None
        route = resource.canonical[len(API_PREFIX) :] if resource is not None else rel
        body_json, files = await self._read_body(request)
        request[JSON_KEY], request[FILES_KEY] = body_json, files
        # The request's trip to Discord: from here on Discord has it (limits and deadlines count from now).
        going = self.clocks.delay()
        if going:
            await asyncio.sleep(going)
        headers = {k: val for k, val in request.headers.items() if k.lower() != "authorization"}
        rec = RequestRecord(
            method=request.method,
            path=rel,
            route=route,
            query=dict(request.query),
            json=body_json,
            files=[(f[1], f[2]) for f in files],
            headers=headers,
            at=time.monotonic(),
        )
        self.requests.append(rec)
        self.tick()  # with the wall clock, due poll steps run lazily, before any request sees them
        response: web.StreamResponse
        limit_headers: dict[str, str] = {}
        scope: str | None = None
        try:
            if self.limits.banned:
                refusal: Refusal | None = self.limits.ban_refusal()
            else:
                refusal = None
                if self.faults.latency_seconds:
                    await asyncio.sleep(self.faults.latency_seconds)
                needs_auth = not (rel.startswith(("/interactions/", "/webhooks/")) or rel in ("/gateway",))
                if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                    raise DiscordHTTPError(401, 0, "401: Unauthorized")
                if self.conditions.rate_limits:
                    refusal, limit_headers = self.limits.take(request.method, rel, route, dict(info))
            if refusal is not None:
                rec.fault = "banned" if refusal.scope == "ban" else f"ratelimit:{refusal.scope}"
                response = self._refusal_response(refusal)
                scope = refusal.scope
            else:
                fault = self.faults.pick(request.method, rel, route)
                rec.fault = fault.kind if fault else None
                if fault is not None and fault.kind == "rate_limit":
                    scope = fault.params.get("scope", "user")
                    response = self._rate_limited(fault.params["retry_after"], fault.params["global_"], route, scope)
                elif fault is not None and fault.kind == "forbidden":
                    raise forbidden(fault.params["code"])
                elif fault is not None and fault.kind == "not_found":
                    raise not_found(fault.params["code"])
                elif fault is not None and fault.kind == "server_error" and not fault.params["after_effect"]:
                    response = self._server_error(fault.params["status"])
                else:
                    response = await handler(request)
                    if fault is not None and fault.kind == "server_error":
                        response = self._server_error(fault.params["status"])
                    elif fault is not None and fault.kind == "slow_answer":
                        rec.status = response.status  # done on the server's side; the answer is held
                        self._bump()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stopping.wait(), fault.params["seconds"])
        except DiscordHTTPError as exc:
            response = _json(exc.body, exc.status)
        except web.HTTPNotFound:
            response = _json({"message": "404: Not Found", "code": 0}, 404)
        except web.HTTPMethodNotAllowed:
            response = _json({"message": "405: Method Not Allowed", "code": 0}, 405)
        if response.status != 429:
            response.headers.update(limit_headers or self._ratelimit_headers(route))
        if scope == "shared":
            self.limits.shared_429s += 1
        self.limits.note(response.status, scope)
        # Discord's clock in the Date header (aiohttp would put the host's).
        response.headers["Date"] = email.utils.formatdate(self.clocks.wall(), usegmt=True)
        rec.status = response.status
        body = getattr(response, "body", None)
        if isinstance(body, bytes) and body:
            with contextlib.suppress(ValueError):
                rec.response = json.loads(body)
        self._bump()
        # The answer's trip back to the client.
        coming = self.clocks.delay()
        if coming:
            await asyncio.sleep(coming)
        return response

    def _refusal_response(self, refusal: Refusal) -> web.Response:
        if isinstance(refusal.body, str):
            return web.Response(body=refusal.body.encode(), status=refusal.status, headers=refusal.headers)
        return _json(refusal.body, refusal.status, refusal.headers)

    def _ratelimit_headers(self, route: str) -> dict[str, str]:
        """Headers of a bucket that never runs out (rate limits off)."""
        return {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{self.clocks.wall() + 0.05:.3f}",
            "X-RateLimit-Reset-After": "0.05",
            "X-RateLimit-Bucket": format(abs(hash(route)) % (1 << 48), "x"),
            "Via": "1.1 google",
        }

    def _rate_limited(self, retry_after: float, global_: bool, route: str, scope: str = "user") -> web.Response:
        """An injected 429 (``faults.rate_limit``): Discord's body and headers for a user, global or shared
        (per-resource) limit (Rate Limits, "Exceeding A Rate Limit")."""
        scope = "global" if global_ else scope
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Scope": scope,
            "Via": "1.1 google",
        }
        if global_:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": "5",
                    # a shared (resource) limit is hit with the bot's own bucket not spent
                    "X-RateLimit-Remaining": "4" if scope == "shared" else "0",
                    "X-RateLimit-Reset": f"{self.clocks.wall() + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": format(abs(hash(route)) % (1 << 48), "x"),
                }
            )
        message = "The resource is being rate limited." if scope == "shared" else "You are being rate limited."
        body = {"message": message, "retry_after": retry_after, "global": global_}
        if not global_:
            body["code"] = 0
        return _json(body, 429, headers)

    def _server_error(self, status: int) -> web.Response:
        names = {500: "500: Internal Server Error", 502: "502: Bad Gateway", 503: "503: Service Unavailable"}
        return _json({"message": names.get(status, f"{status}: Server Error"), "code": 0}, status)

    async def _read_body(self, request: web.Request) -> tuple[Any, list[tuple[str, str, bytes, str]]]:
        if not request.can_read_body:
            return None, []
        ctype = request.content_type
        if ctype == "multipart/form-data":
            payload: Any = None
            files: list[tuple[str, str, bytes, str]] = []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    data = await part.read()  # type: ignore[union-attr]
                    files.append(
                        (
                            part.name or "",
                            part.filename or "file",  # type: ignore[union-attr]
                            bytes(data),
                            part.headers.get("Content-Type", "application/octet-stream"),
                        )
                    )
            return payload, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            raise DiscordHTTPError(400, 50109, "The request body contains invalid JSON.") from None

    def _add_routes(self, app: web.Application) -> None:
        from . import routes

        routes.add_routes(self, app)
