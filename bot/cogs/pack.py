"""/pack (moderators): upload a server's own prompt pack, list, enable, disable and remove packs; skip
or restore single prompts; include prompts marked sensitive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.checks import ModeratorGroup, reply_private, within_deadline
from bot.domain.errors import UserError
from bot.domain.packs import MAX_PACK_BYTES, PackError
from bot.services.debates import get_service
from bot.ui import debates as ui

if TYPE_CHECKING:
    from bot.app import CommonGround

Interaction = discord.Interaction["CommonGround"]
_F = TypeVar("_F", bound=Any)
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
    for info in await interaction.client.packs.pack_infos(interaction.guild_id):
        if query and query not in info.slug and query not in info.name.casefold():
            continue
        state = "on" if info.enabled else "off"
        out.append(app_commands.Choice(name=ui.cut(f"{info.name} ({info.slug}, {state})", 100), value=info.slug))
    return out[:25]


def _prompt_choice(key: str, prompt, *, note: str = "") -> app_commands.Choice[str]:
    label = f"{note}¶{prompt.paragraph} {prompt.theme}: {' '.join(prompt.question.split())}"
    return app_commands.Choice(name=ui.cut(label, 100), value=key)


async def skip_autocomplete(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    """The active prompts not skipped yet (the command re-validates whatever is sent)."""
    if interaction.guild_id is None:
        return []
    service = interaction.client.packs
    skipped, _ = await service.prompt_flags(interaction.guild_id)
    query = current.casefold().strip()
    out = []
    for _pack, key, prompt in await service.active_prompts(interaction.guild_id):
        if key in skipped or len(key) > 100:
            continue
        if query and query not in key.casefold() and query not in prompt.question.casefold():
            continue
        out.append(_prompt_choice(key, prompt, note="sensitive · " if prompt.sensitive else ""))
        if len(out) == 25:
            break
    return out


async def unskip_autocomplete(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    """The server's skipped prompts."""
    if interaction.guild_id is None:
        return []
    service = interaction.client.packs
    skipped, _ = await service.prompt_flags(interaction.guild_id)
    prompts = {key: prompt for _pack, key, prompt in await service.active_prompts(interaction.guild_id)}
    query = current.casefold().strip()
    out = []
    for key in sorted(skipped):
        if len(key) > 100 or (query and query not in key.casefold()):
            continue
        prompt = prompts.get(key)
        out.append(_prompt_choice(key, prompt) if prompt else app_commands.Choice(name=ui.cut(key, 100), value=key))
    return out[:25]


def _pack_argument(command: _F) -> _F:
    """The ``pack`` option of /pack remove, enable and disable: described, with the pack list as you type."""
    return app_commands.describe(pack="The pack")(app_commands.autocomplete(pack=pack_autocomplete)(command))


class Pack(commands.Cog):
    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot
        get_service(bot)  # wires the debate jobs, as every debate extension does
        self.service = bot.packs

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

    @pack.command(name="remove", description="Delete one of this server's packs (not the built-in one).")
    @_pack_argument
    async def remove(self, interaction: Interaction, pack: str) -> None:
        assert interaction.guild_id is not None
        await within_deadline(interaction, self.service.remove_pack(interaction.guild_id, pack))
        await reply_private(interaction, f"`{ui.cut(pack, 64)}` removed.")

    @pack.command(name="enable", description="Use a pack's prompts in the rotation.")
    @_pack_argument
    async def enable(self, interaction: Interaction, pack: str) -> None:
        await self._switch(interaction, pack, enabled=True)

    @pack.command(name="disable", description="Stop using a pack's prompts (the built-in one too).")
    @_pack_argument
    async def disable(self, interaction: Interaction, pack: str) -> None:
        await self._switch(interaction, pack, enabled=False)

    async def _switch(self, interaction: Interaction, pack: str, *, enabled: bool) -> None:
        assert interaction.guild_id is not None
        info = await within_deadline(interaction, self.service.set_pack_enabled(interaction.guild_id, pack, enabled))
        await reply_private(interaction, f"`{info.slug}` is {'on' if enabled else 'off'}.")

    @pack.command(name="skip-prompt", description="Take one prompt out of this server's rotation.")
    @app_commands.describe(prompt="The prompt (pick from the list, or type its pack/id)")
    @app_commands.autocomplete(prompt=skip_autocomplete)
    async def skip_prompt(self, interaction: Interaction, prompt: str) -> None:
        await self._set_skipped(interaction, prompt, skip=True)

    @pack.command(name="unskip-prompt", description="Put a skipped prompt back into this server's rotation.")
    @app_commands.describe(prompt="A skipped prompt (pick from the list)")
    @app_commands.autocomplete(prompt=unskip_autocomplete)
    async def unskip_prompt(self, interaction: Interaction, prompt: str) -> None:
        await self._set_skipped(interaction, prompt, skip=False)

    async def _set_skipped(self, interaction: Interaction, prompt: str, *, skip: bool) -> None:
        assert interaction.guild_id is not None
        key = prompt.strip()
        shown = f"`{ui.cut(key, 140)}`"
        if skip:
            changed = await self.service.skip_prompt(interaction.guild_id, key)
            text = f"{shown} is skipped here" if changed else f"{shown} was already skipped"
            text += ": the rotation won't post it. `/pack unskip-prompt` brings it back."
        else:
            changed = await self.service.unskip_prompt(interaction.guild_id, key)
            text = f"{shown} is back in the rotation." if changed else f"{shown} wasn't skipped."
        await interaction.response.send_message(text, ephemeral=True)

    @pack.command(name="sensitive-prompts", description="Include prompts their pack marks as sensitive.")
    @app_commands.describe(include="Yes: sensitive prompts join the rotation. No (the default): they are left out")
    async def sensitive_prompts(self, interaction: Interaction, include: bool) -> None:
        assert interaction.guild_id is not None
        count = await self.service.set_sensitive(interaction.guild_id, include)
        held = f"The active packs hold {count} prompt{'s' if count != 1 else ''} marked sensitive."
        verb = "now join the rotation" if include else "are left out of the rotation"
        await interaction.response.send_message(f"Sensitive prompts {verb}. {held}", ephemeral=True)


async def setup(bot: CommonGround) -> None:
    await bot.add_cog(Pack(bot))
