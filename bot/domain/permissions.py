"""Every Discord permission the bot needs, in one table: the checks the bot makes, the invite URL
(``commonground invite-url``) and the README's permission list are all derived from it.

Bits and names follow Discord's Permissions table (developers/topics/permissions in the
discord-api-docs repository). Two of them moved recently (change log 2025-11-20, PR #7991, and
2025-11-24, PR #8002): since 2026-02-23 pinning needs PIN_MESSAGES (MANAGE_MESSAGES alone is refused)
and creating a scheduled event needs CREATE_EVENTS (MANAGE_EVENTS alone is refused).

Pure data and arithmetic: no discord import. Callers pass the permission integer they hold
(``discord.Permissions.value``, or an interaction's ``app_permissions``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True)
class Permission:
    key: str  # Discord's flag in lower case, which is also discord.py's attribute name
    bit: int
    name: str  # as Discord's server settings show it
    feature: str  # "core", or the optional feature that needs it (see FEATURES)
    why: str  # one line for the README and for error messages
    uses: frozenset[str]  # the actions whose checks include it (see ACTIONS)
    guild_level: bool = False  # checked on the server, not on a channel


# The optional features a host may leave out of the invite; "core" is always asked for.
FEATURES: dict[str, str] = {
    "native-polls": "native polls (`/schedule setup … poll-style:native`, `/poll create … style:native`)",
    "pin": "pinned daily posts (`/schedule setup … pin:True`)",
    "events": "a Discord event with a planned debate (`/schedule plan … event:True`)",
    "ping": "a ping role that is not mentionable (`/schedule setup … ping-role:`)",
}

# What the bot does, and so what it checks before doing it.
ACTIONS: dict[str, str] = {
    "post": "post the debate or poll",
    "chart": "show the result chart when the poll closes",
    "thread": "open the discussion thread",
    "summary": "post the result summary in the thread",
    "pin": "pin the daily post",
    "native-poll": "post a native poll and read its votes",
    "event": "create and delete the Discord event of a planned debate",
    "ping": "ping a role that is not mentionable",
}

PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "view_channel", 1 << 10, "View Channel", "core", "see the debate channel", frozenset({"post", "native-poll"})
    ),
    Permission(
        "send_messages", 1 << 11, "Send Messages", "core", "post the daily debate and polls", frozenset({"post"})
    ),
    Permission(
        "embed_links", 1 << 14, "Embed Links", "core", "the post's passage and dilemma are embeds", frozenset({"post"})
    ),
    Permission(
        "attach_files", 1 << 15, "Attach Files", "core", "the result chart when a poll closes", frozenset({"chart"})
    ),
    Permission(
        "read_message_history",
        1 << 16,
        "Read Message History",
        "core",
        "read its own posts back: native poll voters, a post made before a restart",
        frozenset({"native-poll"}),
    ),
    Permission(
        "create_public_threads",
        1 << 35,
        "Create Public Threads",
        "core",
        "the discussion thread of each debate",
        frozenset({"thread"}),
    ),
    Permission(
        "send_messages_in_threads",
        1 << 38,
        "Send Messages in Threads",
        "core",
        "the result summary in the debate's thread",
        frozenset({"summary"}),
    ),
    Permission(
        "send_polls", 1 << 49, "Send Polls", "native-polls", "post Discord's native polls", frozenset({"native-poll"})
    ),
    Permission(
        "pin_messages",
        1 << 51,
        "Pin Messages",
        "pin",
        "pin the daily post and unpin the previous one",
        frozenset({"pin"}),
    ),
    Permission(
        "create_events",
        1 << 44,
        "Create Events",
        "events",
        "create a planned debate's Discord event, and delete it if the debate is cancelled",
        frozenset({"event"}),
        guild_level=True,
    ),
    Permission(
        "mention_everyone",
        1 << 17,
        "Mention @everyone, @here, and All Roles",
        "ping",
        "ping a role that is not mentionable",
        frozenset({"ping"}),
    ),
)

BY_KEY: dict[str, Permission] = {p.key: p for p in PERMISSIONS}
VIEW = BY_KEY["view_channel"]
SEND = BY_KEY["send_messages"]
# Discord ignores these when Send Messages is denied (implicit permissions), so a missing Send Messages
# is the one thing to fix: naming them too would send a moderator after the wrong toggles.
NEEDS_SEND = frozenset({"embed_links", "attach_files", "mention_everyone", "send_polls"})

SCOPES = ("bot", "applications.commands")
AUTHORIZE_URL = "https://discord.com/oauth2/authorize"


def parse_features(text: str | None) -> frozenset[str]:
    """``"pin,events"`` -> the features; ValueError naming an unknown one and the known ones."""
    chosen = frozenset(part.strip() for part in (text or "").split(",") if part.strip())
    unknown = sorted(chosen - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown feature {', '.join(unknown)}: choose from {', '.join(FEATURES)}")
    return chosen


def invite_permissions(features: Iterable[str] = ()) -> int:
    """The permission integer an invite asks for: the core permissions plus those of ``features``."""
    wanted = {"core", *features}
    value = 0
    for p in PERMISSIONS:
        if p.feature in wanted:
            value |= p.bit
    return value


def full_invite_permissions() -> int:
    """Every permission any feature needs: what the README's invite asks for."""
    return invite_permissions(FEATURES)


def client_id_from_token(token: str) -> int | None:
    """A bot token's first part is its user id (= the application's client id) in base64; None if not."""
    head = token.strip().split(".", 1)[0]
    try:
        text = base64.b64decode(head + "=" * (-len(head) % 4), validate=False).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and 15 <= len(text) <= 20 else None


def invite_url(client_id: int, features: Iterable[str] = ()) -> str:
    query = urlencode(
        {"client_id": str(client_id), "permissions": str(invite_permissions(features)), "scope": " ".join(SCOPES)}
    )
    return f"{AUTHORIZE_URL}?{query}"


def needed(actions: Iterable[str]) -> list[Permission]:
    """The permissions ``actions`` need, in table order."""
    wanted = set(actions)
    unknown = wanted - set(ACTIONS)
    if unknown:
        raise ValueError(f"unknown action(s): {sorted(unknown)}")
    return [p for p in PERMISSIONS if p.uses & wanted]


def missing(granted: int, actions: Iterable[str]) -> list[Permission]:
    """What ``granted`` lacks for ``actions``, naming the root cause only: without View Channel nothing
    else counts; without Send Messages, what depends on it is not listed separately."""
    lacking = [p for p in needed(actions) if not granted & p.bit]
    if VIEW in lacking and not VIEW.guild_level:
        return [VIEW]
    if SEND in lacking:
        lacking = [p for p in lacking if p.key not in NEEDS_SEND]
    return lacking


def names(perms: Iterable[Permission]) -> list[str]:
    return [p.name for p in perms]


def join_names(items: Iterable[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    seq = list(items)
    if len(seq) <= 1:
        return "".join(seq)
    return ", ".join(seq[:-1]) + " and " + seq[-1]


def describe_missing(lacking: Iterable[Permission], where: str) -> str:
    """``missing Send Polls (post Discord's native polls) in #debates``."""
    items = [f"{p.name} ({p.why})" for p in lacking]
    return f"missing {join_names(items)} in {where}"


def cannot_post(where: str, lacking: Iterable[Permission]) -> str:
    """The answer when a poll can't be posted in ``where`` (``#debates``, ``<#id>``) for want of ``lacking``."""
    items = [f"**{p.name}** ({p.why})" for p in lacking]
    return (
        f"I can't post that poll in {where}: I'm missing {join_names(items)} there. "
        "Grant it to my role or in the channel's permissions, or pick another channel."
    )


# -- the README's list ----------------------------------------------------------------------------------

README_BEGIN = (
    "<!-- permissions: generated by `commonground invite-url --update-readme README.md`; "
    "edit bot/domain/permissions.py -->"
)
README_END = "<!-- /permissions -->"


def readme_section() -> str:
    """The README's permission list, between its markers (indented to sit in the set-up steps)."""
    lines = [README_BEGIN]
    for p in PERMISSIONS:
        if p.feature == "core":
            lines.append(f"   - **{p.name}**: {p.why}.")
        else:
            lines.append(f"   - **{p.name}**, only for {FEATURES[p.feature]} (`--features {p.feature}`): {p.why}.")
    lines.append(
        f"   The permissions integer is `{invite_permissions()}` for the core, "
        f"`{full_invite_permissions()}` with every feature."
    )
    lines.append(README_END)
    return "\n".join(f"   {line}" if line.startswith("<!--") else line for line in lines)


def replace_readme_section(text: str) -> str:
    """``text`` (the README) with its permission list regenerated; ValueError if the markers are missing."""
    start = text.find(README_BEGIN)
    end = text.find(README_END)
    if start < 0 or end < start:
        raise ValueError("the README has no permissions markers")
    return text[:start] + readme_section().lstrip() + text[end + len(README_END) :]
