"""The website's place in the bot: serve it (when COMMONGROUND_WEB is set) and `/web publish`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.checks import ModeratorGroup
from bot.services.site import SiteService

if TYPE_CHECKING:
    from bot.app import CommonGround
    from bot.web.server import WebServer

log = logging.getLogger(__name__)


class Web(commands.Cog):
    extra_static: Path | None = None  # tests serve their own assets (axe-core) from the repository

    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot
        self.site = SiteService(bot.db, bot.clock)
        self.server: WebServer | None = None

    async def cog_load(self) -> None:
        if self.bot.settings.web_address is None:
            return
        from bot.web.server import WebServer

        self.server = WebServer(self.bot, extra_static=self.extra_static)
        await self.server.start()

    async def cog_unload(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    web = ModeratorGroup(name="web", description="This server's page on the website (moderators).")

    @web.command(name="publish", description="Turn this server's public page on or off (off by default).")
    @app_commands.describe(on="True publishes the page (no member appears on it); False takes it down")
    async def publish(self, interaction: discord.Interaction[CommonGround], on: bool) -> None:
        assert interaction.guild_id is not None
        user = interaction.user
        await self.site.publish(
            interaction.guild_id, on, user_id=user.id, user_name=user.display_name, via="/web publish"
        )
        if on:
            base = self.bot.settings.web_url
            where = f" at {base}/p/{interaction.guild_id}" if base else " (the website is not enabled on this bot)"
            text = f"The public page is on{where}. It shows the server's leaning and closed results, never a member."
        else:
            text = "The public page is off: it answers 404 now."
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: CommonGround) -> None:
    await bot.add_cog(Web(bot))
