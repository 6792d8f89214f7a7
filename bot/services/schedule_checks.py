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
    ping_role: Any | None,
    review_channel: Any | None,
    where: Callable[[Any], str] = mention,
) -> None:
    """Raise UserError naming what is missing if the bot could not post (or ping, or review) as asked."""
    missing = ui.missing_permissions(channel, thread=thread, pin=pin)
    if ping_role is not None:
        if ping_role.is_default():
            raise UserError("Pick a role to ping, not @everyone.")
        if not ping_role.mentionable and not channel.permissions_for(guild.me).mention_everyone:
            missing.append(ui.PERMISSION_NAMES["mention_everyone"] + f" (or make {ping_role.name} mentionable)")
    if missing:
        raise UserError(f"I can't post there yet: I'm missing {ui.join_names(missing)} in {where(channel)}.")
    if review_channel is not None:
        lacking = ui.missing_permissions(review_channel, thread=False, pin=False)
        if lacking:
            raise UserError(f"I'm missing {ui.join_names(lacking)} in {where(review_channel)} (review channel).")
