"""/privacy: a member's own data — export it, or delete it everywhere."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.storage import privacy as privacy_store

if TYPE_CHECKING:
    from bot.app import CommonGround


class ConfirmForget(discord.ui.View):
    """A two-button confirmation, only for the member who asked (the message is ephemeral)."""

    def __init__(self, cog: Privacy, user_id: int) -> None:
        super().__init__(timeout=120)
        self.cog = cog
        self.user_id = user_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(label="Delete my votes everywhere", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        async with self.cog.bot.db.write() as conn:
            forgotten = await privacy_store.forget_member(conn, self.user_id)
        self.stop()
        await interaction.response.edit_message(
            content=(
                f"Done. Deleted {forgotten.votes} vote(s), {forgotten.events} vote change(s) and "
                f"{forgotten.suggestions} suggestion(s) in every server. Closed polls keep their anonymous totals."
            ),
            view=None,
        )

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


class Privacy(commands.GroupCog, group_name="privacy", group_description="Your own data: export it or delete it."):
    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="export-me", description="Get every vote Common Ground stores about you, as a file.")
    async def export_me(self, interaction: discord.Interaction[CommonGround]) -> None:
        async with self.bot.db.read() as conn:
            data = await privacy_store.export_member(conn, interaction.user.id)
        payload = json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")
        await interaction.response.send_message(
            f"Your data: {len(data['votes'])} current vote(s), {len(data['vote_history'])} recorded change(s).",
            file=discord.File(io.BytesIO(payload), filename="common-ground-my-data.json"),
            ephemeral=True,
        )

    @app_commands.command(name="forget-me", description="Delete your votes and vote history in every server.")
    async def forget_me(self, interaction: discord.Interaction[CommonGround]) -> None:
        await interaction.response.send_message(
            "This deletes your votes and your vote history in **every** server that uses Common Ground. "
            "Open polls lose your vote; closed polls keep their anonymous totals. This cannot be undone.",
            view=ConfirmForget(self, interaction.user.id),
            ephemeral=True,
        )


async def setup(bot: CommonGround) -> None:
    await bot.add_cog(Privacy(bot))
