"""Shared command plumbing: moderator groups (Manage Server by default *and* checked at run time)."""

from __future__ import annotations

import discord
from discord import app_commands

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
