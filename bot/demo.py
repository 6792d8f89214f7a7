"""`commonground demo`: the local sandbox and the real bot in one process, a simulated server for N days.

Members of a few opinion profiles vote on the daily debates through real button clicks, some change
their minds, opinion drifts; at the end the members ask for the leaning commands. Everything a member
sees is printed, and every chart is written to the output folder. No token, no network but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import shutil
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import CommonGround
from bot.config import Settings, load_settings
from bot.domain.clock import FakeClock
from bot.domain.packs import THEMES
from bot.domain.schedule import describe_relative
from bot.runtime import build_bot
from bot.sandbox.conditions import Conditions
from bot.sandbox.records import ChannelRecord, GuildRecord, MemberRecord, RoleRecord
from bot.sandbox.server import Sandbox
from bot.storage.database import Database

log = logging.getLogger(__name__)

START = datetime(2026, 9, 7, 6, 0, tzinfo=UTC)  # a Monday; Europe/London leaves summer time on Oct 25
TIMEZONE = "Europe/London"
POST_TIME = "09:00"
POLL_HOURS = 12
EPHEMERAL = 64
# The sandbox sends every server right after READY, so the bot need not wait discord.py's default 2 s
# (``guild_ready_timeout``) for more; the harness of the tests uses the same value.
SANDBOX_GUILD_READY_TIMEOUT = 0.05


@dataclass
class Persona:
    """A simulated member: where they stand, how it drifts, how often they vote and rethink."""

    name: str
    base: float
    drift: float  # change of base over the whole run
    turnout: float
    rethink: float  # chance of changing their vote after reading the thread
    tilts: dict[str, float]

    def stance(self, theme: str, progress: float, rng: random.Random) -> float:
        return self.base + self.drift * progress + self.tilts.get(theme, 0.0) + rng.gauss(0, 0.35)


PROFILES = (
    ("ind", -0.6, 0.0, {"rights": -0.3, "self-reliance": -0.2, "conformity": -0.3, "duty-to-community": 0.3}),
    ("com", 0.6, 0.0, {"duty-to-community": 0.3, "crime-and-safety": 0.2, "rights": 0.3, "uniqueness": -0.2}),
    ("mid", 0.0, 0.0, {"balance": 0.1}),
    ("swing", -0.3, 0.7, {}),
)
NAMES = (
    "ada",
    "bashir",
    "chen",
    "dara",
    "eli",
    "farah",
    "gus",
    "hana",
    "ines",
    "jon",
    "kemi",
    "lars",
    "mira",
    "nico",
    "oona",
    "pia",
    "quinn",
    "rafa",
    "sade",
    "tomas",
    "uma",
    "vik",
    "wren",
    "xiu",
    "yara",
    "zane",
    "ari",
    "bo",
)


@dataclass(frozen=True)
class World:
    """A server in the sandbox as the demo and the end-to-end tests start it: one channel for the
    debates, a moderator role and a moderator."""

    guild: GuildRecord
    channel: ChannelRecord
    mod_role: RoleRecord
    mod: MemberRecord


def build_world(
    sb: Sandbox, *, guild: str, channel: str, mod_permissions: int, bot_permissions: int | None = None
) -> World:
    """Create the server, its debate channel, a "Moderators" role holding ``mod_permissions`` and a
    moderator; the bot's role holds ``bot_permissions`` (None: the sandbox's default)."""
    extra = {} if bot_permissions is None else {"bot_permissions": bot_permissions}
    g = sb.create_guild(guild, **extra)
    debates = sb.create_channel(g.id, channel)
    mod_role = sb.create_role(g.id, "Moderators", permissions=mod_permissions)
    mod = sb.add_member(g.id, "moderator", roles=[mod_role.id])
    return World(g, debates, mod_role, mod)


def sandbox_settings(sb: Sandbox, database: Path, **overrides: Any) -> Settings:
    """The bot's settings for ``sb``: its token, REST base and gateway, a SQLite file at ``database``."""
    return load_settings(
        env={},
        token=sb.token,
        database_url=f"sqlite+aiosqlite:///{database}",
        api_base=sb.api_base,
        gateway_url=sb.gateway_url,
        **overrides,
    )


def make_personas(rng: random.Random) -> list[Persona]:
    personas = []
    for i, name in enumerate(NAMES):
        tag, base, drift, tilts = PROFILES[i % len(PROFILES)]
        personas.append(
            Persona(
                name=name,
                base=base + rng.uniform(-0.15, 0.15),
                drift=drift,
                turnout=rng.uniform(0.6, 0.95),
                rethink=0.15 if tag in ("mid", "swing") else 0.05,
                tilts=tilts,
            )
        )
    return personas


# -- printing what members saw ----------------------------------------------------------------------


def _indent(text: str, prefix: str = "    ") -> str:
    return textwrap.indent(text.rstrip(), prefix)


def render_message(data: dict[str, Any] | None) -> str:
    """A Discord message or callback payload as plain text, the way a member would read it."""
    if not data:
        return "(no content)"
    parts: list[str] = []
    if data.get("content"):
        parts.append(data["content"])
    for embed in data.get("embeds") or []:
        if embed.get("title"):
            parts.append(f"**{embed['title']}**")
        if embed.get("description"):
            parts.append(embed["description"])
        for field in embed.get("fields") or []:
            parts.append(f"{field['name']}: {field['value']}")
        if (embed.get("footer") or {}).get("text"):
            parts.append(f"— {embed['footer']['text']}")
    poll = data.get("poll")
    if poll:
        parts.append(f"[native poll] {poll['question']['text']}")
        parts += [f"  ○ {a['poll_media']['text']}" for a in poll.get("answers", [])]
    buttons = [
        c.get("label") or c.get("custom_id")
        for row in data.get("components") or []
        for c in row.get("components", [])
        if c.get("type") == 2
    ]
    if buttons:
        parts.append("buttons: " + " | ".join(f"[{b}]" for b in buttons))
    files = [a.get("filename") for a in data.get("attachments") or []]
    if files:
        parts.append("attached: " + ", ".join(files))
    return "\n".join(parts) or "(empty)"


def _answer_of(interaction) -> dict[str, Any] | None:
    """The real answer of a deferred interaction, once the bot has sent it."""
    original = interaction.original
    if original and (original.get("content") or original.get("embeds") or original.get("attachments")):
        return original
    return interaction.followups[0] if interaction.followups else None


_TIMESTAMP = re.compile(r"<t:(\d+)(?::[tTdDfFR])?>")
_CHANNEL = re.compile(r"<#(\d+)>")


class Transcript:
    """Prints what members saw, with Discord's markup shown the way their client shows it."""

    def __init__(self, clock: FakeClock, sandbox: Sandbox) -> None:
        self.clock = clock
        self.sandbox = sandbox

    def channel_name(self, channel_id: int) -> str:
        channel = self.sandbox.channels.get(channel_id)
        return channel.name if channel else "deleted-channel"

    def humanize(self, text: str) -> str:
        def timestamp(match: re.Match[str]) -> str:
            when = datetime.fromtimestamp(int(match.group(1)), UTC)
            if match.group(0).endswith(":R>"):
                return describe_relative(when - self.clock.now())
            return when.strftime("%a %d %b %H:%M UTC")

        text = _TIMESTAMP.sub(timestamp, text)
        return _CHANNEL.sub(lambda m: "#" + self.channel_name(int(m.group(1))), text)

    def say(self, text: str = "") -> None:
        print(self.humanize(text), flush=True)

    def command(self, who: str, command: str, reply: dict[str, Any]) -> None:
        data = reply.get("data") or {}
        private = bool(data.get("flags", 0) & EPHEMERAL)
        self.say(f"\n{who} › /{command}")
        label = "bot (only they see this)" if private else "bot"
        if reply.get("type") == 9:
            self.say(f"  {label} ‹ opens a form: {data.get('title')}")
        else:
            self.say(f"  {label} ‹")
            self.say(_indent(render_message(data)))


# -- the demo ---------------------------------------------------------------------------------------


class Demo:
    def __init__(
        self, settings: Settings, *, days: int, out: Path, seed: int, conditions: Conditions | None = None
    ) -> None:
        self.base_settings = settings
        self.days = days
        self.out = out
        self.rng = random.Random(seed)
        self.clock = FakeClock(START)
        self.conditions = conditions or Conditions()
        self.sandbox = Sandbox(clock=self.clock, conditions=self.conditions)
        self.t = Transcript(self.clock, self.sandbox)
        self.bot: CommonGround | None = None
        self.db: Database | None = None
        self.task: asyncio.Task[None] | None = None
        self.saved: list[Path] = []
        self.stats = {"posts": 0, "clicks": 0, "changes": 0, "answered": 0}
        self.extra_settings: dict[str, Any] = {}  # `demo --web` adds the website's settings

    async def __aenter__(self) -> Demo:
        await self.sandbox.start()
        if self.out.exists():
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True)
        sb = self.sandbox
        world = build_world(sb, guild="Common Ground Demo", channel="daily-debate", mod_permissions=1 << 5)
        self.guild, self.channel, self.mod_role, self.mod = world.guild, world.channel, world.mod_role, world.mod
        self.personas = make_personas(self.rng)
        self.members = {p.name: sb.add_member(self.guild.id, p.name) for p in self.personas}
        settings = sandbox_settings(sb, self.out / "demo.db", **self.extra_settings)
        self.db = await Database.open(settings.database_url)
        self.bot = build_bot(settings, self.db, clock=self.clock, guild_ready_timeout=SANDBOX_GUILD_READY_TIMEOUT)
        self.task = asyncio.create_task(self.bot.start(settings.token), name="bot")
        patience = 15 if self.conditions.latency is None else 30  # every frame and call pays its trips
        await asyncio.wait_for(self.bot.wait_until_ready(), patience)
        await asyncio.wait_for(self.bot.tree.sync(), patience)
        await asyncio.wait_for(self.bot.scheduler.drain(), patience)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Let the last answers finish their trip (with --realistic they take ~160 ms) before closing.
        with contextlib.suppress(TimeoutError):
            await self.sandbox.wait_for(lambda: self.sandbox.in_flight == 0, timeout=10)
        if self.bot is not None:
            await self.bot.close()
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)
        if self.db is not None:
            await self.db.close()
        await self.sandbox.stop()

    # -- acting ------------------------------------------------------------------------------------

    async def slash(self, member, name: str, options: dict[str, Any] | None = None, *, show: bool = True) -> dict:
        who = member.user["username"]
        ix = await self.sandbox.slash(self.guild.id, self.channel.id, member.id, name, options or {})
        reply = await ix.response(timeout=5)
        if reply.get("type") == 5:  # deferred ("thinking…"): the answer is an edit of @original or a follow-up
            data = await self.sandbox.wait_for(lambda: _answer_of(ix), timeout=30)
            reply = {"type": 4, "data": {**data, "flags": (reply.get("data") or {}).get("flags", 0)}}
        self.stats["answered"] += 1
        self.save_files(reply.get("data") or {}, name.replace(" ", "-"))
        if show:
            self.t.command(who, name + "".join(f" {k}:{v}" for k, v in (options or {}).items()), reply)
        return reply

    def save_files(self, data: dict[str, Any], stem: str) -> None:
        for attachment in data.get("attachments") or []:
            stored = self.sandbox.attachments.get(int(attachment["id"]))
            if stored is None:
                continue
            filename, payload, _ctype = stored
            target = self.out / f"{stem}-{filename}"
            target.write_bytes(payload)
            self.saved.append(target)

    async def advance_to(self, when: datetime) -> None:
        if when > self.clock.now():
            self.clock.set(when)
        assert self.bot is not None
        await asyncio.wait_for(self.bot.scheduler.drain(), 30)

    def bot_posts(self) -> list[dict[str, Any]]:
        return [m for m in self.sandbox.messages(self.channel.id) if int(m["author"]["id"]) == self.sandbox.bot_user_id]

    @staticmethod
    def vote_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            c
            for row in message.get("components") or []
            for c in row.get("components", [])
            if c.get("type") == 2 and str(c.get("custom_id", "")).startswith("poll:vote:")
        ]

    async def click(self, member, message: dict[str, Any], button: dict[str, Any]) -> dict[str, Any]:
        ix = await self.sandbox.click(self.channel.id, int(message["id"]), button["custom_id"], member.id)
        reply = await ix.response(timeout=5)
        if reply.get("type") == 5:  # deferred (slow network, skewed clocks): the answer comes as a follow-up
            data = await self.sandbox.wait_for(lambda: _answer_of(ix), timeout=30)
            reply = {"type": 4, "data": {**data, "flags": (reply.get("data") or {}).get("flags", 0)}}
        self.stats["clicks"] += 1
        return reply

    # -- the script --------------------------------------------------------------------------------

    async def run(self) -> None:
        t = self.t
        first = self.members[self.personas[0].name]
        t.say("=== Common Ground demo: a local Discord sandbox and the real bot, no token needed ===")
        t.say(f"server: {self.guild.name} · channel: #{self.channel.name} · {len(self.members)} members + a moderator")
        c = self.conditions
        if c.latency is not None or c.skew or c.rate_limits:
            mean, jitter = c.latency or (0.0, 0.0)
            t.say(
                f"conditions: {mean * 1000:.0f} ms ± {jitter * 1000:.0f} ms each way · Discord's clock "
                f"{c.skew:+.1f} s from the host's · rate limits {'on' if c.rate_limits else 'off'} "
                f"(global {c.global_limit}/s)"
            )
        await self.slash(first, "about")
        help_reply = await self.slash(first, "help", show=False)
        n_lines = sum(f["value"].count("\n") + 1 for f in help_reply["data"]["embeds"][0]["fields"])
        t.say(f"\n{first.user['username']} › /help\n  bot (only they see this) ‹ {n_lines} commands, grouped")
        await self.slash(
            self.mod,
            "schedule setup",
            {
                "channel": self.channel.id,
                "time": POST_TIME,
                "timezone": TIMEZONE,
                "days": "daily",
                "poll-hours": POLL_HOURS,
                "thread": True,
            },
        )
        await self.slash(self.mod, "schedule status")
        # A member who tries a moderator command is refused, and nothing changes.
        await self.slash(first, "schedule pause")

        for day in range(self.days):
            detail = day < 2
            await self.play_day(day, detail=detail)
            if not detail and (day + 1) % 7 == 0:
                t.say(f"  … day {day + 1}: {self.stats['posts']} debates posted, {self.stats['clicks']} clicks so far")

        t.say("\n=== after the run: what members and moderators can ask ===")
        await self.slash(first, "debate results")
        await self.slash(first, "leaning show", {"period": "all"})
        await self.slash(first, "leaning themes")
        await self.slash(first, "leaning shift")
        await self.slash(first, "leaning groups")
        await self.slash(first, "leaning me")
        await self.slash(self.mod, "poll export")
        await self.slash(first, "privacy export-me")
        t.say("\n=== summary ===")
        t.say(
            f"{self.days} days · {self.stats['posts']} debates posted · {self.stats['clicks']} button clicks "
            f"({self.stats['changes']} changed their mind) · {self.stats['answered']} commands answered"
        )
        if self.conditions.rate_limits:
            lim = self.sandbox.limits
            t.say(
                f"rate limits: {lim.route_429s} per-route and {lim.global_429s} global 429s · "
                f"{lim.invalid_total} invalid requests (ban at {self.conditions.invalid_limit} in "
                f"{self.conditions.invalid_window / 60:.0f} min) · {len(self.sandbox.requests)} requests"
            )
        t.say("files written:")
        for path in self.saved:
            t.say(f"  {path}")

    async def play_day(self, day: int, *, detail: bool) -> None:
        t = self.t
        date = (START + timedelta(days=day)).date()
        before = {m["id"] for m in self.bot_posts()}
        await self.advance_to(datetime(date.year, date.month, date.day, 9, 5, tzinfo=UTC))
        new = [m for m in self.bot_posts() if m["id"] not in before and self.vote_buttons(m)]
        if not new:
            t.say(f"\nday {day + 1} ({date}): no debate was posted")
            return
        post = new[-1]
        self.stats["posts"] += 1
        if detail:
            t.say(f"\n--- day {day + 1} ({date}, 09:00 {TIMEZONE}): the bot posts in #{self.channel.name} ---")
            t.say(_indent(render_message(post)))
        theme = self.theme_of(post)
        progress = day / max(self.days - 1, 1)
        buttons = self.vote_buttons(post)
        positions = self.positions(len(buttons))
        choices: dict[str, int] = {}
        for persona in self.personas:
            if self.rng.random() > persona.turnout:
                continue
            want = persona.stance(theme, progress, self.rng)
            idx = min(range(len(buttons)), key=lambda i: abs(positions[i] - want))
            choices[persona.name] = idx
            reply = await self.click(self.members[persona.name], post, buttons[idx])
            if detail and len(choices) <= 2:
                t.say(f"\n{persona.name} clicks [{buttons[idx].get('label')}]")
                t.say(f"  bot (only they see this) ‹ {render_message(reply.get('data'))}")
        # After reading the thread, some members change their minds (toward the middle, mostly).
        await self.advance_to(datetime(date.year, date.month, date.day, 13, 0, tzinfo=UTC))
        for persona in self.personas:
            if persona.name in choices and self.rng.random() < persona.rethink:
                old = choices[persona.name]
                new_idx = max(0, min(len(buttons) - 1, old + (1 if positions[old] < 0 else -1)))
                if new_idx != old:
                    await self.click(self.members[persona.name], post, buttons[new_idx])
                    self.stats["changes"] += 1
        await self.advance_to(datetime(date.year, date.month, date.day, 23, 0, tzinfo=UTC))
        if detail:
            closed = self.sandbox.message(self.channel.id, int(post["id"]))
            t.say(f"\n--- day {day + 1}, evening: the poll has closed; the post now reads ---")
            t.say(_indent(render_message(closed)))
            self.save_files(closed or {}, f"day{day + 1}-result")

    def theme_of(self, post: dict[str, Any]) -> str:
        text = render_message(post).lower()
        for theme in THEMES:
            if theme in text or theme.replace("-", " ") in text:
                return theme
        return "balance"

    @staticmethod
    def positions(n: int) -> list[float]:
        """Buttons run from the individual side to the community side, as the packs order them."""
        return [-1.0 + 2.0 * i / (n - 1) for i in range(n)] if n > 1 else [0.0]


async def run_demo(settings: Settings, *, days: int, out: Path, seed: int, realistic: bool = False) -> int:
    conditions = Conditions.realistic(seed=seed) if realistic else None
    async with Demo(settings, days=days, out=out, seed=seed, conditions=conditions) as demo:
        await demo.run()
    return 0
