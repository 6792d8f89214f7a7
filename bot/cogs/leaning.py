"""/leaning: where the server stands between the individual and the community, and how that moves.

Thin adapter: storage queries -> domain statistics -> ui embeds and charts. Anything that reads many
rows or draws a chart defers first (Discord allows 3 s for the first answer); charts and clustering
run in a worker thread so the event loop keeps serving votes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain.errors import UserError
from bot.domain.groups import MIN_GROUP, opinion_groups
from bot.domain.leaning import placement_checks, unifying_and_divisive
from bot.domain.packs import THEMES
from bot.storage import leaning as store
from bot.ui import leaning as ui

if TYPE_CHECKING:
    from bot.app import CommonGround
    from bot.storage.database import AsyncConnection

log = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Any)


# period -> (days back, label, series step in days, step name). None: since the first poll.
PERIODS: dict[str, tuple[int | None, str, int, str]] = {
    "week": (7, "the last week", 1, "day"),
    "month": (30, "the last month", 1, "day"),
    "quarter": (91, "the last three months", 7, "week"),
    "year": (365, "the last year", 7, "week"),
    "all": (None, "all time", 7, "week"),
}
PERIOD_CHOICES = [
    app_commands.Choice(name="the last week", value="week"),
    app_commands.Choice(name="the last month", value="month"),
    app_commands.Choice(name="the last three months", value="quarter"),
    app_commands.Choice(name="the last year", value="year"),
    app_commands.Choice(name="all time", value="all"),
]
MAX_WEEKLY_POINTS = 104  # beyond two years of weeks, "all time" is drawn in four-week steps

Period = app_commands.Choice[str]


def _period(choice: Period | str | None, default: str) -> tuple[int | None, str, int, str]:
    key = choice.value if isinstance(choice, app_commands.Choice) else (choice or default)
    if key not in PERIODS:
        raise UserError(f"Unknown period {key!r}: choose one of {', '.join(PERIODS)}.")
    return PERIODS[key]


def _period_option(default: str) -> Callable[[_F], _F]:
    """The ``period`` option of a /leaning command: its choices, and the default named."""

    def decorate(command: _F) -> _F:
        described = app_commands.describe(period=f"How far back to look (default: {default})")
        return described(app_commands.choices(period=PERIOD_CHOICES)(command))

    return decorate


def _theme(value: str | None) -> str | None:
    """Autocomplete suggests; the command re-validates (a member can type anything)."""
    if value is None or not value.strip():
        return None
    theme = value.strip().lower()
    if theme not in THEMES:
        raise UserError(f"There is no theme called {value[:40]!r}. Pick one from the list: {', '.join(THEMES)}.")
    return theme


@app_commands.guild_only()
class Leaning(
    commands.GroupCog,
    group_name="leaning",
    group_description="Where this server leans between the individual and the community, and how it moves.",
):
    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot
        super().__init__()

    def _today(self) -> date:
        return self.bot.clock.now().date()

    def _since(self, days: int | None) -> date | None:
        return None if days is None else self._today() - timedelta(days=days - 1)

    async def _has_polls(self, guild_id: int) -> bool:
        async with self.bot.db.read() as conn:
            return bool(await store.poll_finals(conn, guild_id, limit=1))

    async def _nothing(self, interaction: discord.Interaction, guild_id: int, scope: str) -> None:
        """The friendly answer when a period has no closed poll (and whether the server has any)."""
        if await self._has_polls(guild_id):
            text = f"No poll closed in {scope} yet. Try a longer period, e.g. `period: all time`."
        else:
            text = ui.no_data()
        await interaction.followup.send(text)

    @contextlib.asynccontextmanager
    async def _reading(
        self, interaction: discord.Interaction, period: Period | None, default: str, *, ephemeral: bool = False
    ) -> AsyncIterator[tuple[AsyncConnection, int, str, date | None]]:
        """Read the period, defer (a chart takes a moment), then open a read transaction; yields
        (connection, guild id, period label, since)."""
        days, label, _, _ = _period(period, default)
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        async with self.bot.db.read() as conn:
            yield conn, interaction.guild_id, label, self._since(days)

    async def _send_chart(
        self,
        interaction: discord.Interaction,
        embed: discord.Embed,
        filename: str,
        draw: Callable[..., bytes],
        *args: Any,
        ephemeral: bool = False,
    ) -> None:
        """Draw the chart off the event loop, then send it with its embed."""
        image = await asyncio.to_thread(draw, *args)
        await interaction.followup.send(embed=embed, file=ui.png(image, filename), ephemeral=ephemeral)

    # -- /leaning show ----------------------------------------------------------------------------

    @app_commands.command(name="show", description="The server's leaning over time, as a chart with a short summary.")
    @app_commands.describe(period="How far back to look (default: three months)", theme="Only one essay theme")
    @app_commands.choices(period=PERIOD_CHOICES)
    async def show(
        self, interaction: discord.Interaction[CommonGround], period: Period | None = None, theme: str | None = None
    ) -> None:
        days, label, step_days, step = _period(period, "quarter")
        theme = _theme(theme)
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True)
        guild_id = interaction.guild_id
        since = self._since(days)
        async with self.bot.db.read() as conn:
            finals = await store.poll_finals(conn, guild_id, since=since, theme=theme)
            if not finals:
                points = []
            elif step_days == 1:
                points = await store.daily_series(conn, guild_id, theme=theme, since=since)
            else:
                points = await store.weekly_series(conn, guild_id, theme=theme, since=since)
                if len(points) > MAX_WEEKLY_POINTS:
                    first = finals[0].closed_at.date()
                    points = await store.daily_series(conn, guild_id, theme=theme, since=first, step_days=28)
                    step = "four weeks"
            overall = await store.period_leaning(conn, guild_id, since=since, theme=theme)
            took_part = await store.participants(conn, guild_id, since=since, theme=theme)
        if not finals:
            scope = label + (f" on {theme}" if theme else "")
            await self._nothing(interaction, guild_id, scope)
            return
        unifying_id, divisive_id = unifying_and_divisive([(p.poll_id, p.counts) for p in finals])
        by_id = {p.poll_id: p for p in finals}
        data = ui.ShowData(
            period_label=label,
            theme=theme,
            points=points,
            overall=overall,
            participants=took_part,
            unifying=by_id.get(unifying_id) if unifying_id is not None else None,
            divisive=by_id.get(divisive_id) if divisive_id is not None else None,
            movers=ui.movers(finals, overall),
        )
        cadence = {"day": "day by day", "week": "week by week"}.get(step, f"every {step}")
        title = f"Leaning {cadence}, {label}" + (f" — {theme}" if theme else "")
        await self._send_chart(
            interaction,
            ui.show_embed(data, step),
            "leaning.png",
            ui.leaning_chart,
            points,
            title,
            ui.marks(data.movers),
        )

    @show.autocomplete("theme")
    async def _theme_autocomplete(self, _interaction: discord.Interaction, current: str):
        current = current.strip().lower()
        return [
            app_commands.Choice(name=f"{name} — {about}"[:100], value=name)
            for name, about in THEMES.items()
            if current in name or current in about
        ][:25]

    # -- /leaning themes --------------------------------------------------------------------------

    @app_commands.command(name="themes", description="The leaning per essay theme, with intervals and vote counts.")
    @_period_option("all time")
    async def themes(self, interaction: discord.Interaction[CommonGround], period: Period | None = None) -> None:
        async with self._reading(interaction, period, "all") as (conn, guild_id, label, since):
            per_theme = await store.theme_leanings(conn, guild_id, since=since)
        if not per_theme:
            await self._nothing(interaction, guild_id, label)
            return
        order = list(THEMES)
        rows = sorted(per_theme.items(), key=lambda kv: order.index(kv[0]) if kv[0] in THEMES else len(order))
        title = f"Leaning by theme, {label}"
        await self._send_chart(interaction, ui.themes_embed(rows, label), "themes.png", ui.themes_chart, rows, title)

    # -- /leaning shift ---------------------------------------------------------------------------

    @app_commands.command(name="shift", description="How many members changed their mind during debates.")
    @_period_option("the last month")
    async def shift(self, interaction: discord.Interaction[CommonGround], period: Period | None = None) -> None:
        async with self._reading(interaction, period, "month") as (conn, guild_id, label, since):
            summary = await store.shift_data(conn, guild_id, since=since)
            top = [p for p, _ in ui.top_shifts(summary)]
            questions = {p.poll_id: p.question for p in await store.poll_finals(conn, guild_id, poll_ids=top)}
        if not summary.members:
            await self._nothing(interaction, guild_id, label)
            return
        embed = ui.shift_embed(summary, questions, label)
        title = f"Changes of mind, {label}"
        await self._send_chart(interaction, embed, "shift.png", ui.shift_chart, summary, questions, title)

    # -- /leaning groups --------------------------------------------------------------------------

    @app_commands.command(name="groups", description="Opinion groups: who votes alike, where groups agree and split.")
    @_period_option("all time")
    async def groups(self, interaction: discord.Interaction[CommonGround], period: Period | None = None) -> None:
        async with self._reading(interaction, period, "all") as (conn, guild_id, label, since):
            vm = await store.vote_matrix(conn, guild_id, since=since)
        if vm.matrix.size == 0 and not vm.excluded:
            await self._nothing(interaction, guild_id, label)
            return
        result = await asyncio.to_thread(opinion_groups, vm.matrix, None, vm.polls)
        # Never carry the member -> group mapping further, and never show a group under MIN_GROUP.
        result = replace(
            result.without_members(),
            groups=[g for g in result.groups if g.size >= MIN_GROUP],
            members_excluded=result.members_excluded + vm.excluded,
        )
        if len(result.groups) < 2:
            unlabelled = [(x, y, None) for x, y, _ in result.coords_for_map]
            result = replace(result, groups=[], consensus=[], divisive=[], coords_for_map=unlabelled)
        wanted = [c.poll for c in (*result.consensus[:4], *result.divisive[:4])]
        async with self.bot.db.read() as conn:
            questions = {p.poll_id: p.question for p in await store.poll_finals(conn, guild_id, poll_ids=wanted)}
        embed = ui.groups_embed(result, questions, label)
        await self._send_chart(interaction, embed, "groups.png", ui.groups_chart, result, f"Opinion groups, {label}")

    # -- /leaning me ------------------------------------------------------------------------------

    @app_commands.command(name="me", description="Only you see it: your own position next to the server's, per theme.")
    @_period_option("all time")
    async def me(self, interaction: discord.Interaction[CommonGround], period: Period | None = None) -> None:
        async with self._reading(interaction, period, "all", ephemeral=True) as (conn, guild_id, label, since):
            compass = await store.member_compass(conn, guild_id, interaction.user.id, since=since)
        if compass.member.n == 0:
            await interaction.followup.send(
                f"You haven't voted in a poll that has closed here ({label}), so there's no compass to show yet. "
                "Vote on the next daily debate; your position appears here once its poll closes. "
                "Only you will see it.",
                ephemeral=True,
            )
            return
        title = f"You and the server, {label}"
        await self._send_chart(
            interaction, ui.me_embed(compass, label), "compass.png", ui.me_chart, compass, title, ephemeral=True
        )

    # -- /leaning methodology ---------------------------------------------------------------------

    @app_commands.command(name="methodology", description="How every number here is computed, and what it is not.")
    async def methodology(self, interaction: discord.Interaction[CommonGround]) -> None:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            await interaction.response.send_message(embed=ui.methodology_embed(), ephemeral=True)
            return
        # Moderators also see which options' voters disagree with their placement (reads every vote).
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.bot.db.read() as conn:
            data = await store.placement_data(conn, interaction.guild_id)
        checks = await asyncio.to_thread(placement_checks, data.votes)
        method = ui.methodology_embed()
        budget = ui.TOTAL_MAX - len(method) - 10  # one message's embeds share 6,000 characters
        placement = ui.placement_embed(checks, data.labels, data.questions, budget=budget)
        await interaction.followup.send(embeds=[method, placement], ephemeral=True)


async def setup(bot: CommonGround) -> None:
    await bot.add_cog(Leaning(bot))
