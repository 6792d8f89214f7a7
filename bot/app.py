"""The discord.py Bot: built in ``setup_hook`` from what ``main()`` hands it; no globals."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.budget import RestBudget
from bot.budget import install as install_budget
from bot.config import Settings
from bot.domain.clock import Clock, SystemClock
from bot.domain.errors import UserError
from bot.domain.packs import PackError
from bot.domain.schedule import ScheduleInputError
from bot.domain.shards import ShardScope, rest_share
from bot.metrics import Metrics, OpsServer
from bot.metrics import attach as attach_metrics
from bot.reconcile import SERVERS, Reconciler, StopReconciliation
from bot.scheduler import Scheduler
from bot.services.debates import DebateService
from bot.services.packs import PackService
from bot.services.polls import PollService
from bot.services.suggestions import SuggestionService
from bot.storage.identify import IdentifyGate

if TYPE_CHECKING:
    from bot.storage.database import Database
    from bot.storage.jobs import Job

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
    if isinstance(error, app_commands.TransformerError):
        return transformer_message(error)
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


OTHER_SERVER_CHANNEL = (
    "That channel isn't one of this server's channels that I can see: pick a text channel of this server."
)


def transformer_message(error: app_commands.TransformerError) -> str:
    """An option value discord.py could not turn into its type: a channel or role of another server
    (a forged or stale payload), most often. Named, never logged as a bug."""
    if error.type is discord.AppCommandOptionType.channel:
        return OTHER_SERVER_CHANNEL
    if error.type is discord.AppCommandOptionType.role:
        return "That role isn't one of this server's roles: pick a role of this server."
    return f"I couldn't read the value {str(error.value)[:100]!r}: check it and try again."


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

# Names discord.py gives the tasks that run event handlers: app commands, components (views and
# DynamicItems, our vote buttons), modals, and dispatched events (listeners such as on_reconcile).
IN_FLIGHT_TASKS = ("CommandTree-invoker", "discord-ui-", "discord.py: ")
# A stop waits this long for replies in flight (inside Docker's default 10 s grace before SIGKILL).
DRAIN_SECONDS = 6.0


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


class WrongApplication(RuntimeError):
    """The token belongs to another Discord application than the one the database was created for."""


# discord.py waits this long after READY for the GUILD_CREATE events of the servers it is in before it
# dispatches on_ready; discord.py's own default, right for Discord. The sandbox sends every server at
# once, so tests pass a tiny value instead of idling two seconds at every start.
DEFAULT_GUILD_READY_TIMEOUT = 2.0


class IdentifyPacer:
    """At most one IDENTIFY per ``interval`` seconds in each bucket ``shard_id % max_concurrency``
    (DISCORD-FACTS G3; discord-api-docs, Gateway, "Max Concurrency"), in this process and, through the
    ``gate`` on a shared database, across every process of the bot. discord.py's own hook sleeps a flat
    5 s before every IDENTIFY but the first, whatever ``max_concurrency`` allows."""

    def __init__(self, interval: float = 5.0, max_concurrency: int = 1, gate: IdentifyGate | None = None) -> None:
        self.interval = interval
        self.max_concurrency = max(1, max_concurrency)
        self.gate = gate
        self._last: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def bucket(self, shard_id: int | None) -> int:
        return (shard_id or 0) % self.max_concurrency

    @property
    def spacing(self) -> float:
        # The hook returns before discord.py sends the IDENTIFY; a loaded loop can delay one send more
        # than the next, so keep a margin rather than meet Discord's interval to the millisecond.
        return self.interval * 1.1 + 0.1

    async def wait(self, shard_id: int | None) -> None:
        bucket = self.bucket(shard_id)
        lock = self._locks.setdefault(bucket, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            last = self._last.get(bucket)
            if last is not None:
                delay = last + self.spacing - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self.gate is not None:
                try:
                    await self.gate.take_turn(bucket, self.spacing)  # other processes' IDENTIFYs in this bucket
                except Exception as exc:  # the database is away: pace this process alone, as before
                    log.warning("IDENTIFY without a turn across processes (bucket %d): %s", bucket, exc)
            self._last[bucket] = loop.time()


class ShardingError(Exception):
    """The bot cannot connect with these shard settings; the message names the fix."""


class CommonGround(commands.AutoShardedBot):
    """The bot. Everything it needs is passed in; cogs reach it through ``self.bot``.

    Always sharded (discord.py's AutoShardedBot): with no shard settings it runs every shard of the
    count ``GET /gateway/bot`` recommends; a cluster runs ``settings.shards`` of ``settings.shard_count``.
    """

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
            shard_count=settings.shard_count,
            shard_ids=list(settings.shards) if settings.shards is not None else None,
            guild_ready_timeout=guild_ready_timeout,
        )
        self.settings = settings
        self.metrics: Metrics | None = None
        self._ops: OpsServer | None = None
        if settings.metrics_port is not None:
            attach_metrics(self)
        self.identify_pacer = IdentifyPacer(gate=IdentifyGate(db))
        self.session_start_limit: dict[str, int] | None = None
        self._first_ready_done = False
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self._extension_names = tuple(extensions)
        self.scheduler = Scheduler(db, self.clock, scope=settings.scope)
        self.scheduler.in_outage = self.failed_in_outage
        # The services cogs, buttons and scheduled jobs share: typed attributes built here (or injected),
        # before any extension loads, so no extension depends on another having loaded first.
        self.polls: PollService = polls or PollService(self)
        self.debates: DebateService = debates or DebateService(
            db, self.clock, self.scheduler, polls=self.polls, bot=self
        )
        self.packs: PackService = PackService(db, self.clock, self.debates.catalog)
        self.suggestions: SuggestionService = SuggestionService(db, self.clock, self.debates.essay)
        # Extensions add their reconciliation steps while loading (servers, schedules, poll closes, voters).
        self.reconciler = Reconciler()
        # Before any step changes anything: refuse a guild list that would mark too many servers as left.
        self.reconciler.add_step("departures-guard", self.guard_departures, order=SERVERS - 50)
        # Every REST call but interaction answers waits for this process's share of the bot's budget
        # (retuned once the shard count is known); none behind a shared REST proxy.
        share = settings.rest_share
        self.budget: RestBudget | None = None if share is None else RestBudget(share)
        if self.budget is not None:
            install_budget(self.http, self.budget)

    def guild_available(self, guild_id: int) -> bool:
        """Whether Discord currently serves the guild to us (G4: GUILD_DELETE with ``unavailable: true``
        is an outage, not a removal). Permanent decisions (a blocked schedule, a poll closed as deleted)
        are taken only while this holds; otherwise the job is retried."""
        guild = self.get_guild(guild_id)
        return guild is not None and not guild.unavailable

    def failed_in_outage(self, job: Job, exc: Exception) -> bool:
        """A job failed with a 5xx or a timeout while its server is in an outage (G4): Discord is not serving
        it, nothing is wrong with the job. The scheduler retries it quietly and never parks it for this."""
        if job.guild_id is None or self.guild_available(job.guild_id):
            return False
        return isinstance(exc, discord.DiscordServerError | TimeoutError | aiohttp.ClientError)

    async def check_identity(self) -> None:
        """The database belongs to one Discord application, stored at first start; another one's token
        (a staging bot against production data) stops here, before anything is read or changed."""
        from bot.storage import state as state_store

        app_id = self.application_id
        if app_id is None:
            return
        async with self.db.write() as conn:
            stored = await state_store.claim_application(conn, app_id, now=self.clock.now())
        if stored != app_id:
            raise WrongApplication(
                f"this database belongs to Discord application {stored}, but DISCORD_TOKEN is the token of "
                f"application {app_id}: refusing to start (reconciling would take every server as left); "
                "nothing was changed. Use the matching token, or point DATABASE_URL at that bot's database"
            )

    @property
    def scope(self) -> ShardScope:
        """The servers this process owns: its shards of the bot's shard count."""
        if self.shard_count is None:
            return self.settings.scope
        ids = tuple(self.shard_ids) if self.shard_ids is not None else None
        return ShardScope(self.shard_count, ids)

    async def launch_shards(self) -> None:
        """Ask ``GET /gateway/bot`` for the recommended count (when none is set) and the identify
        limits, refuse to start when the daily session starts cannot cover our shards, then connect
        every shard through the configured gateway (DISCORD_GATEWAY_URL)."""
        if self.is_closed():
            return
        recommended, _url, limits = await self.http.get_bot_gateway()
        self.session_start_limit = dict(limits)
        self.identify_pacer.max_concurrency = max(1, int(limits.get("max_concurrency", 1)))
        if self.shard_count is None:
            self.shard_count = recommended
        wanted = len(self.shard_ids) if self.shard_ids is not None else self.shard_count
        remaining = int(limits.get("remaining", wanted))
        if remaining < wanted:
            hours = int(limits.get("reset_after", 0)) / 3_600_000
            raise ShardingError(
                f"Discord allows {remaining} more session starts today and this process needs {wanted}; "
                f"the limit resets in {hours:.1f} h (starting anyway would get the token reset)."
            )
        share = rest_share(self.settings.rest_budget, self.scope, shared_proxy=self.settings.rest_proxy)
        if self.budget is not None and share is not None:
            self.budget.rate = share
        log.info(
            "connecting %s (max_concurrency %d, %d session starts left); REST share %s",
            self.scope.describe(),
            self.identify_pacer.max_concurrency,
            remaining,
            "none (a shared REST proxy keeps the budget)" if share is None else f"{share:.1f} requests/s",
        )
        if self.metrics is not None:
            self.metrics.rest_share.set(-1 if share is None else share)
        await super().launch_shards()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.identify_pacer.wait(shard_id)

    async def _install(self, name: str) -> None:
        """An extension module's ``setup(bot)``: its cogs, commands, views and job handlers.

        Not discord.py's ``load_extension``, which executes the module afresh on every load (for reloading
        code in a running bot, which this one never does) and, at close, sweeps every imported module for
        the extension's submodules. Imported once, the module serves every bot the process starts: the test
        suite starts about 280, and paid ~30 ms of CPU more for each start and stop. ``close()`` still
        removes every cog."""
        module = importlib.import_module(name)
        await module.setup(self)

    async def setup_hook(self) -> None:
        await self.check_identity()
        for name in self._extension_names:
            await self._install(name)
        log.info("loaded %d extensions", len(self._extension_names))
        # Extensions register their job handlers while loading; only then may jobs run.
        self.scheduler.start()
        if self.metrics is not None and self.settings.metrics_port is not None:
            self._ops = OpsServer(self, self.metrics, self.settings.metrics_host, self.settings.metrics_port)
            await self._ops.start()

    async def drain(self, timeout: float = DRAIN_SECONDS) -> int:
        """Let the event handlers in flight (clicks, commands, listeners) finish while HTTP is still
        open, so their replies go out; after ``timeout`` cancel the rest and wait for them, so no task
        holds a database connection when the database closes. Returns how many were cancelled."""
        current = asyncio.current_task()

        def in_flight() -> set[asyncio.Task]:
            return {
                t
                for t in asyncio.all_tasks()
                if t is not current and not t.done() and t.get_name().startswith(IN_FLIGHT_TASKS)
            }

        pending = in_flight()
        if pending:
            log.info("stopping: %d handlers in flight", len(pending))
            _, pending = await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
            log.warning("stopping: %d handlers did not finish within %.0f s and were cancelled", len(pending), timeout)
        return len(pending)

    async def close(self) -> None:
        if self._ops is not None:
            await self._ops.stop()
            self._ops = None
        await self.scheduler.stop()
        if self.identify_pacer.gate is not None:
            await self.identify_pacer.gate.close()
        # Stop reading every shard's gateway first (no new events, so nothing new to drain); the sockets
        # themselves are closed by discord.py's close below, after the replies in flight went out.
        for shard in getattr(self, "_AutoShardedClient__shards", {}).values():
            shard._cancel_task()
        await self.drain()
        if not hasattr(self, "_AutoShardedClient__queue"):
            # Built and closed without ever logging in (tests, `sync` failures): discord.py's sharded
            # close() posts to a queue that only log-in creates.
            self._AutoShardedClient__queue = asyncio.PriorityQueue()
        await super().close()

    async def on_ready(self) -> None:
        """Every shard of this process is ready: reconcile (only the servers of our shards)."""
        assert self.user is not None
        log.info(
            "ready as %s (%s) in %d servers on %s", self.user, self.user.id, len(self.guilds), self.scope.describe()
        )
        self._first_ready_done = True
        self.dispatch("reconcile")

    async def on_shard_ready(self, shard_id: int) -> None:
        # After the first READY of every shard, one shard can identify again alone (an invalid session);
        # discord.py then fires on_shard_ready but not on_ready. Reconcile again: every step works on
        # this process's shards only, and the reconciler never runs two passes at once.
        if self._first_ready_done and len(self.scope.held) > 1:
            self.dispatch("reconcile")

    async def on_reconcile(self) -> None:
        """Every READY: the reconciliation steps in order, never two runs at once (bot/reconcile.py)."""
        await self.reconciler.run()

    def max_left(self, known: int) -> int:
        """How many known servers one reconciliation may mark as left at once."""
        settings = self.settings
        return max(settings.reconcile_max_left_min, known * settings.reconcile_max_left_percent // 100)

    async def guard_departures(self, guild_id: int | None) -> None:
        """Reconciliation guard, before the servers step: a guild list that would mark more than
        :meth:`max_left` known servers as left is a partial or wrong list (a Discord incident, a token
        of another bot), not news; the run stops, nothing is changed, the next READY tries again."""
        if guild_id is not None:
            return  # one server back: nothing is marked as left
        from bot.storage import guilds as guild_store

        async with self.db.read() as conn:
            # Only this process's shards: another cluster's servers are never in our guild list.
            known = await guild_store.active_ids(conn, self.scope)
        missing = known - {g.id for g in self.guilds}
        limit = self.max_left(len(known))
        if len(missing) > limit:
            raise StopReconciliation(
                f"reconciliation refused: {len(missing)} of {len(known)} known servers are missing from "
                f"Discord's list, more than the {limit} allowed at once "
                f"(COMMONGROUND_RECONCILE_MAX_LEFT_PERCENT={self.settings.reconcile_max_left_percent}, "
                f"COMMONGROUND_RECONCILE_MAX_LEFT_MIN={self.settings.reconcile_max_left_min}); nothing was "
                "changed. If the bot really was removed from them, raise those settings and restart"
            )
