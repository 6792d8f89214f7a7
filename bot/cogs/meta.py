"""/about and /help: what Common Ground is, and every command, generated from the tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.ui.meta import about_embed, help_embed

if TYPE_CHECKING:
    from bot.app import CommonGround


class Meta(commands.Cog):
    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot

    @app_commands.command(name="about", description="What Common Ground is and the essay it draws from.")
    async def about(self, interaction: discord.Interaction[CommonGround]) -> None:
        await interaction.response.send_message(embed=about_embed(), ephemeral=True)

    @app_commands.command(name="help", description="Every Common Ground command, one line each.")
    async def help(self, interaction: discord.Interaction[CommonGround]) -> None:
        await interaction.response.send_message(embed=help_embed(self.bot.tree), ephemeral=True)


async def setup(bot: CommonGround) -> None:
    await bot.add_cog(Meta(bot))
