"""/debate (everyone): today's debate, history, the prompts, suggestions, and a poll's results."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain.errors import NotFound, UserError
from bot.services.debates import get_service
from bot.storage import debates as debate_store
from bot.ui import debates as ui

if TYPE_CHECKING:
    from bot.app import CommonGround

log = logging.getLogger(__name__)

Interaction = discord.Interaction["CommonGround"]
HISTORY_PAGE = 5
PROMPTS_PAGE = 4


async def poll_autocomplete(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None:
        return []
    found = await interaction.client.polls.autocomplete(interaction.guild_id, current, status=None)
    return [app_commands.Choice(name=label, value=str(poll_id)) for label, poll_id in found][:25]


class Debate(commands.Cog):
    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot
        self.service = get_service(bot)
        self.packs = bot.packs
        self.suggestions = bot.suggestions

    debate = app_commands.Group(name="debate", description="The daily debates of this server.", guild_only=True)

    @debate.command(name="today", description="A link to today's debate.")
    async def today(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        schedule, due, last = await self.service.status(interaction.guild_id)
        tz = ZoneInfo(schedule.timezone) if schedule else ZoneInfo("UTC")
        now = self.service.clock.now()
        midnight = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tzinfo=tz)
        if last is not None and last.posted_at is not None and last.posted_at >= midnight and last.message_id:
            link = ui.message_link(last.guild_id, last.channel_id, last.message_id)
            await interaction.response.send_message(
                f"Today's debate: **{ui.safe(ui.cut(last.question, 300))}**\n{link}", ephemeral=True
            )
            return
        text = "No debate has been posted here today."
        if due is not None and schedule is not None and schedule.active:
            text += f" The next one is {discord.utils.format_dt(due, 'R')}."
        await interaction.response.send_message(text, ephemeral=True)

    @debate.command(name="history", description="Past debates with their results, page by page.")
    async def history(self, interaction: Interaction) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        db = self.service.db

        async def render(page: int) -> discord.Embed:
            async with db.read() as conn:
                rows, total = await debate_store.history(conn, guild_id, offset=page * HISTORY_PAGE, limit=HISTORY_PAGE)
                results = await debate_store.result_lines(conn, [d.id for d in rows])
            pages = max(math.ceil(total / HISTORY_PAGE), 1)
            return ui.history_embed(rows, results, page=page, pages=pages, total=total)

        async with db.read() as conn:
            _rows, total = await debate_store.history(conn, guild_id, offset=0, limit=1)
        pages = max(math.ceil(total / HISTORY_PAGE), 1)
        await ui.send_pages(interaction, pages, render)

    @debate.command(name="prompts", description="Browse the prompts of this server's active packs.")
    async def prompts(self, interaction: Interaction) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        items = await self.packs.active_prompts(guild_id)
        pages = max(math.ceil(len(items) / PROMPTS_PAGE), 1)
        title = self.service.essay.title

        async def render(page: int) -> discord.Embed:
            skipped, sensitive_on = await self.packs.prompt_flags(guild_id)
            chunk = items[page * PROMPTS_PAGE : (page + 1) * PROMPTS_PAGE]
            return ui.prompts_embed(
                chunk, title, page=page, pages=pages, total=len(items), skipped=skipped, sensitive_on=sensitive_on
            )

        async def choices(page: int) -> list[tuple[str, str, bool]]:
            skipped, _ = await self.packs.prompt_flags(guild_id)
            chunk = items[page * PROMPTS_PAGE : (page + 1) * PROMPTS_PAGE]
            return [(key, f"¶{p.paragraph} {' '.join(p.question.split())}", key in skipped) for _, key, p in chunk]

        async def toggle(press: discord.Interaction, key: str) -> None:
            # The select is shown to moderators only; the click is checked again all the same.
            if not press.permissions.manage_guild:
                await press.response.send_message(
                    "You need the **Manage Server** permission to skip prompts.", ephemeral=True
                )
                return
            if key == "-":
                await press.response.send_message("There is no prompt on this page to skip.", ephemeral=True)
                return
            skipped, _ = await self.packs.prompt_flags(guild_id)
            if key in skipped:
                await self.packs.unskip_prompt(guild_id, key)
            else:
                await self.packs.skip_prompt(guild_id, key)

        view = None
        if interaction.permissions.manage_guild and items:
            view = ui.PromptsPager(interaction.user.id, pages, render, choices, toggle)
        await ui.send_pages(interaction, pages, render, view)

    @debate.command(name="suggest", description="Suggest a prompt; moderators review it.")
    async def suggest(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        schedule, _, _ = await self.service.status(interaction.guild_id)
        if schedule is None or schedule.review_channel_id is None:
            raise UserError(
                "Suggestions aren't open here yet: a moderator can name a review channel with `/schedule setup`."
            )
        await interaction.response.send_modal(ui.SuggestModal(self._submit))

    async def _submit(self, interaction: discord.Interaction, fields: dict[str, Any]) -> None:
        assert interaction.guild_id is not None
        # Answer first (privately: every reply below is the member's own), then the database and REST work,
        # which a busy writer or a slow Discord can stretch past the 3-second deadline.
        await interaction.response.defer(ephemeral=True, thinking=True)
        suggestion_id, channel_id, body = await self.suggestions.suggest(
            interaction.guild_id, interaction.user.id, fields
        )
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.TextChannel):
            raise UserError("The review channel is gone: ask a moderator to run `/schedule setup` again.")
        try:
            message = await channel.send(
                embed=ui.suggestion_embed(suggestion_id, body, user_id=interaction.user.id, status="pending"),
                view=ui.review_view(suggestion_id),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            log.warning("suggestion %s not delivered to review channel in guild %s", suggestion_id, channel.guild.id)
            raise UserError("I couldn't post in the review channel; a moderator should check my permissions.") from exc
        await self.suggestions.set_review_message(suggestion_id, message.id)
        await interaction.followup.send("Thanks! Your suggestion went to the moderators for review.", ephemeral=True)

    @debate.command(name="results", description="A poll's results (the latest by default).")
    @app_commands.describe(poll="The poll (default: the latest)")
    @app_commands.autocomplete(poll=poll_autocomplete)
    async def results(self, interaction: Interaction, poll: str | None = None) -> None:
        assert interaction.guild_id is not None
        polls = self.bot.polls
        if poll is None:
            poll_id = await polls.latest_poll_id(interaction.guild_id, closed_only=True)
            if poll_id is None:
                raise NotFound("No poll has closed here yet.")
        else:
            try:
                poll_id = int(poll.strip().lstrip("#"))
            except ValueError:
                raise NotFound("Pick a poll from the list.") from None
        # Every refusal before the public defer: after it, the first follow-up is public whatever it asks (I2).
        await polls.closed_poll(poll_id, guild_id=interaction.guild_id)
        await interaction.response.defer(thinking=True)
        embed, file = await polls.result(poll_id, guild_id=interaction.guild_id)
        kwargs: dict[str, Any] = {"embed": embed}
        if file is not None:
            kwargs["file"] = file
        await interaction.followup.send(**kwargs)


async def setup(bot: CommonGround) -> None:
    bot.add_dynamic_items(ui.ReviewButton)
    await bot.add_cog(Debate(bot))
