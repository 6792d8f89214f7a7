"""Records returned by the sandbox's Python API (guilds, channels, roles, members, requests, interactions)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Sandbox


@dataclass
class GuildRecord:
    """A guild. ``roles`` maps role id -> role dict; ``members`` maps user id -> member dict (with ``user``)."""

    id: int
    name: str
    owner_id: int
    joined_at: str
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    scheduled_events: dict[int, dict[str, Any]] = field(default_factory=dict)
    bot_present: bool = True
    locale: str = "en-US"
    # A Discord outage of this guild: None, or the 5xx status its REST routes answer meanwhile.
    outage: int | None = None


@dataclass
class ChannelRecord:
    """A channel or thread. ``data`` is the Discord channel object (always current)."""

    id: int
    guild_id: int
    data: dict[str, Any]
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    pins: dict[int, str] = field(default_factory=dict)  # message id -> pinned_at

    @property
    def name(self) -> str:
        return self.data["name"]


@dataclass
class RoleRecord:
    id: int
    guild_id: int
    data: dict[str, Any]


@dataclass
class MemberRecord:
    """A guild member; ``id`` is the user id."""

    id: int
    guild_id: int
    data: dict[str, Any]

    @property
    def user(self) -> dict[str, Any]:
        return self.data["user"]


@dataclass
class RequestRecord:
    """One REST request seen by the sandbox. ``headers`` never holds the Authorization value."""

    method: str
    path: str
    route: str
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes]]
    headers: dict[str, str]
    at: float
    status: int = 0
    response: Any = None
    fault: str | None = None


class Interaction:
    """An interaction the sandbox sent to the bot (INTERACTION_CREATE) and what the bot answered.

    ``callbacks``: every accepted callback body ``{"type": int, "data": dict | None}`` (normally one);
    ``rejected_callbacks``: (status, error body) for callbacks refused (second ack, too late);
    ``followups``: follow-up message dicts (current versions); ``original``: the @original message.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        id: int,
        token: str,
        type: int,
        payload: dict[str, Any],
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        message: dict[str, Any] | None = None,
    ) -> None:
        self._sb = sandbox
        self.id = id
        self.token = token
        self.type = type
        self.payload = payload
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.user_id = user_id
        self.message = message
        self.created_at = time.monotonic()
        self.callbacks: list[dict[str, Any]] = []
        self.rejected_callbacks: list[tuple[int, dict[str, Any]]] = []
        self._followup_ids: list[int] = []
        self.original_id: int | None = None
        self.modal: dict[str, Any] | None = None
        self.choices: list[dict[str, Any]] | None = None
        self._first: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def response_type(self) -> int | None:
        return self.callbacks[0]["type"] if self.callbacks else None

    async def response(self, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the first callback; returns ``{"type": int, "data": dict | None}``.

        Never longer than the interaction's deadline (plus a moment): a first callback after it is refused
        with 10062, and one the sandbox accepts is recorded in the same step as its deadline check, so
        once the deadline has passed none can come. A test waiting for an answer that never comes (a bot
        stopped or killed under clicks) learns so in 3 s, not in its whole ``timeout``."""
        left = self.created_at + self._sb.interaction_deadline - time.monotonic()
        return await asyncio.wait_for(asyncio.shield(self._first), max(0.0, min(timeout, left + 0.1)))

    @property
    def original(self) -> dict[str, Any] | None:
        if self.original_id is None:
            return None
        return self._sb._find_message(self.original_id)

    @property
    def followups(self) -> list[dict[str, Any]]:
        out = []
        for mid in self._followup_ids:
            msg = self._sb._find_message(mid)
            if msg is not None:
                out.append(msg)
        return out

    def __repr__(self) -> str:
        return f"<Interaction id={self.id} type={self.type} acknowledged={self.acknowledged}>"
