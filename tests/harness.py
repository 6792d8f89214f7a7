"""The end-to-end harness: the local sandbox, a real SQLite file, a FakeClock and the real bot.

    async with Harness(tmp_path) as h:
        ix = await h.slash(h.mod, "schedule setup", {"channel": h.channel.id, ...})
        reply = await ix.response()
        await h.advance(timedelta(hours=3))      # moves the clock, runs every job that became due

Everything waits with a timeout; nothing sleeps to let things settle.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord

from bot.app import EXTENSIONS, CommonGround
from bot.demo import SANDBOX_GUILD_READY_TIMEOUT, build_world, sandbox_settings
from bot.domain.clock import FakeClock
from bot.runtime import build_bot
from bot.sandbox.conditions import Conditions
from bot.sandbox.server import Sandbox
from bot.storage.database import Database
from tests.sqlite_template import migrated_sqlite

# What the bot imports only on first use (a chart, a period leaning), to keep a process small: a test
# would otherwise pay for it in the middle of a click's 3 seconds. Not scikit-learn (opinion groups):
# /leaning groups defers before it clusters, and most test processes never cluster.
LAZY_STACK = ("bot.ui.charts", "scipy.special")

# Import every extension (and the chart and statistics stack above) when the harness is imported, at
# collection: a bot's first start in a test process would otherwise spend seconds of its 10-second
# readiness budget importing them, and fail on a loaded machine for a reason that is not the bot's.
for _extension in (*EXTENSIONS, *LAZY_STACK):
    importlib.import_module(_extension)

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday morning, before the first DST change of 2026
MOD_PERMISSIONS = discord.Permissions(manage_guild=True, manage_messages=True).value
# Discord paces IDENTIFY at one per 5 s per bucket (G3); tests scale that down, for the sandbox and the bot.
TEST_IDENTIFY_INTERVAL = 0.05


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        *,
        extensions: Sequence[str] = EXTENSIONS,
        now: datetime = START,
        members: int = 3,
        sandbox: Sandbox | None = None,
        sandbox_options: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        bot_permissions: int | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.extensions = tuple(extensions)
        self.clock = FakeClock(now)
        # The sandbox measures Discord's own clocks (nonce window, native poll expiry) on the same FakeClock.
        # COMMONGROUND_TEST_REALISTIC=1 runs every harness test under Conditions.realistic() (latency,
        # skew, Discord's rate limits) unless the test chose its own conditions.
        options = {"clock": self.clock, "identify_interval": TEST_IDENTIFY_INTERVAL, **(sandbox_options or {})}
        if os.environ.get("COMMONGROUND_TEST_REALISTIC") == "1":
            options.setdefault("conditions", Conditions.realistic())
        self.sandbox = sandbox or Sandbox(**options)
        if sandbox is not None:
            sandbox.use_clock(self.clock)
        self._own_sandbox = sandbox is None
        self.member_count = members
        self.settings_overrides = dict(settings or {})
        # None: the sandbox's default bot; an integer: the bot's role holds exactly that (e.g. an invite's).
        self.bot_permissions = bot_permissions
        self.db: Database | None = None
        self.bot: CommonGround | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Harness:
        await self.sandbox.start()
        sb = self.sandbox
        world = build_world(
            sb,
            guild="Common Ground Test",
            channel="debates",
            mod_permissions=MOD_PERMISSIONS,
            bot_permissions=self.bot_permissions,
        )
        self.guild, self.channel, self.mod_role, self.mod = world.guild, world.channel, world.mod_role, world.mod
        self.members = [sb.add_member(self.guild.id, f"member{i}") for i in range(self.member_count)]
        database = self.tmp_path / "e2e.db"
        if not database.exists():  # a fresh file: a copy of this process's migrated template
            await migrated_sqlite(database)
        self.settings = sandbox_settings(sb, database, **self.settings_overrides)
        self.db = await Database.open(self.settings.database_url)
        await self.start_bot()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_bot()
        if self.db is not None:
            await self.db.close()
        if self._own_sandbox:
            await self.sandbox.stop()

    async def start_bot(self, *, timeout: float = 10) -> CommonGround:
        assert self.db is not None
        if self.sandbox.conditions.latency is not None:
            timeout *= 3  # every gateway frame and REST call of the start-up pays its network trips
        self.bot = build_bot(
            self.settings,
            self.db,
            clock=self.clock,
            extensions=self.extensions,
            guild_ready_timeout=SANDBOX_GUILD_READY_TIMEOUT,
        )
        self.bot.identify_pacer.interval = self.sandbox.identify_interval
        reconciling = asyncio.Event()

        async def mark() -> None:
            reconciling.set()

        self.bot.add_listener(mark, "on_reconcile")
        self._task = asyncio.create_task(self.bot.start(self.settings.token), name="bot")
        ready = asyncio.create_task(self.bot.wait_until_ready())
        done, _ = await asyncio.wait({ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            self._task.result()  # raises the start-up error
        if ready not in done:
            ready.cancel()
            raise TimeoutError(f"the bot was not ready within {timeout}s")
        await asyncio.wait_for(self.bot.tree.sync(), timeout)
        # on_ready dispatches "reconcile" to listeners that run as tasks of their own: wait until every
        # one has returned (the servers' rows are written), then until the jobs they armed have run.
        await asyncio.wait_for(reconciling.wait(), timeout)
        self.bot.remove_listener(mark, "on_reconcile")
        me = asyncio.current_task()
        listeners = [t for t in asyncio.all_tasks() if t.get_name() == "discord.py: on_reconcile" and t is not me]
        await asyncio.wait_for(asyncio.gather(*listeners, return_exceptions=True), timeout)
        await self.wait_reconciled(timeout=timeout)
        return self.bot

    async def wait_reconciled(self, *, timeout: float = 10) -> None:
        """Wait until on_ready's reconciliation has run (every step, in order) and the jobs it armed have
        been handled."""
        assert self.bot is not None
        bot = self.bot
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (
            bot.reconciler.full_runs_done < 1
            or bot.reconciler.busy  # a READY's run, or one server's (a GUILD_CREATE after READY)
            or any(t.get_name() == "discord.py: on_reconcile" and not t.done() for t in asyncio.all_tasks())
        ):
            if loop.time() > deadline:
                raise TimeoutError(f"reconciliation did not finish within {timeout}s")
            await asyncio.sleep(0.01)
        await asyncio.wait_for(bot.scheduler.drain(), timeout)

    async def stop_bot(self) -> None:
        if self.bot is not None:
            await self.bot.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (asyncio.CancelledError, discord.ConnectionClosed):
                pass
        self.bot = None
        self._task = None

    async def restart(self) -> CommonGround:
        """Stop the bot and start a new one on the same database, sandbox and clock."""
        await self.stop_bot()
        return await self.start_bot()

    # -- acting as members -----------------------------------------------------------------------

    async def slash(self, member, name: str, options: dict[str, Any] | None = None, *, channel=None):
        """A member types a slash command; returns the sandbox's interaction record."""
        return await self.sandbox.slash(self.guild.id, (channel or self.channel).id, member.id, name, options or {})

    async def reply(self, member, name: str, options: dict[str, Any] | None = None, *, timeout: float = 5) -> dict:
        """A slash command's answer as the member sees it, e.g. ``{"type": 4, "data": {"content": ...}}``.

        A command whose work ran past its answer budget defers privately (a loaded machine, a busy writer);
        its answer is then the follow-up, returned in the same shape with ``"deferred": True``."""
        interaction = await self.slash(member, name, options)
        first = await interaction.response(timeout=timeout)
        if first["type"] != 5:
            return first

        def answered() -> dict | None:
            if interaction.followups:
                return interaction.followups[0]
            original = interaction.original or {}
            if not (original.get("flags") or 0) & 128 and (original.get("content") or original.get("embeds")):
                return original
            return None

        message = await self.sandbox.wait_for(answered, timeout=max(timeout, 10))
        return {"type": 4, "data": message, "deferred": True}

    async def advance(self, delta: timedelta, *, timeout: float = 20) -> None:
        """Move the fake clock and run every job that became due (and what they make due now)."""
        self.clock.advance(delta)
        assert self.bot is not None
        await asyncio.wait_for(self.bot.scheduler.drain(), timeout)

    def posts(self, channel=None) -> list[dict]:
        """Messages the bot posted in a channel (the sandbox's record, Discord's shape)."""
        return [
            m
            for m in self.sandbox.messages((channel or self.channel).id)
            if int(m["author"]["id"]) == self.sandbox.bot_user_id
        ]
