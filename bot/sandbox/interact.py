"""Simulated users: slash commands, clicks, selects, modal submits, autocomplete, poll votes."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from .records import Interaction

if TYPE_CHECKING:
    from .server import Sandbox

_Base = object


class InteractionsMixin(_Base):
    """Methods of :class:`~bot.sandbox.Sandbox` that act as a human member."""

    # ------------------------------------------------------------------ plumbing
    def _member_payload(self: Sandbox, guild_id: int, user_id: int, channel_id: int) -> dict[str, Any]:
        g = self.guilds[guild_id]
        member = g.members.get(user_id)
        if member is None:
            raise KeyError(f"user {user_id} is not a member of guild {guild_id}")
        return {**member, "permissions": str(self.permissions_for(guild_id, user_id, channel_id))}

    def _channel_partial(self: Sandbox, channel_id: int, user_id: int) -> dict[str, Any]:
        ch = self.channels[channel_id]
        return {**ch.data, "permissions": str(self.permissions_for(ch.guild_id, user_id, channel_id))}

    async def _send_interaction(
        self: Sandbox,
        itype: int,
        guild_id: int,
        channel_id: int,
        user_id: int,
        data: dict[str, Any],
        message: dict[str, Any] | None = None,
    ) -> Interaction:
        guild_id, channel_id, user_id = int(guild_id), int(channel_id), int(user_id)
        if channel_id not in self.channels:
            raise KeyError(f"unknown channel {channel_id}")
        g = self.guilds[guild_id]
        if not g.bot_present:
            raise RuntimeError("the bot is not in this guild")
        iid = self._snow()
        token = f"aW50ZXJhY3Rpb24.{iid}.{secrets.token_urlsafe(48)}"
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "guild": {"id": str(guild_id), "locale": g.locale, "features": []},
            "guild_id": str(guild_id),
            "channel": self._channel_partial(channel_id, user_id),
            "channel_id": str(channel_id),
            "member": self._member_payload(guild_id, user_id, channel_id),
            "token": token,
            "version": 1,
            "app_permissions": str(self.permissions_for(guild_id, self.bot_user_id, channel_id)),
            "locale": "en-US",
            "guild_locale": g.locale,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message
        ix = Interaction(
            self,
            id=iid,
            token=token,
            type=itype,
            payload=payload,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            message=message,
        )
        self.interactions[iid] = ix
        self._by_token[token] = ix
        self._dispatch_sync("INTERACTION_CREATE", payload)
        await self._flush()
        self._bump()
        return ix

    def _find_app_command(self: Sandbox, guild_id: int, name: str, ctype: int = 1) -> dict[str, Any]:
        for cmd in [*self.guild_commands.get(int(guild_id), []), *self.global_commands]:
            if cmd["name"] == name and cmd.get("type", 1) == ctype:
                return cmd
        synced = [c["name"] for c in [*self.guild_commands.get(int(guild_id), []), *self.global_commands]]
        raise LookupError(f"command {name!r} was never synced (synced: {synced})")

    def _resolve_value(
        self: Sandbox,
        opt: dict[str, Any],
        value: Any,
        guild_id: int,
        channel_id: int,
        resolved: dict[str, Any],
        user_id: int,
    ) -> Any:
        otype = opt["type"]
        if otype == 3:
            return str(value)
        if otype == 4:
            return int(value)
        if otype == 10:
            return float(value)
        if otype == 5:
            return bool(value)
        if otype == 11:
            att = value if isinstance(value, dict) else None
            aid = int(att["id"]) if att else int(getattr(value, "id", value))
            if att is None:
                filename, data, ctype = self.attachments[aid]
                att = {"id": str(aid), "filename": filename, "size": len(data), "content_type": ctype}
                att["url"] = att["proxy_url"] = f"{self.base_url}/attachments/{aid}/{filename}"
            resolved.setdefault("attachments", {})[str(aid)] = att
            return str(aid)
        oid = int(value["id"]) if isinstance(value, dict) else int(getattr(value, "id", value))
        g = self.guilds[guild_id]
        if otype == 7:
            if oid not in self.channels:
                raise KeyError(f"unknown channel {oid}")
            ch = self.channels[oid]
            types = opt.get("channel_types")
            if types and ch.data["type"] not in types:
                raise ValueError(f"channel type {ch.data['type']} not allowed for option {opt['name']!r}")
            entry = {
                k: ch.data.get(k)
                for k in ("id", "name", "type", "parent_id", "thread_metadata", "flags")
                if k in ch.data
            }
            # I4: a resolved channel's `permissions` are the INVOKING member's, the bot's own are in
            # `app_permissions` (Channel object, "computed permissions for the invoking user in the channel";
            # Interaction Resolved Data, discord-api-docs). A bot reading `permissions` as its own is wrong.
            entry["permissions"] = str(self.permissions_for(guild_id, user_id, oid))
            entry["app_permissions"] = str(self.permissions_for(guild_id, self.bot_user_id, oid))
            entry["guild_id"] = str(guild_id)
            resolved.setdefault("channels", {})[str(oid)] = entry
            return str(oid)
        if otype == 8 or (otype == 9 and oid in g.roles):
            if oid not in g.roles:
                raise KeyError(f"unknown role {oid}")
            resolved.setdefault("roles", {})[str(oid)] = g.roles[oid]
            return str(oid)
        if otype in (6, 9):
            if oid not in self.users:
                raise KeyError(f"unknown user {oid}")
            resolved.setdefault("users", {})[str(oid)] = self.users[oid]
            member = g.members.get(oid)
            if member is not None:
                resolved.setdefault("members", {})[str(oid)] = {
                    **{k: val for k, val in member.items() if k != "user"},
                    "permissions": str(self.permissions_for(guild_id, oid, channel_id)),
                }
            return str(oid)
        raise ValueError(f"unsupported option type {otype}")

    def _build_command_data(
        self: Sandbox,
        guild_id: int,
        channel_id: int,
        name: str,
        options: dict[str, Any] | None,
        focused: str | None = None,
        *,
        user_id: int,
    ) -> dict[str, Any]:
        parts = name.split()
        cmd = self._find_app_command(guild_id, parts[0])
        resolved: dict[str, Any] = {}
        schema = cmd.get("options") or []
        chain: list[dict[str, Any]] = []
        for part in parts[1:]:
            sub = next((o for o in schema if o["name"] == part and o["type"] in (1, 2)), None)
            if sub is None:
                raise LookupError(f"{name!r}: no subcommand {part!r} in the synced command")
            chain.append(sub)
            schema = sub.get("options") or []
        if any(o["type"] in (1, 2) for o in schema):
            raise LookupError(f"{name!r} needs a subcommand")
        leaf: list[dict[str, Any]] = []
        given = dict(options or {})
        for key, value in given.items():
            opt = next((o for o in schema if o["name"] == key), None)
            if opt is None:
                raise LookupError(f"{name!r} has no option {key!r} (has {[o['name'] for o in schema]})")
            if key == focused:
                leaf.append({"name": key, "type": opt["type"], "value": str(value), "focused": True})
                continue
            value = self._resolve_value(opt, value, guild_id, channel_id, resolved, user_id)
            choices = opt.get("choices")
            if choices and value not in [c["value"] for c in choices]:
                raise ValueError(f"{value!r} is not one of the choices of {key!r}")
            leaf.append({"name": key, "type": opt["type"], "value": value})
        if focused is None:
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in given]
            if missing:
                raise ValueError(f"{name!r}: missing required options {missing}")
        elif focused not in given:
            raise ValueError(f"focused option {focused!r} must be in the options")
        nested = leaf
        for sub in reversed(chain):
            nested = [{"name": sub["name"], "type": sub["type"], "options": nested}]
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": nested}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        if resolved:
            data["resolved"] = resolved
        return data

    # ------------------------------------------------------------------ public
    async def slash(
        self: Sandbox,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: dict[str, Any] | None = None,
    ) -> Interaction:
        """A member runs ``/name`` ("cmd", "group sub" or "group subgroup sub") with ``options``.

        Option types come from the synced command (guild commands first, then global). Values may
        be ids, records with ``.id``, or (attachments) the dict from :meth:`attach`. Raises
        ``LookupError`` if the command or option was never synced, ``ValueError`` for a missing
        required option or a value outside the choices.
        """
        data = self._build_command_data(int(guild_id), int(channel_id), name, options, user_id=int(user_id))
        return await self._send_interaction(2, guild_id, channel_id, user_id, data)

    async def autocomplete(
        self: Sandbox,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: dict[str, Any],
        focused: str,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Send an autocomplete interaction (type 4); return the choices of the type 8 callback."""
        data = self._build_command_data(
            int(guild_id), int(channel_id), name, options, focused=focused, user_id=int(user_id)
        )
        ix = await self._send_interaction(4, guild_id, channel_id, user_id, data)
        resp = await ix.response(timeout)
        return list((resp.get("data") or {}).get("choices") or [])

    def _component_on(self: Sandbox, message: dict[str, Any], custom_id: str) -> dict[str, Any]:
        def walk(items: list[dict[str, Any]]) -> dict[str, Any] | None:
            for c in items:
                if c.get("custom_id") == custom_id:
                    return c
                for key in ("components",):
                    found = walk(c.get(key) or [])
                    if found:
                        return found
                for key in ("accessory", "component"):
                    if isinstance(c.get(key), dict):
                        found = walk([c[key]])
                        if found:
                            return found
            return None

        comp = walk(message.get("components") or [])
        if comp is None:
            raise LookupError(f"no component with custom_id {custom_id!r} on message {message['id']}")
        if comp.get("disabled"):
            raise PermissionError(f"component {custom_id!r} is disabled")
        return comp

    def _interaction_message(self: Sandbox, channel_id: int, message_id: int) -> dict[str, Any]:
        msg = self._find_message(int(message_id))
        if msg is None or int(msg["channel_id"]) != int(channel_id):
            raise LookupError(f"no message {message_id} in channel {channel_id}")
        return msg

    async def click(self: Sandbox, channel_id: int, message_id: int, custom_id: str, user_id: int) -> Interaction:
        """A member clicks the button ``custom_id`` on a message (checks it exists and is enabled)."""
        msg = self._interaction_message(channel_id, message_id)
        comp = self._component_on(msg, custom_id)
        if comp.get("type") != 2:
            raise LookupError(f"{custom_id!r} is not a button")
        data = {"custom_id": custom_id, "component_type": 2}
        if comp.get("id") is not None:
            data["id"] = comp["id"]
        gid = self.channels[int(channel_id)].guild_id
        return await self._send_interaction(3, gid, channel_id, user_id, data, message=msg)

    async def select(
        self: Sandbox, channel_id: int, message_id: int, custom_id: str, user_id: int, values: list[Any]
    ) -> Interaction:
        """A member picks ``values`` in the select menu ``custom_id`` (checked against its options)."""
        msg = self._interaction_message(channel_id, message_id)
        comp = self._component_on(msg, custom_id)
        ctype = comp.get("type")
        if ctype not in (3, 5, 6, 7, 8):
            raise LookupError(f"{custom_id!r} is not a select menu")
        values = [str(getattr(x, "id", x)) for x in values]
        lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
        if not lo <= len(values) <= hi:
            raise ValueError(f"select {custom_id!r} takes {lo}..{hi} values, got {len(values)}")
        if ctype == 3:
            allowed = {o["value"] for o in comp.get("options") or []}
            bad = [x for x in values if x not in allowed]
            if bad:
                raise ValueError(f"values {bad} are not options of {custom_id!r}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": ctype, "values": values}
        gid = self.channels[int(channel_id)].guild_id
        if ctype != 3:
            resolved: dict[str, Any] = {}
            kind = {5: 6, 6: 8, 7: 7}.get(ctype, 9)
            for x in values:
                self._resolve_value({"type": kind, "name": custom_id}, x, gid, int(channel_id), resolved, int(user_id))
            data["resolved"] = resolved
        return await self._send_interaction(3, gid, channel_id, user_id, data, message=msg)

    async def submit_modal(
        self: Sandbox,
        channel_id: int,
        user_id: int,
        custom_id: str,
        values: dict[str, Any],
        from_interaction: Interaction | None = None,
    ) -> Interaction:
        """Submit a modal. With ``from_interaction`` (whose callback was a type 9 modal) the modal's
        custom_id and fields are checked (unknown field, missing required, min/max length) and the
        reply mirrors its layout (action rows or labels). ``values`` maps field custom_id -> str
        (or list for selects inside labels)."""
        gid = self.channels[int(channel_id)].guild_id
        message = None
        if from_interaction is not None:
            modal = from_interaction.modal
            if modal is None:
                raise LookupError("from_interaction did not answer with a modal")
            if modal["custom_id"] != custom_id:
                raise LookupError(f"modal custom_id is {modal['custom_id']!r}, not {custom_id!r}")
            message = from_interaction.message
            components = self._modal_reply(modal, values)
        else:
            components = [
                {"type": 1, "components": [{"type": 4, "custom_id": k, "value": str(val)}]} for k, val in values.items()
            ]
        data = {"custom_id": custom_id, "components": components}
        return await self._send_interaction(5, gid, channel_id, user_id, data, message=message)

    def _modal_reply(self: Sandbox, modal: dict[str, Any], values: dict[str, Any]) -> list[dict[str, Any]]:
        known: set[str] = set()

        def field(c: dict[str, Any]) -> dict[str, Any]:
            cid = c["custom_id"]
            known.add(cid)
            if c["type"] == 4:
                value = str(values.get(cid, c.get("value") or ""))
                if c.get("required", True) and not value:
                    raise ValueError(f"modal field {cid!r} is required")
                if value and not c.get("min_length", 0) <= len(value) <= c.get("max_length", 4000):
                    raise ValueError(f"modal field {cid!r}: length {len(value)} outside min/max")
                out = {"type": 4, "custom_id": cid, "value": value}
            else:
                out = {"type": c["type"], "custom_id": cid, "values": [str(x) for x in values.get(cid, [])]}
            if c.get("id") is not None:
                out["id"] = c["id"]
            return out

        reply = []
        for comp in modal.get("components") or []:
            if comp["type"] == 1:
                reply.append({"type": 1, "components": [field(c) for c in comp.get("components") or []]})
            elif comp["type"] == 18:
                reply.append({"type": 18, "id": comp.get("id"), "component": field(comp["component"])})
        unknown = set(values) - known
        if unknown:
            raise LookupError(f"modal has no fields {sorted(unknown)}")
        return reply

    # ------------------------------------------------------------------ polls
    def poll_vote(
        self: Sandbox,
        channel_id: int,
        message_id: int,
        user_id: int,
        answer_id: int,
        add: bool = True,
        dispatch: bool = True,
    ) -> None:
        """Record (or remove) a native poll vote; with ``dispatch`` send MESSAGE_POLL_VOTE_ADD/REMOVE.

        ``dispatch=False`` simulates a lost gateway event (the vote is still visible over REST).
        """
        ch = self._channel(channel_id)
        msg = ch.messages[int(message_id)]
        poll = msg.get("poll")
        if not poll:
            raise LookupError("not a poll message")
        self.tick()
        if int(message_id) in self._polls_ended:
            raise RuntimeError("poll has ended")
        votes = self.poll_votes[int(message_id)]
        if answer_id not in votes:
            raise LookupError(f"no answer {answer_id}")
        user_id = int(user_id)
        if add:
            if user_id in votes[answer_id]:
                return
            if not poll["allow_multiselect"]:
                for other, voters in votes.items():
                    if other != answer_id and user_id in voters:
                        self.poll_vote(channel_id, message_id, user_id, other, add=False, dispatch=dispatch)
            votes[answer_id].append(user_id)
        else:
            if user_id not in votes[answer_id]:
                return
            votes[answer_id].remove(user_id)
        self._update_counts(msg)
        if dispatch:
            self._dispatch_sync(
                "MESSAGE_POLL_VOTE_ADD" if add else "MESSAGE_POLL_VOTE_REMOVE",
                {
                    "user_id": str(user_id),
                    "channel_id": str(ch.id),
                    "message_id": str(message_id),
                    "guild_id": str(ch.guild_id),
                    "answer_id": answer_id,
                },
            )
        self._bump()

    def _update_counts(self: Sandbox, msg: dict[str, Any]) -> None:
        votes = self.poll_votes[int(msg["id"])]
        msg["poll"]["results"]["answer_counts"] = [
            {"id": aid, "count": len(users), "me_voted": self.bot_user_id in users}
            for aid, users in votes.items()
            if users
        ]

    def poll_voters(self: Sandbox, message_id: int) -> dict[int, list[int]]:
        """Answer id -> voter user ids of a native poll."""
        return {a: list(u) for a, u in self.poll_votes[int(message_id)].items()}

    def finalize_poll(self: Sandbox, channel_id: int, message_id: int) -> dict[str, Any]:
        """Finish a native poll's final tally now (ending it first if it is still open):
        ``results.is_finalized`` true, MESSAGE_UPDATE."""
        ch = self._channel(channel_id)
        msg = ch.messages[int(message_id)]
        if int(message_id) not in self._polls_ended:
            self._end_poll(ch.id, int(message_id))
        self._poll_finalize_at.pop(int(message_id), None)
        self._update_counts(msg)
        msg["poll"]["results"]["is_finalized"] = True
        self._dispatch_sync("MESSAGE_UPDATE", msg)
        self._bump()
        return msg
