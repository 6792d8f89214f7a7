"""/pack (moderators): upload a server's own prompt pack, list, enable, disable and remove packs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.checks import ModeratorGroup
from bot.domain.errors import UserError
from bot.domain.packs import MAX_PACK_BYTES, PackError
from bot.services.debates import get_service
from bot.ui import debates as ui

if TYPE_CHECKING:
    from bot.app import CommonGround

Interaction = discord.Interaction["CommonGround"]
MESSAGE_MAX = 2000


def problems_message(error: PackError, limit: int = MESSAGE_MAX) -> str:
    """Every problem, one per line, cut to fit one message with "…and N more"."""
    n = len(error.problems)
    head = f"The pack was not imported (nothing changed): {n} problem{'s' if n != 1 else ''} found."
    lines = [head]
    used = len(head)
    for i, problem in enumerate(error.problems):
        line = ui.cut(f"- {discord.utils.escape_markdown(str(problem))}", 400)
        rest = n - i
        tail = len(f"\n…and {rest} more")
        if used + 1 + len(line) + (tail if i < n - 1 else 0) > limit:
            lines.append(f"…and {rest} more")
            break
        lines.append(line)
        used += 1 + len(line)
    return "\n".join(lines)


async def pack_autocomplete(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None:
        return []
    query = current.casefold().strip()
    out = []
    for info in await get_service(interaction.client).pack_infos(interaction.guild_id):
        if query and query not in info.slug and query not in info.name.casefold():
            continue
        state = "on" if info.enabled else "off"
        out.append(app_commands.Choice(name=ui.cut(f"{info.name} ({info.slug}, {state})", 100), value=info.slug))
    return out[:25]


class Pack(commands.Cog):
    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot
        self.service = get_service(bot)

    pack = ModeratorGroup(name="pack", description="Prompt packs of this server (moderators).")

    @pack.command(name="upload", description="Add or update a prompt pack from a YAML file (≤ 256 KiB).")
    @app_commands.describe(file="A .yaml pack file; see `commonground prompts check` for the format")
    async def upload(self, interaction: Interaction, file: discord.Attachment) -> None:
        assert interaction.guild_id is not None
        if file.size > MAX_PACK_BYTES:
            raise UserError(f"That file is {file.size:,} bytes; a pack may be at most {MAX_PACK_BYTES // 1024} KiB.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await file.read()
        try:
            pack, created = await self.service.upload_pack(interaction.guild_id, data, file.filename[:100])
        except PackError as exc:
            await interaction.followup.send(problems_message(exc), ephemeral=True)
            return
        verb = "added" if created else "updated"
        await interaction.followup.send(
            f"Pack **{discord.utils.escape_markdown(pack.name)}** (`{pack.id}`) {verb}: "
            f"{len(pack.prompts)} prompts, {sum(len(p.dilemmas) for p in pack.prompts)} dilemmas, enabled.",
            ephemeral=True,
        )

    @pack.command(name="list", description="Every pack of this server, and whether it is on.")
    async def list_(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        lines = []
        for info in await self.service.pack_infos(interaction.guild_id):
            state = "on" if info.enabled else "off"
            kind = "built-in" if info.builtin else "server"
            lines.append(
                f"- **{discord.utils.escape_markdown(info.name)}** `{info.slug}` · {kind} · "
                f"{len(info.prompts)} prompts · {state}"
            )
        await interaction.response.send_message(ui.cut("\n".join(lines), MESSAGE_MAX), ephemeral=True)

    @pack.command(name="enable", description="Use a pack's prompts in the rotation.")
    @app_commands.describe(pack="The pack")
    @app_commands.autocomplete(pack=pack_autocomplete)
    async def enable(self, interaction: Interaction, pack: str) -> None:
        assert interaction.guild_id is not None
        info = await self.service.set_pack_enabled(interaction.guild_id, pack, True)
        await interaction.response.send_message(f"`{info.slug}` is on.", ephemeral=True)

    @pack.command(name="disable", description="Stop using a pack's prompts (the built-in one too).")
    @app_commands.describe(pack="The pack")
    @app_commands.autocomplete(pack=pack_autocomplete)
    async def disable(self, interaction: Interaction, pack: str) -> None:
        assert interaction.guild_id is not None
        info = await self.service.set_pack_enabled(interaction.guild_id, pack, False)
        await interaction.response.send_message(f"`{info.slug}` is off.", ephemeral=True)

    @pack.command(name="remove", description="Delete one of this server's packs (not the built-in one).")
    @app_commands.describe(pack="The pack")
    @app_commands.autocomplete(pack=pack_autocomplete)
    async def remove(self, interaction: Interaction, pack: str) -> None:
        assert interaction.guild_id is not None
        await self.service.remove_pack(interaction.guild_id, pack)
        await interaction.response.send_message(f"`{ui.cut(pack, 64)}` removed.", ephemeral=True)


async def setup(bot: CommonGround) -> None:
    await bot.add_cog(Pack(bot))
