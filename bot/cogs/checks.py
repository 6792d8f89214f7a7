"""Shared command plumbing: moderator groups (Manage Server by default *and* checked at run time)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import discord
from discord import app_commands

T = TypeVar("T")

# Seconds after Discord created the interaction before a command whose work is still running defers
# (privately): the first answer is due within 3 s (I1), and the defer is itself a request.
ANSWER_BUDGET = 1.5

MANAGE_GUILD = discord.Permissions(manage_guild=True)


class ModeratorGroup(app_commands.Group):
    """A top-level group for moderators.

    ``default_permissions`` hides it from members in Discord's UI (servers can override that in their
    Integrations settings); the runtime check refuses a forged or overridden call all the same.
    """

    def __init__(self, *, name: str, description: str) -> None:
        super().__init__(name=name, description=description, guild_only=True, default_permissions=MANAGE_GUILD)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage("This command only works inside a server.")
        if not interaction.permissions.manage_guild:
            # A CheckFailure reaches the tree's error handler, which shows this text ephemerally.
            raise app_commands.CheckFailure("You need the **Manage Server** permission to use this command.")
        return True


async def within_deadline(interaction: discord.Interaction, work: Awaitable[T]) -> T:
    """Run ``work`` (a database write, say); if it is still running ANSWER_BUDGET seconds after Discord
    created the interaction (the vote writer holds the lock, a slow disk), defer privately so the 3-second
    deadline holds, then finish it. Answer afterwards with :func:`reply_private`."""
    task = asyncio.ensure_future(work)
    age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
    try:
        return await asyncio.wait_for(asyncio.shield(task), max(0.0, ANSWER_BUDGET - age))
    except TimeoutError:
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)
        return await task


async def reply_private(interaction: discord.Interaction, content: str, **kwargs: Any) -> None:
    """Answer ephemerally, as a first response or (after a private defer) as its follow-up."""
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)
