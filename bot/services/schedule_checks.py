"""The checks `/schedule setup` and the website's schedule form share: can the bot post where asked?

One copy of the rule, used by ``bot.cogs.schedule`` and ``bot.web``; ``where`` renders a channel for
the caller's medium (a Discord mention in a reply, ``#name`` on a web page).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.domain.errors import UserError
from bot.ui import debates as ui


def mention(channel: Any) -> str:
    return channel.mention


def check_setup(
    guild: Any,
    channel: Any,
    *,
    thread: bool,
    pin: bool,
    poll_style: str,
    ping_role: Any | None,
    review_channel: Any | None,
    where: Callable[[Any], str] = mention,
) -> None:
    """Raise UserError naming what is missing if the bot could not post (or ping, or review) as asked."""
    # Everything a post with these options will do, checked against the bot's own permissions there.
    lacking = ui.missing_in(channel, ui.post_actions(thread=thread, pin=pin, style=poll_style))
    if ping_role is not None:
        if ping_role.is_default():
            raise UserError("Pick a role to ping, not @everyone.")
        if not ping_role.mentionable:
            lacking += [p for p in ui.missing_in(channel, ["ping"]) if p not in lacking]
    if lacking:
        hint = f" (or make {ping_role.name} mentionable)" if ping_role and not ping_role.mentionable else ""
        raise UserError(
            f"I can't post there yet: in {where(channel)} I'm missing {ui.explain_missing(lacking)}.{hint} "
            "Grant them to my role or in the channel's permissions, then run this again."
        )
    if review_channel is not None:
        lacking = ui.missing_in(review_channel, ["post"])
        if lacking:
            raise UserError(f"I'm missing {ui.explain_missing(lacking)} in {where(review_channel)} (review channel).")
