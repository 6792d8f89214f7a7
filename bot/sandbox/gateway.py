"""The sandbox's gateway: websocket sessions, IDENTIFY (pacing, session start limit, sharding), RESUME,
and the dispatch of events to the sessions (shards) that own them, filtered by intents.

The world the events describe (guilds, channels, messages) and the REST API are in ``server.py``;
:class:`GatewayMixin` is a base of :class:`~bot.sandbox.server.Sandbox` and reads that state.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import secrets
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .records import GuildRecord
    from .server import Sandbox

# discord-api-docs, Gateway, "Sharding": "Each shard can only support a maximum of 2500 guilds".
MAX_GUILDS_PER_SHARD = 2500
GUILDS_PER_RECOMMENDED_SHARD = 1000

# intents
I_GUILDS = 1 << 0
I_MEMBERS = 1 << 1
I_GUILD_MESSAGES = 1 << 9
I_REACTIONS = 1 << 10
I_MESSAGE_CONTENT = 1 << 15
I_EVENTS = 1 << 16
I_POLLS = 1 << 24
PRIVILEGED = I_MEMBERS | (1 << 8) | I_MESSAGE_CONTENT

EVENT_INTENTS = {
    "GUILD_CREATE": I_GUILDS,
    "GUILD_UPDATE": I_GUILDS,
    "GUILD_DELETE": I_GUILDS,
    "GUILD_ROLE_CREATE": I_GUILDS,
    "GUILD_ROLE_UPDATE": I_GUILDS,
    "GUILD_ROLE_DELETE": I_GUILDS,
    "CHANNEL_CREATE": I_GUILDS,
    "CHANNEL_UPDATE": I_GUILDS,
    "CHANNEL_DELETE": I_GUILDS,
    "CHANNEL_PINS_UPDATE": I_GUILDS,
    "THREAD_CREATE": I_GUILDS,
    "THREAD_UPDATE": I_GUILDS,
    "THREAD_DELETE": I_GUILDS,
    "GUILD_MEMBER_ADD": I_MEMBERS,
    "GUILD_MEMBER_UPDATE": I_MEMBERS,
    "GUILD_MEMBER_REMOVE": I_MEMBERS,
    "MESSAGE_CREATE": I_GUILD_MESSAGES,
    "MESSAGE_UPDATE": I_GUILD_MESSAGES,
    "MESSAGE_DELETE": I_GUILD_MESSAGES,
    "MESSAGE_DELETE_BULK": I_GUILD_MESSAGES,
    "MESSAGE_REACTION_ADD": I_REACTIONS,
    "MESSAGE_REACTION_REMOVE": I_REACTIONS,
    "GUILD_SCHEDULED_EVENT_CREATE": I_EVENTS,
    "GUILD_SCHEDULED_EVENT_UPDATE": I_EVENTS,
    "GUILD_SCHEDULED_EVENT_DELETE": I_EVENTS,
    "MESSAGE_POLL_VOTE_ADD": I_POLLS,
    "MESSAGE_POLL_VOTE_REMOVE": I_POLLS,
}


def shard_of(guild_id: int, num_shards: int) -> int:
    """The shard a guild's events go to: ``(guild_id >> 22) % num_shards``.

    Source: discord-api-docs, Gateway, "Sharding" ("Sharding Formula").
    """
    return (guild_id >> 22) % num_shards


class _Session:
    def __init__(self, session_id: str, intents: int, shard: list[int] | None) -> None:
        self.id = session_id
        self.intents = intents
        self.shard = list(shard) if shard else [0, 1]
        self.seq = 0
        self.buffer: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=100_000)
        self.conn: _Conn | None = None

    def owns(self, guild_id: int | None) -> bool:
        """Whether this session receives the guild's events; guild-less events go to shard 0 only."""
        shard_id, num_shards = self.shard
        if guild_id is None:
            return shard_id == 0
        return shard_of(guild_id, num_shards) == shard_id


class _Conn:
    def __init__(
        self, ws: web.WebSocketResponse, compress: str | None, delay: Callable[[], float] | None = None
    ) -> None:
        self.ws = ws
        self.zlib = zlib.compressobj() if compress == "zlib-stream" else None
        # (when it may be written, frame); frames keep their order (one TCP stream), each after its latency
        self.queue: asyncio.Queue[tuple[float, dict[str, Any] | None]] = asyncio.Queue()
        self._delay = delay
        self.session: _Session | None = None
        self.writer: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    def send(self, payload: dict[str, Any] | None) -> None:
        delay = self._delay() if self._delay is not None and payload is not None else 0.0
        self.queue.put_nowait((time.monotonic() + delay, payload))

    async def write_loop(self) -> None:
        while True:
            due, payload = await self.queue.get()
            try:
                if payload is None or self.ws.closed:
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    if self.ws.closed:
                        return
                raw = json.dumps(payload)
                if self.zlib is not None:
                    data = self.zlib.compress(raw.encode()) + self.zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(raw)
            except (ConnectionResetError, RuntimeError):
                return
            finally:
                self.queue.task_done()


_Base = object


class GatewayMixin(_Base):
    """Methods of :class:`~bot.sandbox.Sandbox` that speak the gateway protocol."""

    def _dispatch_sync(
        self: Sandbox,
        event: str,
        data: dict[str, Any] | None,
        *,
        guild: GuildRecord | None = None,
        guild_id: int | None = None,
    ) -> None:
        """Queue a dispatch on every session (buffered for RESUME when disconnected)."""
        if guild is None and data is not None and guild_id is not None and "guild_id" not in data:
            data = {**data, "guild_id": str(guild_id)}
        recorded = data if data is not None else {"id": str(guild.id) if guild else None}
        self.gateway_events.append((event, recorded))
        owner = self._event_guild_id(event, data, guild)
        for session in list(self._sessions.values()):
            if not session.owns(owner):
                continue  # only the shard that owns the guild hears of it (shard 0 for guild-less events)
            need = EVENT_INTENTS.get(event, 0)
            if need and not session.intents & need:
                continue
            payload_data = data
            if guild is not None:
                payload_data = self._guild_create_payload(guild, session.intents)
            elif event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and data is not None:
                payload_data = self._content_filter(data, session.intents)
            self._send_dispatch(session, event, payload_data)

    def _event_guild_id(
        self: Sandbox, event: str, data: dict[str, Any] | None, guild: GuildRecord | None
    ) -> int | None:
        if guild is not None:
            return guild.id
        if data is None:
            return None
        if event in ("GUILD_DELETE", "GUILD_UPDATE") and "id" in data:
            return int(data["id"])
        if data.get("guild_id") is not None:
            return int(data["guild_id"])
        channel_id = data.get("channel_id")
        if channel_id is not None and int(channel_id) in self.channels:
            return self.channels[int(channel_id)].guild_id
        return None

    def _content_filter(self: Sandbox, msg: dict[str, Any], intents: int) -> dict[str, Any]:
        if intents & I_MESSAGE_CONTENT or (self.privileged_intents and intents & I_MESSAGE_CONTENT):
            return msg
        if msg.get("author", {}).get("id") == str(self.bot_user_id):
            return msg
        if any(u.get("id") == str(self.bot_user_id) for u in msg.get("mentions", [])):
            return msg
        return {**msg, "content": "", "embeds": [], "attachments": [], "components": [], "poll": None}

    def _send_dispatch(self: Sandbox, session: _Session, event: str, data: Any) -> None:
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append((session.seq, payload))
        if session.conn is not None:
            session.conn.send(payload)

    async def dispatch(self: Sandbox, event: str, data: dict[str, Any]) -> None:
        """Send a raw gateway dispatch to every session and wait until it is written to the socket."""
        self._dispatch_sync(event, data)
        await self._flush()
        self._bump()

    async def _flush(self: Sandbox, timeout: float = 5.0) -> None:
        for conn in list(self._conns):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.queue.join(), timeout)

    async def drop_gateway(self: Sandbox, resume: bool = True, code: int = 4000) -> None:
        """Close the gateway socket(s). ``resume=True``: the session survives and the client RESUMEs
        (missed dispatches replayed). ``resume=False``: the session is forgotten, the RESUME gets
        op 9 and the client IDENTIFIES again (READY, on_ready)."""
        if not resume:
            for conn in list(self._conns):
                if conn.session is not None:
                    self._sessions.pop(conn.session.id, None)
        for conn in list(self._conns):
            await conn.ws.close(code=code)
        self._bump()

    async def reconnect(self: Sandbox) -> None:
        """Send op 7 RECONNECT: the client closes and resumes."""
        for conn in list(self._conns):
            conn.send({"op": 7, "d": None})
        await self._flush()

    async def invalidate_session(self: Sandbox, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION (d=``resumable``). With False the session is dropped, the client
        re-IDENTIFIES and ``on_ready`` fires again."""
        for conn in list(self._conns):
            if not resumable and conn.session is not None:
                self._sessions.pop(conn.session.id, None)
            conn.send({"op": 9, "d": resumable})
        await self._flush()
        self._bump()

    @property
    def recommended_shards(self: Sandbox) -> int:
        """What ``GET /gateway/bot`` recommends: one shard per 1,000 servers (believed: Discord's own
        figure is undocumented; it stays well under the 2,500 a shard may hold)."""
        present = sum(1 for g in self.guilds.values() if g.bot_present)
        return max(1, -(-present // GUILDS_PER_RECOMMENDED_SHARD))

    def session_start_limit(self: Sandbox) -> dict[str, int]:
        """The ``session_start_limit`` object of ``GET /gateway/bot`` (every IDENTIFY spends one)."""
        return {
            "total": self.session_start_total,
            "remaining": max(0, self.session_start_total - self.session_starts),
            "reset_after": 86_400_000,
            "max_concurrency": self.max_concurrency,
        }

    def sessions(self: Sandbox) -> list[list[int]]:
        """``[shard_id, num_shards]`` of every live session (identified and connected)."""
        return [list(c.session.shard) for c in self._conns if c.session is not None and not c.ws.closed]

    def guilds_of_shard(self: Sandbox, shard_id: int, num_shards: int) -> list[GuildRecord]:
        return [g for g in self.guilds.values() if g.bot_present and shard_of(g.id, num_shards) == shard_id]

    @property
    def connected(self: Sandbox) -> bool:
        """True when a gateway connection has an identified or resumed session."""
        return any(c.session is not None and not c.ws.closed for c in self._conns)

    async def _gateway(self: Sandbox, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        compress = request.query.get("compress")
        if compress not in (None, "zlib-stream"):
            await ws.close(code=4000, message=b"sandbox supports zlib-stream only")
            return ws
        conn = _Conn(ws, compress, lambda: self.clocks.delay())
        self._conns.add(conn)
        self.connect_count += 1
        conn.writer = asyncio.create_task(conn.write_loop())
        conn.send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval, "_trace": ["sandbox"]}})
        try:
            async for msg in ws:
                if msg.type.name != "TEXT":
                    continue
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                await self._gateway_op(conn, frame)
        finally:
            self._conns.discard(conn)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            conn.send(None)
            with contextlib.suppress(Exception):
                await conn.writer
            conn.closed.set()
            self._bump()
        return ws

    async def _gateway_op(self: Sandbox, conn: _Conn, frame: dict[str, Any]) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:
            conn.send({"op": 11, "d": None})
        elif op == 2:
            if not isinstance(d, dict) or d.get("token") != self.token:
                await conn.ws.close(code=4004, message=b"Authentication failed.")
                return
            intents = int(d.get("intents") or 0)
            if intents & PRIVILEGED and not self.privileged_intents:
                await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
                return
            shard = d.get("shard")
            if shard is None:
                shard = [0, 1]
            if not (
                isinstance(shard, list)
                and len(shard) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in shard)
                and 0 <= shard[0] < shard[1]
            ):
                # discord-api-docs, Gateway, close code 4010 "Invalid shard".
                self.rejected_identifies.append((shard, "4010"))
                await conn.ws.close(code=4010, message=b"Invalid shard.")
                return
            shard_id, num_shards = shard
            if self.session_starts >= self.session_start_total:
                # The daily session start limit is spent: Discord refuses further sessions.
                self.rejected_identifies.append((shard, "session_start_limit"))
                conn.send({"op": 9, "d": False})
                return
            loop_now = asyncio.get_running_loop().time()
            bucket = shard_id % self.max_concurrency
            last = self._bucket_last_identify.get(bucket)
            if last is not None and loop_now - last < self.identify_interval:
                # Too soon in this bucket: "the gateway will respond with an Opcode 9 Invalid Session"
                # (discord-api-docs, Gateway, "Identifying").
                self.rejected_identifies.append((shard, "rate"))
                conn.send({"op": 9, "d": False})
                self._bump()
                return
            self._bucket_last_identify[bucket] = loop_now
            self.session_starts += 1
            guilds = self.guilds_of_shard(shard_id, num_shards)
            if len(guilds) > MAX_GUILDS_PER_SHARD:
                # "Each shard can only support a maximum of 2500 guilds" (discord-api-docs, Gateway,
                # "Sharding"); close code 4011 "Sharding required".
                self.rejected_identifies.append((shard, "4011"))
                await conn.ws.close(code=4011, message=b"Sharding required.")
                return
            session = _Session(secrets.token_hex(16), intents, shard)
            self._sessions[session.id] = session
            session.conn = conn
            conn.session = session
            self.identify_count += 1
            self.identify_log.append((loop_now, list(shard)))
            ready = {
                "v": 10,
                "user": self.bot_user,
                "user_settings": {},
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "shard": session.shard,
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "geo_ordered_rtc_regions": [],
                "guild_join_requests": [],
                "_trace": ["sandbox"],
            }
            self._send_dispatch(session, "READY", ready)
            if intents & I_GUILDS:
                for g in guilds:
                    if g.outage is not None:
                        continue  # unavailable: its GUILD_CREATE comes when the outage ends
                    self._send_dispatch(session, "GUILD_CREATE", self._guild_create_payload(g, intents))
            self._bump()
        elif op == 6:
            session = self._sessions.get((d or {}).get("session_id", ""))
            if session is None or d.get("token") != self.token:
                conn.send({"op": 9, "d": False})
                return
            seq = int(d.get("seq") or 0)
            missed = [p for s, p in session.buffer if s > seq]
            if session.buffer and session.buffer[0][0] > seq + 1:
                conn.send({"op": 9, "d": False})
                self._sessions.pop(session.id, None)
                return
            old = session.conn
            session.conn = conn
            conn.session = session
            if old is not None and old is not conn:
                old.session = None
                with contextlib.suppress(Exception):
                    await old.ws.close(code=4000)
            for payload in missed:
                conn.send(payload)
            self.resume_count += 1
            self._send_dispatch(session, "RESUMED", {"_trace": ["sandbox"]})
            self._bump()
        elif op == 8:
            session = conn.session
            if session is None:
                return
            g = self.guilds.get(int(d["guild_id"]))
            if g is None or not session.owns(g.id):
                return
            members = list(g.members.values())
            ids = d.get("user_ids")
            if ids:
                wanted = {int(i) for i in (ids if isinstance(ids, list) else [ids])}
                members = [m for m in members if int(m["user"]["id"]) in wanted]
            elif d.get("query"):
                members = [m for m in members if m["user"]["username"].startswith(d["query"])]
            limit = d.get("limit") or 0
            if limit:
                members = members[:limit]
            chunk = {"guild_id": str(g.id), "members": members, "chunk_index": 0, "chunk_count": 1}
            if d.get("nonce"):
                chunk["nonce"] = d["nonce"]
            self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)
        elif op in (3, 4):
            return
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")
