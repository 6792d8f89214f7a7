"""The discord.py Bot: built in ``setup_hook`` from what ``main()`` hands it; no globals."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.domain.clock import Clock, SystemClock
from bot.domain.errors import UserError
from bot.domain.packs import PackError
from bot.domain.schedule import ScheduleInputError
from bot.reconcile import Reconciler
from bot.scheduler import Scheduler
from bot.services.debates import DebateService
from bot.services.polls import PollService

if TYPE_CHECKING:
    from bot.storage.database import Database

log = logging.getLogger(__name__)

# Loaded in this order; later issues add their features here.
EXTENSIONS: tuple[str, ...] = (
    "bot.cogs.meta",
    "bot.cogs.lifecycle",
    "bot.cogs.poll",  # registers the poll service the debates post through
    "bot.cogs.schedule",
    "bot.cogs.pack",
    "bot.cogs.debate",
    "bot.cogs.leaning",
    "bot.cogs.privacy",
    "bot.cogs.web",  # the website (only served when COMMONGROUND_WEB is set) and /web publish
)


def apply_endpoints(settings: Settings) -> None:
    """Point discord.py at the configured REST base and gateway: the one place this happens."""
    discord.http.Route.BASE = settings.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def user_message(error: BaseException) -> str | None:
    """The safe, user-facing message of an error, or None when it is a bug to log."""
    if isinstance(error, (app_commands.CommandInvokeError, app_commands.TransformerError)):
        inner = error.__cause__ or getattr(error, "original", None)
        if inner is not None and inner is not error:
            found = user_message(inner)
            if found:
                return found
    if isinstance(error, (UserError, PackError)):
        return error.message
    if isinstance(error, ScheduleInputError):
        return str(error)
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the **Manage Server** permission to use this command."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works inside a server."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} seconds."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You can't use this command here."
    return None


class CommonGroundTree(app_commands.CommandTree["CommonGround"]):
    async def on_error(self, interaction: discord.Interaction[CommonGround], error: app_commands.AppCommandError):
        message = user_message(error)
        if message is None:
            command = interaction.command.qualified_name if interaction.command else None
            log.error(
                "command %s failed in guild %s channel %s",
                command,
                interaction.guild_id,
                interaction.channel_id,
                exc_info=error,
            )
            message = "Something went wrong on our side; it has been logged. Please try again in a minute."
        await send_ephemeral(interaction, message)


MAX_CONTENT = 2000


async def send_ephemeral(interaction: discord.Interaction, content: str, **kwargs: Any) -> None:
    """Answer ephemerally whether or not the interaction was already acknowledged."""
    if len(content) > MAX_CONTENT:
        content = content[: MAX_CONTENT - 1] + "…"
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(content, ephemeral=True, **kwargs)
            return
        loading = await _public_loading_message(interaction)
        if loading is None:
            await interaction.followup.send(content, ephemeral=True, **kwargs)
            return
        # After a public defer the first follow-up would edit the public "thinking…" message and ignore
        # its ephemeral flag (I2): end the loading message first, answer privately, then remove it.
        await loading.edit(content="This couldn't be shown; the reason was sent to you privately.")
        await interaction.followup.send(content, ephemeral=True, **kwargs)
        await loading.delete()
    except discord.HTTPException:
        log.warning("could not deliver an error reply in guild %s", interaction.guild_id)


async def _public_loading_message(interaction: discord.Interaction) -> discord.InteractionMessage | None:
    """The public "thinking…" message of a deferred interaction still waiting for its answer, if any."""
    if interaction.response.type is not discord.InteractionResponseType.deferred_channel_message:
        return None
    try:
        original = await interaction.original_response()
    except discord.HTTPException:
        return None
    if original.flags.ephemeral or not original.flags.loading:
        return None
    return original


# discord.py waits this long after READY for the GUILD_CREATE events of the servers it is in before it
# dispatches on_ready; discord.py's own default, right for Discord. The sandbox sends every server at
# once, so tests pass a tiny value instead of idling two seconds at every start.
DEFAULT_GUILD_READY_TIMEOUT = 2.0


class CommonGround(commands.Bot):
    """The bot. Everything it needs is passed in; cogs reach it through ``self.bot``."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        clock: Clock | None = None,
        extensions: Sequence[str] = EXTENSIONS,
        polls: PollService | None = None,
        debates: DebateService | None = None,
        guild_ready_timeout: float = DEFAULT_GUILD_READY_TIMEOUT,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # servers joined/left, channels, threads, roles
        intents.guild_polls = True  # native poll vote add/remove events (not privileged)
        super().__init__(
            command_prefix=commands.when_mentioned,  # no prefix commands: slash commands only
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            tree_cls=CommonGroundTree,
            guild_ready_timeout=guild_ready_timeout,
        )
        self.settings = settings
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self._extension_names = tuple(extensions)
        self.scheduler = Scheduler(db, self.clock)
        # The services cogs, buttons and scheduled jobs share: typed attributes built here (or injected),
        # before any extension loads, so no extension depends on another having loaded first.
        self.polls: PollService = polls or PollService(self)
        self.debates: DebateService = debates or DebateService(
            db, self.clock, self.scheduler, polls=self.polls, bot=self
        )
        # Extensions add their reconciliation steps while loading (servers, schedules, poll closes, voters).
        self.reconciler = Reconciler()

    async def setup_hook(self) -> None:
        for name in self._extension_names:
            await self.load_extension(name)
        log.info("loaded %d extensions", len(self._extension_names))
        # Extensions register their job handlers while loading; only then may jobs run.
        self.scheduler.start()

    async def close(self) -> None:
        await self.scheduler.stop()
        await super().close()

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("ready as %s (%s) in %d servers", self.user, self.user.id, len(self.guilds))
        self.dispatch("reconcile")

    async def on_reconcile(self) -> None:
        """Every READY: the reconciliation steps in order, never two runs at once (bot/reconcile.py)."""
        await self.reconciler.run()
