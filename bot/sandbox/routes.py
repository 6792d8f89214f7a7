"""REST route handlers of the sandbox (paths relative to ``/api/v10``)."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import validation as v
from ._util import DiscordHTTPError, forbidden, iso, not_found
from .server import (
    API_PREFIX,
    ATTACH,
    CREATE_EVENTS,
    EMBED,
    FILES_KEY,
    HISTORY,
    JSON_KEY,
    MANAGE_EVENTS,
    MANAGE_MESSAGES,
    MAX_PINS,
    PIN_MESSAGES,
    POLLS,
    PRIVATE_THREADS,
    PUBLIC_THREADS,
    SEND,
    SEND_THREADS,
    VIEW,
    _json,
    _no_content,
)

if TYPE_CHECKING:
    from .records import ChannelRecord, Interaction
    from .server import Sandbox


def add_routes(sb: Sandbox, app: web.Application) -> None:
    h = _Handlers(sb)
    table = [
        ("GET", "/gateway", h.gateway),
        ("GET", "/gateway/bot", h.gateway_bot),
        ("GET", "/users/@me", h.me),
        ("GET", "/users/{user_id}", h.user),
        ("GET", "/oauth2/applications/@me", h.app_info),
        ("GET", "/applications/@me", h.app_info),
        ("GET", "/applications/{app_id}/commands", h.get_commands),
        ("PUT", "/applications/{app_id}/commands", h.put_commands),
        ("POST", "/applications/{app_id}/commands", h.post_command),
        ("GET", "/applications/{app_id}/commands/{command_id}", h.get_command),
        ("PATCH", "/applications/{app_id}/commands/{command_id}", h.patch_command),
        ("DELETE", "/applications/{app_id}/commands/{command_id}", h.delete_command),
        ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", h.get_commands),
        ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", h.put_commands),
        ("POST", "/applications/{app_id}/guilds/{guild_id}/commands", h.post_command),
        ("GET", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}", h.get_command),
        ("PATCH", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}", h.patch_command),
        ("DELETE", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}", h.delete_command),
        ("POST", "/interactions/{interaction_id}/{token}/callback", h.callback),
        ("POST", "/webhooks/{app_id}/{token}", h.followup),
        ("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", h.webhook_get),
        ("PATCH", "/webhooks/{app_id}/{token}/messages/{message_id}", h.webhook_edit),
        ("DELETE", "/webhooks/{app_id}/{token}/messages/{message_id}", h.webhook_delete),
        ("GET", "/channels/{channel_id}", h.get_channel),
        ("PATCH", "/channels/{channel_id}", h.patch_channel),
        ("DELETE", "/channels/{channel_id}", h.delete_channel),
        ("POST", "/channels/{channel_id}/typing", h.typing),
        ("GET", "/channels/{channel_id}/messages", h.list_messages),
        ("POST", "/channels/{channel_id}/messages", h.create_message),
        ("GET", "/channels/{channel_id}/messages/pins", h.pins_new),
        ("PUT", "/channels/{channel_id}/messages/pins/{message_id}", h.pin),
        ("DELETE", "/channels/{channel_id}/messages/pins/{message_id}", h.unpin),
        ("GET", "/channels/{channel_id}/pins", h.pins_old),
        ("PUT", "/channels/{channel_id}/pins/{message_id}", h.pin),
        ("DELETE", "/channels/{channel_id}/pins/{message_id}", h.unpin),
        ("GET", "/channels/{channel_id}/messages/{message_id}", h.get_message),
        ("PATCH", "/channels/{channel_id}/messages/{message_id}", h.edit_message),
        ("DELETE", "/channels/{channel_id}/messages/{message_id}", h.delete_message),
        ("POST", "/channels/{channel_id}/messages/{message_id}/threads", h.thread_from_message),
        ("POST", "/channels/{channel_id}/threads", h.thread),
        ("GET", "/channels/{channel_id}/polls/{message_id}/answers/{answer_id}", h.poll_voters),
        ("POST", "/channels/{channel_id}/polls/{message_id}/expire", h.poll_expire),
        ("GET", "/guilds/{guild_id}", h.get_guild),
        ("GET", "/guilds/{guild_id}/channels", h.guild_channels),
        ("GET", "/guilds/{guild_id}/roles", h.guild_roles),
        ("GET", "/guilds/{guild_id}/members/{user_id}", h.guild_member),
        ("GET", "/guilds/{guild_id}/threads/active", h.active_threads),
        ("GET", "/guilds/{guild_id}/scheduled-events", h.list_events),
        ("POST", "/guilds/{guild_id}/scheduled-events", h.create_event),
        ("GET", "/guilds/{guild_id}/scheduled-events/{event_id}", h.get_event),
        ("PATCH", "/guilds/{guild_id}/scheduled-events/{event_id}", h.patch_event),
        ("DELETE", "/guilds/{guild_id}/scheduled-events/{event_id}", h.delete_event),
    ]
    for method, path, handler in table:
        app.router.add_route(method, API_PREFIX + path, handler)
    app.router.add_route("GET", "/attachments/{attachment_id}/{filename}", h.download)
    app.router.add_route("GET", "/gateway", sb._gateway)
    app.router.add_route("*", API_PREFIX + "/{tail:.*}", h.unknown)


class _Handlers:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    # --------------------------------------------------------------- misc
    async def unknown(self, request: web.Request) -> web.Response:
        raise not_found(0)

    async def gateway(self, request: web.Request) -> web.Response:
        return _json({"url": self.sb.gateway_url})

    async def gateway_bot(self, request: web.Request) -> web.Response:
        # discord-api-docs, Gateway, "Get Gateway Bot" and "Session Start Limit Object".
        return _json(
            {
                "url": self.sb.gateway_url,
                "shards": self.sb.recommended_shards,
                "session_start_limit": self.sb.session_start_limit(),
            }
        )

    async def me(self, request: web.Request) -> web.Response:
        return _json({**self.sb.bot_user, "verified": True, "mfa_enabled": False, "locale": "en-US"})

    async def user(self, request: web.Request) -> web.Response:
        user = self.sb.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise not_found(10013)
        return _json(user)

    async def app_info(self, request: web.Request) -> web.Response:
        sb = self.sb
        owner = next((sb.users[g.owner_id] for g in sb.guilds.values()), sb.bot_user)
        return _json(
            {
                "id": str(sb.application_id),
                "name": sb.bot_user["username"],
                "icon": None,
                "description": "Common Ground sandbox application",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": owner,
                "team": None,
                "flags": 0,
                "rpc_origins": [],
                "tags": [],
                "install_params": None,
                "integration_types_config": {"0": {}},
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "approximate_guild_count": len(sb.guilds),
                "bot": sb.bot_user,
            }
        )

    async def download(self, request: web.Request) -> web.Response:
        item = self.sb.attachments.get(int(request.match_info["attachment_id"]))
        if item is None:
            return web.Response(status=404, text="Not Found")
        _filename, data, ctype = item
        return web.Response(body=data, headers={"Content-Type": ctype})

    # --------------------------------------------------------------- commands
    def _command_list(self, request: web.Request) -> list[dict[str, Any]]:
        if int(request.match_info["app_id"]) != self.sb.application_id:
            raise forbidden(50001)
        gid = request.match_info.get("guild_id")
        if gid is None:
            return self.sb.global_commands
        self.sb._rest_guild(gid)
        return self.sb.guild_commands.setdefault(int(gid), [])

    def _normalize_command(
        self, cmd: dict[str, Any], guild_id: str | None, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        sb = self.sb
        out = {
            "id": old["id"] if old else str(sb._snow()),
            "application_id": str(sb.application_id),
            "version": str(sb._snow()),
            "type": cmd.get("type", 1),
            "name": cmd["name"],
            "name_localizations": cmd.get("name_localizations"),
            "description": cmd.get("description", ""),
            "description_localizations": cmd.get("description_localizations"),
            "options": cmd.get("options") or [],
            "default_member_permissions": cmd.get("default_member_permissions"),
            "dm_permission": cmd.get("dm_permission", True),
            "nsfw": cmd.get("nsfw", False),
            "integration_types": cmd.get("integration_types", [0]),
            "contexts": cmd.get("contexts"),
        }
        if guild_id is not None:
            out["guild_id"] = guild_id
        return out

    async def get_commands(self, request: web.Request) -> web.Response:
        return _json(self._command_list(request))

    async def put_commands(self, request: web.Request) -> web.Response:
        current = self._command_list(request)
        body = request[JSON_KEY]
        v.validate_commands(body)
        old = {(c["type"], c["name"]): c for c in current}
        gid = request.match_info.get("guild_id")
        new = [self._normalize_command(c, gid, old.get((c.get("type", 1), c["name"]))) for c in body]
        current[:] = new
        return _json(new)

    async def post_command(self, request: web.Request) -> web.Response:
        current = self._command_list(request)
        body = request[JSON_KEY] or {}
        v.validate_commands([body])
        key = (body.get("type", 1), body["name"])
        old = next((c for c in current if (c["type"], c["name"]) == key), None)
        cmd = self._normalize_command(body, request.match_info.get("guild_id"), old)
        if old is not None:
            current[current.index(old)] = cmd
            return _json(cmd)
        current.append(cmd)
        return _json(cmd, 201)

    def _find_command(self, request: web.Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        current = self._command_list(request)
        cid = request.match_info["command_id"]
        for c in current:
            if c["id"] == cid:
                return current, c
        raise not_found(10063)

    async def get_command(self, request: web.Request) -> web.Response:
        return _json(self._find_command(request)[1])

    async def patch_command(self, request: web.Request) -> web.Response:
        current, cmd = self._find_command(request)
        merged = {**cmd, **(request[JSON_KEY] or {})}
        v.validate_commands([merged])
        new = self._normalize_command(merged, request.match_info.get("guild_id"), cmd)
        current[current.index(cmd)] = new
        return _json(new)

    async def delete_command(self, request: web.Request) -> web.Response:
        current, cmd = self._find_command(request)
        current.remove(cmd)
        return _no_content()

    # --------------------------------------------------------------- interactions
    async def callback(self, request: web.Request) -> web.Response:
        sb = self.sb
        try:
            ix = sb.interactions[int(request.match_info["interaction_id"])]
        except (KeyError, ValueError):
            raise not_found(10062) from None
        if ix.token != request.match_info["token"]:
            raise DiscordHTTPError(401, 50027, "Invalid Webhook Token")
        try:
            return await self._callback(request, ix)
        except DiscordHTTPError as exc:
            ix.rejected_callbacks.append((exc.status, exc.body))
            raise

    async def _callback(self, request: web.Request, ix: Interaction) -> web.Response:
        sb = self.sb
        if ix.acknowledged:
            raise DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - ix.created_at > sb.interaction_deadline:
            raise not_found(10062)
        # No await from here to _record_callback: Interaction.response() stops waiting at the deadline.
        body = request[JSON_KEY] or {}
        files = request[FILES_KEY]
        ctype = body.get("type")
        data = body.get("data")
        ch = sb.channels.get(ix.channel_id)
        resource: dict[str, Any] = {"type": ctype}
        info: dict[str, Any] = {"id": str(ix.id), "type": ix.type}
        allowed = {1: {1}, 2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}
        if ctype not in allowed.get(ix.type, set()):
            raise DiscordHTTPError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "type": {
                        "_errors": [
                            {
                                "code": "INTERACTION_RESPONSE_TYPE_INVALID",
                                "message": "Invalid interaction response type",
                            }
                        ]
                    }
                },
            )
        if ctype == 4:
            data = data or {}
            v.validate_message(data, n_files=len(files))
            assert ch is not None
            msg = sb._new_message(
                ch, data, files, author=sb.bot_user, msg_type=20 if ix.type == 2 else 0, interaction=ix
            )
            ix.original_id = int(msg["id"])
            self._record_callback(ix, ctype, data)
            sb._store_message(ch, msg)
            resource["message"] = msg
            info.update(
                response_message_id=msg["id"],
                response_message_loading=False,
                response_message_ephemeral=bool(msg["flags"] & 64),
            )
        elif ctype == 5:
            assert ch is not None
            flags = 128 | (int((data or {}).get("flags") or 0) & 64)
            msg = sb._new_message(
                ch, {"flags": flags}, [], author=sb.bot_user, msg_type=20 if ix.type == 2 else 0, interaction=ix
            )
            ix.original_id = int(msg["id"])
            self._record_callback(ix, ctype, data)
            sb._store_message(ch, msg)
            resource["message"] = msg
            info.update(
                response_message_id=msg["id"],
                response_message_loading=True,
                response_message_ephemeral=bool(flags & 64),
            )
        elif ctype in (6, 7):
            if ix.message is None:
                raise DiscordHTTPError(400, 50035, "Invalid Form Body")
            target = sb._find_message(int(ix.message["id"]))
            if target is None:
                raise not_found(10008)
            ix.original_id = int(target["id"])
            if ctype == 7:
                payload = data or {}
                sb._edit_message(target, payload, files)
            self._record_callback(ix, ctype, data)
            if ctype == 7:
                resource["message"] = target
                info.update(
                    response_message_id=target["id"],
                    response_message_loading=False,
                    response_message_ephemeral=bool(target["flags"] & 64),
                )
        elif ctype == 8:
            v.validate_autocomplete(data or {})
            ix.choices = list((data or {}).get("choices") or [])
            self._record_callback(ix, ctype, data)
        elif ctype == 9:
            v.validate_modal(data or {})
            ix.modal = data
            self._record_callback(ix, ctype, data)
        else:
            self._record_callback(ix, ctype, data)
        return _json({"interaction": info, "resource": resource})

    def _record_callback(self, ix: Interaction, ctype: int, data: Any) -> None:
        entry = {"type": ctype, "data": data, "at": time.monotonic()}
        ix.callbacks.append(entry)
        if not ix._first.done():
            ix._first.set_result({"type": ctype, "data": data})
        self.sb._bump()

    def _webhook_interaction(self, request: web.Request) -> Interaction:
        sb = self.sb
        if int(request.match_info["app_id"]) != sb.application_id:
            raise not_found(10015)
        ix = sb._by_token.get(request.match_info["token"])
        if ix is None or time.monotonic() - ix.created_at > sb.followup_ttl:
            raise DiscordHTTPError(401, 50027, "Invalid Webhook Token")
        return ix

    async def followup(self, request: web.Request) -> web.Response:
        sb = self.sb
        ix = self._webhook_interaction(request)
        if not ix.acknowledged:
            raise not_found(10015)
        body = request[JSON_KEY] or {}
        files = request[FILES_KEY]
        v.validate_message(body, n_files=len(files))
        ch = sb.channels.get(ix.channel_id)
        if ch is None:
            raise not_found(10003)
        original = ix.original if ix.response_type == 5 else None
        if original is not None and original["flags"] & 128:
            # Create Followup Message (discord-api-docs, interactions/receiving-and-responding): after a
            # deferred channel message (type 5) the first follow-up edits the loading message, keeping
            # the defer's flags: its own ephemeral flag is ignored, so a public defer makes it public (I2).
            edit = {k: val for k, val in body.items() if k != "flags"}
            msg = sb._edit_message(original, edit, files)
            ix._followup_ids.append(int(msg["id"]))
            if request.query.get("wait", "false").lower() in ("true", "1"):
                return _json(msg)
            return _no_content()
        msg = sb._new_message(ch, body, files, author=sb.bot_user, interaction=ix)
        ix._followup_ids.append(int(msg["id"]))
        sb._store_message(ch, msg)
        if request.query.get("wait", "false").lower() in ("true", "1"):
            return _json(msg)
        return _no_content()

    def _webhook_message(self, request: web.Request, ix: Interaction) -> dict[str, Any]:
        mid = request.match_info["message_id"]
        if mid == "@original":
            if ix.original_id is None:
                raise not_found(10008)
            msg = self.sb._find_message(ix.original_id)
        else:
            msg = (
                self.sb._find_message(int(mid)) if int(mid) in ix._followup_ids or int(mid) == ix.original_id else None
            )
        if msg is None:
            raise not_found(10008)
        return msg

    async def webhook_get(self, request: web.Request) -> web.Response:
        ix = self._webhook_interaction(request)
        return _json(self._webhook_message(request, ix))

    async def webhook_edit(self, request: web.Request) -> web.Response:
        ix = self._webhook_interaction(request)
        msg = self._webhook_message(request, ix)
        return _json(self.sb._edit_message(msg, request[JSON_KEY] or {}, request[FILES_KEY]))

    async def webhook_delete(self, request: web.Request) -> web.Response:
        ix = self._webhook_interaction(request)
        msg = self._webhook_message(request, ix)
        self.sb._remove_message(msg)
        return _no_content()

    # --------------------------------------------------------------- channels
    async def get_channel(self, request: web.Request) -> web.Response:
        return _json(self.sb._rest_channel(request.match_info["channel_id"]).data)

    async def patch_channel(self, request: web.Request) -> web.Response:
        sb = self.sb
        ch = sb._rest_channel(request.match_info["channel_id"])
        body = request[JSON_KEY] or {}
        is_thread = ch.data["type"] in (10, 11, 12)
        for key in ("name", "topic", "rate_limit_per_user", "nsfw", "flags"):
            if key in body:
                ch.data[key] = body[key]
        if is_thread:
            meta = ch.data["thread_metadata"]
            for key in ("archived", "locked", "auto_archive_duration", "invitable"):
                if key in body:
                    meta[key] = body[key]
                    if key == "archived":
                        meta["archive_timestamp"] = iso(sb.clocks.now())
        sb._dispatch_sync("THREAD_UPDATE" if is_thread else "CHANNEL_UPDATE", ch.data, guild_id=ch.guild_id)
        return _json(ch.data)

    async def delete_channel(self, request: web.Request) -> web.Response:
        ch = self.sb._rest_channel(request.match_info["channel_id"])
        data = dict(ch.data)
        self.sb.delete_channel(ch.id)
        return _json(data)

    async def typing(self, request: web.Request) -> web.Response:
        self.sb._rest_channel(request.match_info["channel_id"], VIEW | SEND)
        return _no_content()

    async def list_messages(self, request: web.Request) -> web.Response:
        ch = self.sb._rest_channel(request.match_info["channel_id"], VIEW | HISTORY)
        q = request.query
        limit = max(1, min(100, int(q.get("limit", 50))))
        msgs = sorted(ch.messages.values(), key=lambda m: int(m["id"]), reverse=True)
        if "before" in q:
            msgs = [m for m in msgs if int(m["id"]) < int(q["before"])]
        if "after" in q:
            msgs = [m for m in msgs if int(m["id"]) > int(q["after"])][-limit:]
        if "around" in q:
            a = int(q["around"])
            older = [m for m in msgs if int(m["id"]) <= a][: (limit + 1) // 2]
            newer = [m for m in msgs if int(m["id"]) > a][-(limit // 2) :] if limit > 1 else []
            msgs = newer + older
        # The nonce is believed to come back only to its sender's create call (and MESSAGE_CREATE), never in
        # history: a bot must recognise its earlier post by what it carries, not by the nonce.
        return _json([{k: val for k, val in m.items() if k != "nonce"} for m in msgs[:limit]])

    async def create_message(self, request: web.Request) -> web.Response:
        sb = self.sb
        ch = sb._rest_channel(request.match_info["channel_id"])
        is_thread = ch.data["type"] in (10, 11, 12)
        body = request[JSON_KEY] or {}
        files = request[FILES_KEY]
        # P1: a poll needs SEND_POLLS (1 << 49); M4: a file needs ATTACH_FILES (Permissions table,
        # developers/topics/permissions in discord-api-docs).
        need = VIEW | (SEND_THREADS if is_thread else SEND)
        need |= (ATTACH if files else 0) | (POLLS if body.get("poll") else 0)
        sb._rest_channel(ch.id, need)
        if is_thread and ch.data["thread_metadata"].get("locked"):
            raise forbidden(50083, "Thread is archived")
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            # Change log 2024-02-12 ("enforced nonces on create message", discord-api-docs): with
            # enforce_nonce the nonce is "checked for uniqueness in the past few minutes"; after that a
            # retry creates a second message. Measured on the sandbox clock, so tests move it like time.
            hit = sb._nonces.get((ch.id, str(nonce)))
            age = (sb.discord_now() - hit[0]).total_seconds() if hit is not None else None
            if hit is not None and age is not None and age < sb.nonce_window and hit[1] in ch.messages:
                return _json(ch.messages[hit[1]])
        v.validate_message(body, n_files=len(files))
        if body.get("flags", 0) & v.EPHEMERAL_FLAG:
            raise DiscordHTTPError(400, 50035, "Invalid Form Body")
        if body.get("message_reference") and body["message_reference"].get("fail_if_not_exists", True):
            ref = body["message_reference"]
            if int(ref.get("message_id", 0)) not in ch.messages and ref.get("type", 0) == 0:
                raise DiscordHTTPError(
                    400,
                    50035,
                    "Invalid Form Body",
                    {
                        "message_reference": {
                            "_errors": [{"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "message": "Unknown message"}]
                        }
                    },
                )
        msg = sb._new_message(ch, body, files, author=sb.bot_user)
        self._drop_embeds_without_embed_links(ch, msg)
        if nonce is not None and body.get("enforce_nonce"):
            sb._nonces[(ch.id, str(nonce))] = (sb.discord_now(), int(msg["id"]))
        sb._store_message(ch, msg)
        return _json(msg)

    def _drop_embeds_without_embed_links(self, ch: ChannelRecord, msg: dict[str, Any]) -> None:
        """M4: embeds render only with EMBED_LINKS (Permissions table). Discord still takes the message, so
        the post arrives without them: as strict as a member would see it."""
        sb = self.sb
        if msg.get("embeds") and not sb.permissions_for(ch.guild_id, sb.bot_user_id, ch.id) & EMBED:
            msg["embeds"] = []

    async def get_message(self, request: web.Request) -> web.Response:
        ch = self.sb._rest_channel(request.match_info["channel_id"], VIEW | HISTORY)
        return _json(self.sb._rest_message(ch, request.match_info["message_id"]))

    async def edit_message(self, request: web.Request) -> web.Response:
        sb = self.sb
        ch = sb._rest_channel(request.match_info["channel_id"])
        msg = sb._rest_message(ch, request.match_info["message_id"])
        body = request[JSON_KEY] or {}
        if msg["author"]["id"] != str(sb.bot_user_id):
            if set(body) - {"flags"}:
                raise forbidden(50005)
            sb._rest_channel(ch.id, VIEW | MANAGE_MESSAGES)
        if request[FILES_KEY]:
            # M4: an edit that uploads a file needs ATTACH_FILES like a new message does.
            sb._rest_channel(ch.id, VIEW | ATTACH)
        edited = sb._edit_message(msg, body, request[FILES_KEY])
        self._drop_embeds_without_embed_links(ch, edited)
        return _json(edited)

    async def delete_message(self, request: web.Request) -> web.Response:
        sb = self.sb
        ch = sb._rest_channel(request.match_info["channel_id"])
        msg = sb._rest_message(ch, request.match_info["message_id"])
        if msg["author"]["id"] != str(sb.bot_user_id):
            sb._rest_channel(ch.id, VIEW | MANAGE_MESSAGES)
        sb._remove_message(msg)
        return _no_content()

    # --------------------------------------------------------------- pins
    def _pin_channel(self, request: web.Request) -> ChannelRecord:
        # M3: Pin Message / Unpin Message "Requires the PIN_MESSAGES permission"; since 2026-02-23
        # MANAGE_MESSAGES alone no longer grants it (change log 2025-11-24, PR #8002; Pin Message).
        return self.sb._rest_channel(request.match_info["channel_id"], VIEW | PIN_MESSAGES)

    async def pin(self, request: web.Request) -> web.Response:
        sb = self.sb
        ch = self._pin_channel(request)
        msg = sb._rest_message(ch, request.match_info["message_id"])
        if len(ch.pins) >= MAX_PINS and int(msg["id"]) not in ch.pins:
            # JSON error 30003 "Maximum number of pins reached for the channel (250)" (opcodes-and-status-codes).
            raise DiscordHTTPError(400, 30003, "Maximum number of pins reached for the channel (250)")
        ch.pins[int(msg["id"])] = iso(sb.clocks.now())
        msg["pinned"] = True
        ch.data["last_pin_timestamp"] = ch.pins[int(msg["id"])]
        sb._dispatch_sync(
            "CHANNEL_PINS_UPDATE",
            {
                "guild_id": str(ch.guild_id),
                "channel_id": str(ch.id),
                "last_pin_timestamp": ch.data["last_pin_timestamp"],
            },
        )
        sb._dispatch_sync("MESSAGE_UPDATE", msg)
        return _no_content()

    async def unpin(self, request: web.Request) -> web.Response:
        sb = self.sb
        ch = self._pin_channel(request)
        msg = sb._rest_message(ch, request.match_info["message_id"])
        ch.pins.pop(int(msg["id"]), None)
        msg["pinned"] = False
        sb._dispatch_sync("MESSAGE_UPDATE", msg)
        return _no_content()

    def _readable_pins(self, ch: ChannelRecord) -> list[int]:
        # Get Channel Pins: "Requires the VIEW_CHANNEL permission. If the user is missing the
        # READ_MESSAGE_HISTORY permission in the channel, then no pins will be returned."
        sb = self.sb
        if not sb.permissions_for(ch.guild_id, sb.bot_user_id, ch.id) & HISTORY:
            return []
        return [m for m in reversed(ch.pins) if m in ch.messages]

    async def pins_old(self, request: web.Request) -> web.Response:
        ch = self.sb._rest_channel(request.match_info["channel_id"], VIEW)
        return _json([ch.messages[m] for m in self._readable_pins(ch)][:50])

    async def pins_new(self, request: web.Request) -> web.Response:
        ch = self.sb._rest_channel(request.match_info["channel_id"], VIEW)
        limit = max(1, min(50, int(request.query.get("limit", 50))))
        items = [{"pinned_at": ch.pins[m], "message": ch.messages[m]} for m in self._readable_pins(ch)]
        if "before" in request.query:
            before = dt.datetime.fromisoformat(request.query["before"])
            items = [i for i in items if dt.datetime.fromisoformat(i["pinned_at"]) < before]
        return _json({"items": items[:limit], "has_more": len(items) > limit})

    # --------------------------------------------------------------- threads
    def _new_thread(self, parent: ChannelRecord, body: dict[str, Any], tid: int, ttype: int) -> ChannelRecord:
        from .records import ChannelRecord

        sb = self.sb
        name = body.get("name")
        errors = v.Errors()
        errors.between(("name",), name, 1, 100)
        archive = body.get("auto_archive_duration", parent.data.get("default_auto_archive_duration", 1440))
        if archive not in (60, 1440, 4320, 10080):
            errors.add(("auto_archive_duration",), "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}.")
        errors.raise_if_any()
        now = iso(sb.clocks.now())
        data = {
            "id": str(tid),
            "type": ttype,
            "guild_id": str(parent.guild_id),
            "parent_id": str(parent.id),
            "owner_id": str(sb.bot_user_id),
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": body.get("rate_limit_per_user", 0),
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": archive,
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
                **({"invitable": body.get("invitable", True)} if ttype == 12 else {}),
            },
            "member": {"id": str(tid), "user_id": str(sb.bot_user_id), "join_timestamp": now, "flags": 1},
        }
        th = ChannelRecord(id=tid, guild_id=parent.guild_id, data=data)
        sb.channels[tid] = th
        sb.guilds[parent.guild_id].channel_ids.append(tid)
        sb._dispatch_sync("THREAD_CREATE", {**data, "newly_created": True})
        return th

    async def thread_from_message(self, request: web.Request) -> web.Response:
        sb = self.sb
        ch = sb._rest_channel(request.match_info["channel_id"], VIEW | PUBLIC_THREADS)
        msg = sb._rest_message(ch, request.match_info["message_id"])
        mid = int(msg["id"])
        if mid in sb.channels:
            raise DiscordHTTPError(400, 160004, "A thread has already been created for this message")
        th = self._new_thread(ch, request[JSON_KEY] or {}, mid, 11 if ch.data["type"] == 0 else 10)
        msg["thread"] = th.data
        sb._dispatch_sync("MESSAGE_UPDATE", msg)
        return _json(th.data, 201)

    async def thread(self, request: web.Request) -> web.Response:
        sb = self.sb
        body = request[JSON_KEY] or {}
        ttype = body.get("type", 12)
        ch = sb._rest_channel(
            request.match_info["channel_id"], VIEW | (PRIVATE_THREADS if ttype == 12 else PUBLIC_THREADS)
        )
        th = self._new_thread(ch, body, sb._snow(), ttype)
        return _json(th.data, 201)

    # --------------------------------------------------------------- polls
    def _poll_message(self, request: web.Request) -> tuple[ChannelRecord, dict[str, Any]]:
        ch = self.sb._rest_channel(request.match_info["channel_id"], VIEW | HISTORY)
        msg = self.sb._rest_message(ch, request.match_info["message_id"])
        if not msg.get("poll"):
            raise DiscordHTTPError(400, 50035, "Invalid Form Body")
        return ch, msg

    async def poll_voters(self, request: web.Request) -> web.Response:
        sb = self.sb
        _, msg = self._poll_message(request)
        votes = sb.poll_votes.get(int(msg["id"]), {})
        aid = int(request.match_info["answer_id"])
        if aid not in votes:
            raise DiscordHTTPError(400, 50035, "Invalid Form Body")
        limit = max(1, min(100, int(request.query.get("limit", 25))))
        after = int(request.query.get("after", 0))
        voters = sorted(u for u in votes[aid] if u > after)[:limit]
        return _json({"users": [sb.users[u] for u in voters]})

    async def poll_expire(self, request: web.Request) -> web.Response:
        sb = self.sb
        _, msg = self._poll_message(request)
        if msg["author"]["id"] != str(sb.bot_user_id):
            raise forbidden(50013)
        if sb.poll_ended(int(msg["id"])):
            raise DiscordHTTPError(400, 520001, "Poll is already expired")
        # End Poll (resources/poll): the poll ends now, but its final tally is a background job:
        # results.is_finalized stays false until sb.poll_finalize_delay later on the sandbox clock (P2).
        sb._end_poll(int(msg["channel_id"]), int(msg["id"]))
        # Poll Results object: results "may be not present in certain responses where ... we do not
        # fetch the poll results"; this one is such a response (P3): "unknown", never "no votes".
        return _json({**msg, "poll": {k: val for k, val in msg["poll"].items() if k != "results"}})

    # --------------------------------------------------------------- guilds
    async def get_guild(self, request: web.Request) -> web.Response:
        g = self.sb._rest_guild(request.match_info["guild_id"])
        data = self.sb._guild_dict(g)
        if request.query.get("with_counts") in ("true", "1"):
            data["approximate_member_count"] = len(g.members)
            data["approximate_presence_count"] = 0
        return _json(data)

    async def guild_channels(self, request: web.Request) -> web.Response:
        g = self.sb._rest_guild(request.match_info["guild_id"])
        chans = [
            self.sb.channels[c].data for c in g.channel_ids if self.sb.channels[c].data["type"] not in (10, 11, 12)
        ]
        return _json(chans)

    async def guild_roles(self, request: web.Request) -> web.Response:
        g = self.sb._rest_guild(request.match_info["guild_id"])
        return _json(list(g.roles.values()))

    async def guild_member(self, request: web.Request) -> web.Response:
        g = self.sb._rest_guild(request.match_info["guild_id"])
        m = g.members.get(int(request.match_info["user_id"]))
        if m is None:
            raise not_found(10007)
        return _json(m)

    async def active_threads(self, request: web.Request) -> web.Response:
        sb = self.sb
        g = sb._rest_guild(request.match_info["guild_id"])
        threads = [
            sb.channels[c].data
            for c in g.channel_ids
            if sb.channels[c].data["type"] in (10, 11, 12) and not sb.channels[c].data["thread_metadata"]["archived"]
        ]
        return _json({"threads": threads, "members": [t["member"] for t in threads if "member" in t]})

    async def list_events(self, request: web.Request) -> web.Response:
        g = self.sb._rest_guild(request.match_info["guild_id"])
        return _json(list(g.scheduled_events.values()))

    def _event(self, request: web.Request) -> tuple[Any, dict[str, Any]]:
        g = self.sb._rest_guild(request.match_info["guild_id"])
        ev = g.scheduled_events.get(int(request.match_info["event_id"]))
        if ev is None:
            raise not_found(10070)
        return g, ev

    def _may_change_event(self, g: Any, ev: dict[str, Any]) -> None:
        """Modify/Delete: "If the event was created by the current user, either CREATE_EVENTS or
        MANAGE_EVENTS. Otherwise, MANAGE_EVENTS" (Guild Scheduled Event Permissions Requirements)."""
        sb = self.sb
        perms = sb.permissions_for(g.id, sb.bot_user_id)
        own = ev.get("creator_id") == str(sb.bot_user_id)
        if not perms & (MANAGE_EVENTS | (CREATE_EVENTS if own else 0)):
            raise forbidden(50013)

    async def get_event(self, request: web.Request) -> web.Response:
        return _json(self._event(request)[1])

    def _validate_event(self, body: dict[str, Any]) -> None:
        errors = v.Errors()
        errors.between(("name",), body.get("name"), 1, 100)
        errors.max_len(("description",), body.get("description"), 1000)
        if body.get("privacy_level", 2) != 2:
            errors.add(("privacy_level",), "BASE_TYPE_CHOICES", "Value must be one of {2}.")
        etype = body.get("entity_type")
        if etype not in (1, 2, 3):
            errors.add(("entity_type",), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3}.")
        start = body.get("scheduled_start_time")
        try:
            start_dt = dt.datetime.fromisoformat(start) if start else None
        except ValueError:
            start_dt = None
            errors.add(("scheduled_start_time",), "DATE_TIME_TYPE_PARSE", "Could not parse date")
        if start is None:
            errors.add(("scheduled_start_time",), "BASE_TYPE_REQUIRED", "This field is required")
        elif start_dt is not None and start_dt < self.sb.clocks.now():
            errors.add(
                ("scheduled_start_time",), "GUILD_SCHEDULED_EVENT_SCHEDULE_PAST", "Cannot schedule event in the past."
            )
        if etype == 3:
            if not (body.get("entity_metadata") or {}).get("location"):
                errors.add(("entity_metadata", "location"), "BASE_TYPE_REQUIRED", "This field is required")
            if not body.get("scheduled_end_time"):
                errors.add(("scheduled_end_time",), "BASE_TYPE_REQUIRED", "This field is required")
        elif etype in (1, 2) and not body.get("channel_id"):
            errors.add(("channel_id",), "BASE_TYPE_REQUIRED", "This field is required")
        errors.raise_if_any()

    async def create_event(self, request: web.Request) -> web.Response:
        sb = self.sb
        g = sb._rest_guild(request.match_info["guild_id"])
        # R1: creating a scheduled event needs CREATE_EVENTS (1 << 44); since 2026-02-23 MANAGE_EVENTS
        # alone is refused (change log 2025-11-20, PR #7991). External events check guild-level
        # permissions (Guild Scheduled Event Permissions Requirements).
        if not sb.permissions_for(g.id, sb.bot_user_id) & CREATE_EVENTS:
            raise forbidden(50013)
        body = request[JSON_KEY] or {}
        self._validate_event(body)
        eid = sb._snow()
        ev = {
            "id": str(eid),
            "guild_id": str(g.id),
            "channel_id": body.get("channel_id"),
            "creator_id": str(sb.bot_user_id),
            "creator": sb.bot_user,
            "name": body["name"],
            "description": body.get("description"),
            "scheduled_start_time": body["scheduled_start_time"],
            "scheduled_end_time": body.get("scheduled_end_time"),
            "privacy_level": 2,
            "status": 1,
            "entity_type": body["entity_type"],
            "entity_id": None,
            "entity_metadata": body.get("entity_metadata"),
            "user_count": 0,
            "image": None,
            "recurrence_rule": body.get("recurrence_rule"),
        }
        g.scheduled_events[eid] = ev
        sb._dispatch_sync("GUILD_SCHEDULED_EVENT_CREATE", ev)
        return _json(ev)

    async def patch_event(self, request: web.Request) -> web.Response:
        g, ev = self._event(request)
        self._may_change_event(g, ev)
        body = request[JSON_KEY] or {}
        for key in (
            "name",
            "description",
            "scheduled_start_time",
            "scheduled_end_time",
            "status",
            "entity_metadata",
            "channel_id",
        ):
            if key in body:
                ev[key] = body[key]
        self.sb._dispatch_sync("GUILD_SCHEDULED_EVENT_UPDATE", ev)
        return _json(ev)

    async def delete_event(self, request: web.Request) -> web.Response:
        g, ev = self._event(request)
        self._may_change_event(g, ev)
        del g.scheduled_events[int(ev["id"])]
        self.sb._dispatch_sync("GUILD_SCHEDULED_EVENT_DELETE", ev)
        return _no_content()
