"""/poll (moderators): create an ad-hoc dilemma, close a poll, set who may vote; the vote buttons and
native poll events. The work is in :mod:`bot.services.polls`; this is the Discord side."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import reconcile
from bot.cogs.checks import ModeratorGroup, reply_private, within_deadline
from bot.domain import permissions as perms
from bot.domain.errors import NotFound, UserError
from bot.domain.packs import MAX_LABEL, MAX_OPTIONS, MAX_QUESTION, MIN_OPTIONS, Dilemma, Option
from bot.services.polls import PollService, validate_dilemma
from bot.storage import guilds as guild_store
from bot.storage import polls as poll_store
from bot.storage.export import export_csv
from bot.ui.polls import UNAVAILABLE, VoteButton, WithdrawButton, safe

if TYPE_CHECKING:
    from bot.app import CommonGround

log = logging.getLogger(__name__)

POSITIONS: tuple[tuple[str, float], ...] = (
    ("The individual first (−1)", -1.0),
    ("Leans individual (−0.5)", -0.5),
    ("Both equally (0)", 0.0),
    ("Leans community (+0.5)", 0.5),
    ("The community first (+1)", 1.0),
)
MAX_HOURS = 768
WIZARD_TIMEOUT = 900


def parse_options(text: str) -> list[str]:
    """One option per line; blank lines ignored; leading list markers ("1.", "-", "*") dropped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        for marker in ("- ", "* ", "• "):
            if line.startswith(marker):
                line = line[len(marker) :].strip()
        head, dot, rest = line.partition(".")
        if dot and head.isdigit() and len(head) <= 2:
            line = rest.strip()
        if line:
            out.append(line)
    return out


class CreateModal(discord.ui.Modal, title="New poll"):
    question = discord.ui.TextInput(
        label="Question", style=discord.TextStyle.paragraph, max_length=MAX_QUESTION, required=True
    )
    options = discord.ui.TextInput(
        label=f"Options ({MIN_OPTIONS}–{MAX_OPTIONS}, one per line, ≤ {MAX_LABEL} characters)",
        style=discord.TextStyle.paragraph,
        max_length=MAX_OPTIONS * (MAX_LABEL + 6),
        required=True,
        placeholder="Look after yourself first\nLook after your neighbours first",
    )

    def __init__(self, cog: Poll, *, hours: int, channel_id: int, style: str) -> None:
        super().__init__(timeout=WIZARD_TIMEOUT)
        self.cog = cog
        self.hours = hours
        self.channel_id = channel_id
        self.style = style

    async def on_submit(self, interaction: discord.Interaction) -> None:
        labels = parse_options(self.options.value)
        # Check everything but the positions now (0 is a placeholder), so a mistake is reported at once.
        draft = Dilemma(self.question.value.strip(), tuple(Option(label, 0.0) for label in labels))
        try:
            validate_dilemma(draft, style=self.style)
        except UserError as exc:
            await interaction.response.send_message(exc.message, ephemeral=True)
            return
        wizard = PositionWizard(self.cog, interaction.user.id, draft, self.hours, self.channel_id, self.style)
        await interaction.response.send_message(wizard.text(), view=wizard, ephemeral=True)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        log.error("poll create modal failed in guild %s", interaction.guild_id, exc_info=error)
        if not interaction.response.is_done():
            await interaction.response.send_message("Something went wrong; please try again.", ephemeral=True)


class PositionSelect(discord.ui.Select["PositionWizard"]):
    def __init__(self) -> None:
        super().__init__(
            placeholder="Where does this option sit?",
            options=[discord.SelectOption(label=label, value=str(value)) for label, value in POSITIONS],
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        assert self.view is not None
        await self.view.chosen(interaction, float(self.values[0]))


class PositionWizard(discord.ui.View):
    """One select per option, in turn (5 options and a button would not fit in 5 rows), then Post."""

    def __init__(self, cog: Poll, owner_id: int, draft: Dilemma, hours: int, channel_id: int, style: str) -> None:
        super().__init__(timeout=WIZARD_TIMEOUT)
        self.cog = cog
        self.owner_id = owner_id
        self.draft = draft
        self.hours = hours
        self.channel_id = channel_id
        self.style = style
        self.positions: list[float] = []
        self.select = PositionSelect()
        self.add_item(self.select)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.owner_id

    def text(self) -> str:
        i = len(self.positions)
        head = f"**{safe(self.draft.question)}**\n"
        if i < len(self.draft.options):
            label = safe(self.draft.options[i].label)
            return head + f"Option {i + 1} of {len(self.draft.options)}: *{label}* — where does it sit on the axis?"
        lines = [
            f"{safe(o.label)} — {_position_name(p)}" for o, p in zip(self.draft.options, self.positions, strict=True)
        ]
        return head + "\n".join(lines) + f"\n\nPost it in <#{self.channel_id}> for {self.hours} hours?"

    async def chosen(self, interaction: discord.Interaction, position: float) -> None:
        self.positions.append(position)
        if len(self.positions) == len(self.draft.options):
            self.remove_item(self.select)
            post = discord.ui.Button(label="Post poll", style=discord.ButtonStyle.success)
            cancel = discord.ui.Button(label="Cancel", style=discord.ButtonStyle.secondary)
            post.callback = self.post
            cancel.callback = self.cancel
            self.add_item(post)
            self.add_item(cancel)
        await interaction.response.edit_message(content=self.text(), view=self)

    async def cancel(self, interaction: discord.Interaction) -> None:
        self.stop()
        await interaction.response.edit_message(content="No poll was created.", view=None)

    async def post(self, interaction: discord.Interaction) -> None:
        self.stop()
        dilemma = Dilemma(
            self.draft.question,
            tuple(Option(o.label, p) for o, p in zip(self.draft.options, self.positions, strict=True)),
        )
        await interaction.response.defer(ephemeral=True)
        service = self.cog.service
        assert interaction.guild_id is not None
        try:
            poll_id = await service.post(
                self.cog.bot.get_partial_messageable(self.channel_id, guild_id=interaction.guild_id),
                guild_id=interaction.guild_id,
                channel_id=self.channel_id,
                dilemma=dilemma,
                closes_at=self.cog.bot.clock.now() + timedelta(hours=self.hours),
                style=self.style,
            )
        except UserError as exc:
            await interaction.edit_original_response(content=exc.message, view=None)
            return
        await interaction.edit_original_response(content=f"Poll #{poll_id} posted in <#{self.channel_id}>.", view=None)


class PostableChannel(app_commands.Transformer):
    """A channel option that offers only channels a message can be posted in: text, announcement and
    voice channels (their text chat); not categories, forums or media channels."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return [discord.ChannelType.text, discord.ChannelType.news, discord.ChannelType.voice]

    async def transform(self, interaction: discord.Interaction, value: object) -> object:
        # discord.py hands over the resolved AppCommandChannel; re-check the type of a forged payload.
        if getattr(value, "type", None) not in self.channel_types:
            raise UserError("Pick a text, announcement or voice channel: a poll can't be posted there.")
        return value


def _on_message(message: discord.Message | None, custom_id: str) -> bool:
    if message is None:
        return False
    stack = list(message.components)
    while stack:
        comp = stack.pop()
        if getattr(comp, "custom_id", None) == custom_id:
            return True
        stack.extend(getattr(comp, "children", ()))
    return False


def _position_name(p: float) -> str:
    return next(label for label, value in POSITIONS if value == p)


class Poll(commands.Cog):
    poll = ModeratorGroup(name="poll", description="Ad-hoc polls and who may vote (moderators).")

    def __init__(self, bot: CommonGround, service: PollService) -> None:
        self.bot = bot
        self.service = service

    async def cog_unload(self) -> None:
        await self.service.shutdown()

    @poll.command(name="create", description="Post a new dilemma poll (a form asks for the question and options).")
    @app_commands.describe(
        hours="How long the poll stays open, in hours (default 24).",
        channel="Where to post it (default: this channel).",
        style="Buttons (default) or a native Discord poll.",
    )
    @app_commands.choices(
        style=[app_commands.Choice(name="buttons", value="buttons"), app_commands.Choice(name="native", value="native")]
    )
    async def create(
        self,
        interaction: discord.Interaction[CommonGround],
        hours: app_commands.Range[int, 1, MAX_HOURS] = 24,
        channel: app_commands.Transform[app_commands.AppCommandChannel, PostableChannel] | None = None,
        style: str = "buttons",
    ) -> None:
        channel_id = channel.id if channel is not None else interaction.channel_id
        if channel is not None and channel.guild_id != interaction.guild_id:
            raise UserError("Choose a channel in this server.")
        assert channel_id is not None
        # The bot's own permissions there: for the channel typed in, the interaction's app_permissions; for
        # a chosen one, the gateway's cache. Never channel.permissions, which are the member's (I4).
        if channel is None:
            granted, name = interaction.app_permissions.value, getattr(interaction.channel, "name", None)
        else:
            cached = interaction.guild.get_channel(channel.id) if interaction.guild else None
            me = interaction.guild.me if interaction.guild else None
            granted = cached.permissions_for(me).value if cached is not None and me is not None else None
            name = channel.name
        actions = ["post", "chart"] + (["native-poll"] if style == "native" else [])
        lacking = perms.missing(granted, actions) if granted is not None else []
        if lacking:
            where = f"#{name}" if name else f"<#{channel_id}>"
            raise UserError(perms.cannot_post(where, lacking))
        await interaction.response.send_modal(CreateModal(self, hours=hours, channel_id=channel_id, style=style))

    @poll.command(name="close", description="Close an open poll now and show its result.")
    @app_commands.describe(poll="The poll to close (type to search this server's open polls).")
    async def close(self, interaction: discord.Interaction[CommonGround], poll: int) -> None:
        assert interaction.guild_id is not None
        async with self.bot.db.read() as conn:
            row = await poll_store.get(conn, poll)
        if row is None or row.guild_id != interaction.guild_id:
            raise NotFound("There is no such poll in this server.")
        if row.status != "open":
            raise UserError(f"Poll #{poll} is already closed.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.service.close(poll, reason="moderator")
        await interaction.followup.send(f"Poll #{poll} is closed; its message now shows the result.", ephemeral=True)

    @close.autocomplete("poll")
    async def close_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None:
            return []
        found = await self.service.autocomplete(interaction.guild_id, current, status="open")
        return [app_commands.Choice(name=label, value=poll_id) for label, poll_id in found]

    @poll.command(
        name="settings", description="Who may vote, and whether live counts are shown. No options: show them."
    )
    @app_commands.rename(
        required_role="required-role", min_days="min-days-in-server", live_counts="live-counts", clear_role="clear-role"
    )
    @app_commands.describe(
        required_role="Only members with this role may vote.",
        min_days="Members may vote once they have been in the server this many days (0: no minimum).",
        live_counts="Show counts while polls are open (edited at most every 5 seconds).",
        clear_role="Remove the required role: everyone may vote again.",
    )
    async def settings(
        self,
        interaction: discord.Interaction[CommonGround],
        required_role: discord.Role | None = None,
        min_days: app_commands.Range[int, 0, 365] | None = None,
        live_counts: bool | None = None,
        clear_role: bool = False,
    ) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        if required_role is not None and clear_role:
            raise UserError("Choose either a required role or clear-role, not both.")
        if required_role is not None and required_role.guild.id != guild_id:
            raise UserError("Choose a role from this server.")
        values: dict[str, object] = {}
        if required_role is not None:
            values["vote_role_id"] = required_role.id
        if clear_role:
            values["vote_role_id"] = None
        if min_days is not None:
            values["vote_min_days"] = min_days
        if live_counts is not None:
            values["show_live_counts"] = live_counts

        async def save() -> guild_store.GuildSettings | None:
            async with self.bot.db.write() as conn:
                await guild_store.ensure(conn, guild_id, now=self.bot.clock.now())
                if values:
                    await guild_store.update_settings(conn, guild_id, **values)
                if live_counts is not None:
                    await poll_store.set_live_counts(conn, guild_id, live_counts)
                return await guild_store.get(conn, guild_id)

        current = await within_deadline(interaction, save())
        assert current is not None
        role = f"<@&{current.vote_role_id}>" if current.vote_role_id else "anyone"
        days = f"{current.vote_min_days} days in the server" if current.vote_min_days else "no minimum time"
        live = "shown while open" if current.show_live_counts else "hidden until the poll closes"
        head = "Saved. " if values else ""
        await reply_private(interaction, f"{head}Who may vote: {role}, {days}. Counts: {live}.")

    @poll.command(name="export", description="This server's poll results as a CSV file (totals only, no user ids).")
    async def export(self, interaction: discord.Interaction[CommonGround]) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await export_csv(self.bot.db, interaction.guild_id)
        rows = max(text.count("\n") - 1, 0)
        if rows == 0:
            await interaction.followup.send(
                "No poll has closed in this server yet, so there is nothing to export.", ephemeral=True
            )
            return
        await interaction.followup.send(
            f"{rows} closed poll(s): per poll its date, prompt, theme, option counts, leaning with its 95% interval "
            "and number of voters. No user ids.",
            file=discord.File(io.BytesIO(text.encode("utf-8")), filename=f"common-ground-{interaction.guild_id}.csv"),
            ephemeral=True,
        )

    # -- native polls and reconciliation ------------------------------------------------------------

    @commands.Cog.listener("on_raw_poll_vote_add")
    async def on_native_add(self, payload: discord.RawPollVoteActionEvent) -> None:
        await self._native_vote(payload, add=True)

    @commands.Cog.listener("on_raw_poll_vote_remove")
    async def on_native_remove(self, payload: discord.RawPollVoteActionEvent) -> None:
        await self._native_vote(payload, add=False)

    async def _native_vote(self, payload: discord.RawPollVoteActionEvent, *, add: bool) -> None:
        await self.service.native_vote(
            message_id=payload.message_id,
            guild_id=payload.guild_id,
            user_id=payload.user_id,
            answer_id=payload.answer_id,
            add=add,
        )

    @commands.Cog.listener("on_interaction")
    async def on_foreign_custom_id(self, interaction: discord.Interaction) -> None:
        """discord.py only dispatches a DynamicItem whose custom_id is on the clicked message and drops the
        rest unanswered; a forged poll custom_id still gets its answer (and writes nothing)."""
        if interaction.type is not discord.InteractionType.component:
            return
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if not custom_id.startswith("poll:") or _on_message(interaction.message, custom_id):
            return
        await interaction.response.send_message(UNAVAILABLE, ephemeral=True)

    async def reconcile_voters(self, guild_id: int | None) -> None:
        """Reconciliation step: native poll voters re-read (a full run only: a re-invite's polls were just
        re-armed, and their votes are read when they close)."""
        if guild_id is None:
            await self.service.reconcile(self.bot.scope)


async def setup(bot: CommonGround) -> None:
    service = bot.polls
    bot.add_dynamic_items(VoteButton, WithdrawButton)
    bot.scheduler.register("poll-close", service.run_close_job)
    bot.scheduler.register("poll-publish", service.run_publish_job)
    cog = Poll(bot, service)
    bot.reconciler.add_step("poll-closes", service.rearm_closes, order=reconcile.POLL_CLOSES)
    bot.reconciler.add_step("native-voters", cog.reconcile_voters, order=reconcile.NATIVE_VOTERS)
    await bot.add_cog(cog)
