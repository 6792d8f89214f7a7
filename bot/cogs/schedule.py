"""/schedule (moderators): set up, inspect, pause, resume, skip, post now, and plan or cancel one-off debates."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import OTHER_SERVER_CHANNEL
from bot.cogs.checks import ModeratorGroup, reply_private, within_deadline
from bot.domain import permissions as perms
from bot.domain.errors import UserError
from bot.domain.schedule import (
    format_days,
    parse_days,
    parse_local_datetime,
    parse_time,
    parse_timezone,
    timezone_choices,
)
from bot.scheduler import PermanentJobError
from bot.services.debates import Blocked, get_service
from bot.services.schedule_checks import check_setup
from bot.storage.schedules import days_to_mask
from bot.ui import debates as ui

if TYPE_CHECKING:
    from bot.app import CommonGround

log = logging.getLogger(__name__)

Interaction = discord.Interaction["CommonGround"]


def when_text(at: datetime, tz: ZoneInfo) -> str:
    """``Tue 03 Mar 09:00 Europe/London (<t:…:R>)``: local time and Discord's relative stamp."""
    local = at.astimezone(tz)
    return f"{local:%a %d %b %H:%M} {tz.key} ({discord.utils.format_dt(at, 'R')})"


async def timezone_autocomplete(_interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=z, value=z) for z in timezone_choices(current)]


async def prompt_autocomplete(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None:
        return []
    query = current.casefold().strip()
    out = []
    for _pack, key, prompt in await interaction.client.packs.active_prompts(interaction.guild_id):
        if len(key) > 100:
            continue
        if query and query not in key.casefold() and query not in prompt.question.casefold():
            continue
        label = ui.cut(f"¶{prompt.paragraph} {prompt.theme}: {' '.join(prompt.question.split())}", 100)
        out.append(app_commands.Choice(name=label, value=key))
        if len(out) == 25:
            break
    return out


async def planned_autocomplete(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None:
        return []
    service = get_service(interaction.client)
    tz = await service.timezone(interaction.guild_id)
    query = current.casefold().strip()
    out = []
    for debate in await service.planned(interaction.guild_id):
        question = " ".join(debate.question.split())
        label = ui.cut(f"{debate.due_at.astimezone(tz):%a %d %b %Y %H:%M} · {question}", 100)
        if query and query not in label.casefold():
            continue
        out.append(app_commands.Choice(name=label, value=str(debate.id)))
        if len(out) == 25:
            break
    return out


class Schedule(commands.Cog):
    def __init__(self, bot: CommonGround) -> None:
        self.bot = bot
        self.service = get_service(bot)

    schedule = ModeratorGroup(name="schedule", description="Daily debate schedule (moderators).")

    @schedule.command(name="setup", description="Post a daily debate in a channel at a local time.")
    @app_commands.rename(
        ping_role="ping-role",
        poll_hours="poll-hours",
        poll_style="poll-style",
        review_channel="review-channel",
        catch_up_hours="catch-up-hours",
    )
    @app_commands.describe(
        channel="Where the debates are posted",
        time="Local time, 24-hour HH:MM (e.g. 18:30)",
        timezone="IANA timezone, e.g. Europe/London (pick from the list)",
        days="Which days: daily, weekdays, mon-fri, sat,sun … (default daily)",
        ping_role="A role to ping with each post (only that role is pinged)",
        thread="Open a discussion thread on each post (default yes)",
        pin="Pin each post (default no)",
        poll_hours="How long each poll stays open, in hours (default 24)",
        poll_style="Buttons (default) or a native Discord poll",
        review_channel="Where member suggestions are reviewed (turns /debate suggest on)",
        catch_up_hours="After downtime, post a missed debate if this many hours late at most (default 3)",
    )
    @app_commands.autocomplete(timezone=timezone_autocomplete)
    async def setup(
        self,
        interaction: Interaction,
        channel: discord.TextChannel,
        time: str,
        timezone: str,
        days: str | None = None,
        ping_role: discord.Role | None = None,
        thread: bool = True,
        pin: bool = False,
        poll_hours: app_commands.Range[int, 1, 768] = 24,
        poll_style: Literal["buttons", "native"] = "buttons",
        review_channel: discord.TextChannel | None = None,
        catch_up_hours: app_commands.Range[int, 0, 24] = 3,
    ) -> None:
        assert interaction.guild is not None
        at = parse_time(time)
        tz = parse_timezone(timezone)
        chosen = parse_days(days)
        guild = interaction.guild
        # discord.py resolves a channel id through the bot's cache, so a channel of another server the
        # bot is in arrives as a channel object: only this server's channels are accepted.
        for chosen_channel in (channel, review_channel):
            if chosen_channel is not None and chosen_channel.guild.id != guild.id:
                raise UserError(OTHER_SERVER_CHANNEL)
        check_setup(
            guild,
            channel,
            thread=thread,
            pin=pin,
            poll_style=poll_style,
            ping_role=ping_role,
            review_channel=review_channel,
        )
        _schedule, due = await within_deadline(
            interaction,
            self.service.setup(
                guild.id,
                channel_id=channel.id,
                post_time=f"{at:%H:%M}",
                timezone=tz.key,
                weekdays=days_to_mask(chosen),
                ping_role_id=ping_role.id if ping_role else None,
                thread=thread,
                pin=pin,
                poll_hours=poll_hours,
                poll_style=poll_style,
                review_channel_id=review_channel.id if review_channel else None,
                catch_up_minutes=catch_up_hours * 60,
            ),
        )
        extras = [f"poll {poll_hours} h ({poll_style})", f"missed posts caught up within {catch_up_hours} h"]
        if ping_role is not None:
            extras.append(f"pings {ping_role.mention}")
        extras.append("thread" if thread else "no thread")
        if pin:
            extras.append("pinned")
        if review_channel is not None:
            extras.append(f"suggestions reviewed in {review_channel.mention}")
        await reply_private(
            interaction,
            f"Debates in {channel.mention} at {at:%H:%M} {tz.key}, {format_days(chosen)}; {', '.join(extras)}.\n"
            f"Next post: {when_text(due, tz)}.",
        )

    @schedule.command(name="status", description="The schedule, the next and last post, and any problem.")
    async def status(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        schedule, due, last = await self.service.status(interaction.guild_id)
        if schedule is None:
            raise UserError("There is no schedule here yet: start with `/schedule setup`.")
        tz = ZoneInfo(schedule.timezone)
        lines = [
            f"**Channel:** <#{schedule.channel_id}> at {schedule.post_time} {tz.key}, {format_days(schedule.days)}",
        ]
        if schedule.blocked_reason:
            lines.append(f"**Blocked:** {schedule.blocked_reason}. Fix it, then run `/schedule resume`.")
        elif schedule.paused:
            lines.append("**Paused:** `/schedule resume` starts it again.")
        elif due is not None:
            lines.append(f"**Next post:** {when_text(due, tz)}")
        else:
            lines.append("**Next post:** not armed yet (it will be on the next reconnect, or run `/schedule resume`).")
        if last is not None and last.posted_at is not None and last.message_id is not None:
            link = ui.message_link(last.guild_id, last.channel_id, last.message_id)
            lines.append(f"**Last post:** {when_text(last.posted_at, tz)} · [open]({link})")
            if last.error:
                lines.append(f"**Last post's problems:** {last.error}.")
        else:
            lines.append("**Last post:** none yet")
        channel = interaction.guild.get_channel(schedule.channel_id) if interaction.guild else None
        if isinstance(channel, discord.TextChannel):
            actions = ui.post_actions(thread=schedule.thread, pin=schedule.pin, style=schedule.poll_style)
            lacking = ui.missing_in(channel, actions)
            if lacking:
                lines.append(f"**Permissions:** in {channel.mention} I'm missing {ui.explain_missing(lacking)}.")
        if schedule.last_skip_note:
            lines.append(f"**Skipped:** {schedule.last_skip_note}")
        for job, error in await self.service.parked_jobs(interaction.guild_id):
            lines.append(ui.parked_job_text(job.kind, job.attempts, error))
        planned = await self.service.planned(interaction.guild_id)
        for debate in planned[:5]:
            question = ui.cut(" ".join(debate.question.split()), 80)
            lines.append(f"**Planned:** {when_text(debate.due_at, tz)} · {question}")
        if len(planned) > 5:
            lines.append(f"…and {len(planned) - 5} more planned (`/schedule cancel` lists them all).")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @schedule.command(name="pause", description="Stop posting until /schedule resume.")
    async def pause(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        await within_deadline(interaction, self.service.pause(interaction.guild_id))
        await reply_private(interaction, "Paused: no debate is posted until `/schedule resume`.")

    @schedule.command(name="resume", description="Start posting again (also clears a blocked schedule).")
    async def resume(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        due = await within_deadline(interaction, self.service.resume(interaction.guild_id))
        tz = await self.service.timezone(interaction.guild_id)
        await reply_private(interaction, f"Resumed. Next post: {when_text(due, tz)}.")

    @schedule.command(name="skip", description="Skip the next scheduled debate.")
    async def skip(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        skipped, due = await within_deadline(interaction, self.service.skip(interaction.guild_id))
        tz = await self.service.timezone(interaction.guild_id)
        await reply_private(interaction, f"The debate of {skipped} is skipped. Next post: {when_text(due, tz)}.")

    @schedule.command(name="post-now", description="Post a debate now (the next in rotation, or one you pick).")
    @app_commands.describe(prompt="A prompt from the active packs (default: the next in rotation)")
    @app_commands.autocomplete(prompt=prompt_autocomplete)
    async def post_now(self, interaction: Interaction, prompt: str | None = None) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            debate = await self.service.post_now(interaction.guild_id, prompt)
        except (Blocked, PermanentJobError) as exc:
            raise UserError(f"I couldn't post: {exc}. Fix it, then run `/schedule resume`.") from exc
        except discord.HTTPException as exc:
            log.warning("post-now failed in guild %s: %s", interaction.guild_id, exc.status)
            raise UserError("Discord didn't take the post just now; please try again in a minute.") from exc
        assert debate.message_id is not None
        link = ui.message_link(debate.guild_id, debate.channel_id, debate.message_id)
        await interaction.followup.send(f"Posted: {link}", ephemeral=True)

    @schedule.command(name="plan", description="Plan a one-off debate at a local date and time.")
    @app_commands.describe(
        prompt="A prompt from the active packs",
        when="Local date and time: 2026-12-01 18:30, tomorrow 18:30, or 18:30",
        event="Also create a Discord scheduled event for it",
    )
    @app_commands.autocomplete(prompt=prompt_autocomplete)
    async def plan(self, interaction: Interaction, prompt: str, when: str, event: bool = False) -> None:
        assert interaction.guild is not None
        guild = interaction.guild
        schedule, _, _ = await self.service.status(guild.id)
        if schedule is None:
            raise UserError("Set up the schedule first (`/schedule setup`): a planned debate uses its channel.")
        tz = ZoneInfo(schedule.timezone)
        due = parse_local_datetime(when, tz, self.service.clock.now())
        channel = guild.get_channel(schedule.channel_id)
        if event:
            # R1: Create Events (1 << 44) since 2026-02-23, checked on the server (external events).
            lacking = perms.missing(guild.me.guild_permissions.value, ["event"])
            if lacking:
                raise UserError(
                    f"I'm missing {ui.explain_missing(lacking)} in this server, so I can't create the event. "
                    "Grant it to my role, or plan without `event`."
                )
        await interaction.response.defer(ephemeral=True, thinking=True)
        debate = await self.service.plan(guild.id, prompt_key=prompt, when=due)
        text = f"Planned for {when_text(due, tz)} in <#{schedule.channel_id}>."
        if event:
            try:
                created = await guild.create_scheduled_event(
                    name=ui.cut(f"Debate: {' '.join(debate.question.split())}", 100),
                    start_time=due,
                    end_time=due + timedelta(hours=schedule.poll_hours),
                    entity_type=discord.EntityType.external,
                    privacy_level=discord.PrivacyLevel.guild_only,
                    location=ui.cut(f"#{channel.name}" if channel else f"<#{schedule.channel_id}>", 100),
                    description=ui.cut(f"{debate.excerpt}\n\n{debate.question}", 1000),
                )
            except discord.HTTPException as exc:
                log.warning("event not created in guild %s: %s", guild.id, exc.status)
                text += (
                    " The Discord event couldn't be created (check my Create Events permission); the debate is planned."
                )
            else:
                await self.service.set_event(debate.id, created.id)
                text += " A Discord event was created too."
        await interaction.followup.send(text, ephemeral=True)

    @schedule.command(name="cancel", description="Cancel a planned one-off debate before it is posted.")
    @app_commands.describe(planned="A planned debate (listed as you type)")
    @app_commands.autocomplete(planned=planned_autocomplete)
    async def cancel(self, interaction: Interaction, planned: str) -> None:
        assert interaction.guild is not None
        guild = interaction.guild
        if not planned.strip().isdigit():
            raise UserError("Pick a planned debate from the list that appears as you type.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        debate = await self.service.cancel_plan(guild.id, int(planned))
        tz = await self.service.timezone(guild.id)
        text = f"Cancelled the debate planned for {when_text(debate.due_at, tz)}; nothing will be posted."
        if debate.event_id is not None:
            try:
                event = await guild.fetch_scheduled_event(debate.event_id)
                await event.delete()
            except discord.NotFound:
                pass  # somebody deleted the event already
            except discord.HTTPException as exc:
                log.warning("event %s not deleted in guild %s: %s", debate.event_id, guild.id, exc.status)
                text += " I couldn't delete its Discord event (check my Create Events permission); delete it by hand."
            else:
                text += " Its Discord event is deleted too."
        await interaction.followup.send(text, ephemeral=True)


async def setup(bot: CommonGround) -> None:
    await bot.add_cog(Schedule(bot))
