"""Daily debates: choosing the prompt, the durable post (outbox + nonce), planned and manual debates.

The scheduled post of a server is one job, ``post:<guild_id>`` (kind ``debate-post``), due at the
schedule's next slot. Its handler:

1. does nothing if the schedule is gone, paused or blocked (the job is simply done);
2. applies the catch-up rule: a slot missed while the bot was down is posted if at most
   ``catch_up_minutes`` late, otherwise skipped with a note `/schedule status` shows;
3. in ONE transaction inserts the debate row (the unique (guild, kind, slot_date) key makes a second
   post for that local day impossible; a retry finds the pending row and reuses its nonce) and its poll;
4. records that the send begins (committed first), then sends the message with that nonce. Discord's
   ``enforce_nonce`` returns the first message instead of a second one only for a few minutes, so a
   retry (a restart, a backed-off job) first looks for the earlier post in the channel's recent history
   (the bot's own message carrying this poll) and adopts it; then attaches the message to the poll,
   opens the thread, pins;
5. marks the debate posted and arms the next slot, in one transaction.

403 (missing permission) and 404 (channel deleted) block the schedule with a reason that names the
permission and the channel, and end the job without a retry loop (PermanentJobError). Anything else
raises, so the scheduler retries with backoff; the stored nonce makes the retry safe.

The packs a debate draws from are in :mod:`bot.services.packs` (the :class:`Catalog` built here is
shared with the bot's ``PackService``), members' suggestions in :mod:`bot.services.suggestions`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import discord

from bot import reconcile as reconcile_order
from bot.domain import permissions as perms
from bot.domain import rotation
from bot.domain.errors import NotFound, UserError
from bot.domain.essay import Essay, load_essay
from bot.domain.packs import Pack, Prompt, load_builtin_pack
from bot.domain.schedule import catch_up_decision, next_slot, slot_for_date
from bot.domain.shards import ShardScope
from bot.scheduler import GuildUnavailable, PermanentJobError
from bot.services.packs import Catalog
from bot.storage import debates as debate_store
from bot.storage import guilds as guild_store
from bot.storage import jobs as job_store
from bot.storage import packs as pack_store
from bot.storage import reconcile as reconcile_store
from bot.storage import schedules as schedule_store
from bot.storage.debates import Debate
from bot.storage.jobs import Job
from bot.storage.schedules import POST_KIND, Schedule, post_key
from bot.ui import debates as ui
from bot.ui import polls as poll_ui

if TYPE_CHECKING:
    from bot.app import CommonGround
    from bot.services.polls import PollService
    from bot.storage.database import AsyncConnection

log = logging.getLogger(__name__)

PLAN_KIND = "debate-plan"
THREAD_ARCHIVE_MINUTES = 1440
THREAD_ALREADY_CREATED = 160004  # Discord: "A thread has already been created for this message"
MAX_PINS_REACHED = 30003  # Discord: "Maximum number of pins reached for the channel (250)"
# How many recent messages a retried send reads to find its earlier post (one history request).
EARLIER_POST_SCAN = 100


def plan_key(debate_id: int) -> str:
    return f"plan:{debate_id}"


def new_nonce() -> str:
    """A message nonce (Discord allows 25 characters); stored before the first send attempt."""
    return secrets.token_hex(12)


class Blocked(Exception):
    """Discord refused the post for a reason a retry cannot fix; ``reason`` is shown in /schedule status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PostOptions:
    channel_id: int
    ping_role_id: int | None = None
    thread: bool = True
    pin: bool = False
    poll_hours: int = 24
    poll_style: str = "buttons"

    @classmethod
    def of(cls, schedule: Schedule | None, channel_id: int) -> PostOptions:
        if schedule is None:
            return cls(channel_id)
        return cls(
            channel_id,
            schedule.ping_role_id,
            schedule.thread,
            schedule.pin,
            schedule.poll_hours,
            schedule.poll_style,
        )


@dataclass(frozen=True)
class Delivered:
    message_id: int
    thread_id: int | None = None
    notes: tuple[str, ...] = ()  # what went wrong around the post (no pin, no thread), for /schedule status


Deliver = Callable[[Debate, Prompt | None, PostOptions, int | None], Awaitable[Delivered]]


# -- the service ----------------------------------------------------------------------------------------


class DebateService:
    def __init__(
        self,
        db,
        clock,
        scheduler,
        *,
        polls: PollService | None = None,
        deliver: Deliver | None = None,
        essay: Essay | None = None,
        builtin: Pack | None = None,
        bot: CommonGround | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.scheduler = scheduler
        self.bot = bot
        self._polls = polls
        self.essay = essay or load_essay()
        self.catalog = Catalog(self.essay, builtin or load_builtin_pack(self.essay))
        self.deliver: Deliver = deliver or self._deliver_discord
        self.posts = 0  # delivered posts, for tests and benchmarks
        self.wired = False  # job handlers and the reconcile listener registered (get_service)
        self._send_locks: dict[int, asyncio.Lock] = {}
        # Debates whose send start was committed with their creation, and no send has begun since: their
        # first send needs no look for an earlier post (there cannot be one). In memory: after a restart
        # every started send is looked for again, as it must be.
        self._unsent: set[int] = set()

    @property
    def polls(self) -> PollService | None:
        return self._polls

    def register(self) -> None:
        self.scheduler.register(POST_KIND, self.handle_post)
        self.scheduler.register(PLAN_KIND, self.handle_plan)

    # -- arming ------------------------------------------------------------------------------------

    def next_slot_for(self, schedule: Schedule, after: datetime):
        return next_slot(after, schedule.at, ZoneInfo(schedule.timezone), schedule.days)

    async def arm(self, conn: AsyncConnection, schedule: Schedule, *, after: datetime | None = None) -> datetime:
        """(Re)arm the server's post job at its next slot after ``after`` (default now), in ``conn``."""
        slot = self.next_slot_for(schedule, after or self.clock.now())
        await self.scheduler.schedule(
            POST_KIND,
            post_key(schedule.guild_id),
            slot.due_utc,
            {"slot_date": slot.local_date.isoformat()},
            guild_id=schedule.guild_id,
            conn=conn,
        )
        return slot.due_utc

    async def reconcile_step(self, guild_id: int | None) -> None:
        """Reconciliation step: post jobs of active schedules, and the jobs of pending planned debates."""
        scope = self._scope(guild_id)
        await self.reconcile(guild_id, scope=scope)
        async with self.db.read() as conn:
            planned = await reconcile_store.planned_without_job(conn, guild_id, scope=scope)
        for debate_id, gid, due_at in planned:
            await self.scheduler.schedule(
                PLAN_KIND, plan_key(debate_id), due_at, {"debate_id": debate_id}, guild_id=gid
            )
        if planned:
            log.info("reconcile: re-armed %d planned debates", len(planned))
        await self.resume_interrupted(guild_id, scope=scope)

    def _scope(self, guild_id: int | None) -> ShardScope | None:
        """A full run covers this process's shards only; a one-server run names its server."""
        return getattr(self.bot, "scope", None) if guild_id is None else None

    async def reconcile(self, guild_id: int | None = None, *, scope: ShardScope | None = None) -> int:
        """Arm every active schedule (of one server, or all of ``scope``'s servers) whose post job is
        missing; idempotent, bulk. Returns how many."""
        now = self.clock.now()
        async with self.db.read() as conn:
            missing = await schedule_store.active_without_job(conn, guild_id, scope=scope)
        if not missing:
            return 0
        # Slots depend only on (time, zone, days): servers sharing them share one computation.
        slots: dict[tuple[str, str, int], tuple[datetime, str]] = {}
        armed = []
        for s in missing:
            key = (s.post_time, s.timezone, s.weekdays)
            found = slots.get(key)
            if found is None:
                hour, minute = s.post_time.split(":")
                slot = next_slot(
                    now, time(int(hour), int(minute)), ZoneInfo(s.timezone), schedule_store.mask_to_days(s.weekdays)
                )
                found = slots[key] = (slot.due_utc, slot.local_date.isoformat())
            armed.append((s.guild_id, found[0], found[1]))
        async with self.db.write() as conn:
            count = await schedule_store.insert_post_jobs(conn, armed, now=now)
        self.scheduler.poke()
        log.info("reconcile: armed %d schedules", len(armed))
        return count

    # -- choosing and preparing ---------------------------------------------------------------------

    async def _choose(self, conn: AsyncConnection, guild_id: int, prompt_key: str | None) -> tuple[str, Prompt]:
        active = await self.catalog.active(conn, guild_id)
        state = await debate_store.rotation(conn, guild_id)
        if prompt_key is not None:
            # A moderator's explicit choice is honoured even for a skipped or sensitive prompt.
            prompt = active.get(prompt_key)
            if prompt is None:
                raise NotFound("That prompt isn't in this server's active packs: pick one from the list.")
            await debate_store.save_rotation(conn, guild_id, rotation.record_use(state, prompt_key))
            return prompt_key, prompt
        if not active:
            raise UserError("Every prompt pack is disabled here: enable one with `/pack enable`.")
        eligible = await self._eligible(conn, guild_id, active)
        if not eligible:
            raise UserError(
                "Every prompt of the active packs is skipped here or marked sensitive: restore one with "
                "`/pack unskip-prompt`, or include sensitive prompts with `/pack sensitive-prompts`."
            )
        pick = rotation.pick_next(guild_id, state, eligible.keys())
        await debate_store.save_rotation(conn, guild_id, pick.state)
        return pick.key, active[pick.key]

    async def _eligible(self, conn: AsyncConnection, guild_id: int, active: dict[str, Prompt]) -> dict[str, Prompt]:
        """The active prompts the rotation may pick: not skipped, and not sensitive unless opted in."""
        skipped = await pack_store.skipped_prompts(conn, guild_id)
        settings = await guild_store.get(conn, guild_id)
        sensitive_ok = bool(settings and settings.sensitive_prompts)
        return {k: p for k, p in active.items() if k not in skipped and (sensitive_ok or not p.sensitive)}

    async def _new_debate(
        self,
        conn: AsyncConnection,
        *,
        guild_id: int,
        kind: str,
        slot_date: str | None,
        due_at: datetime,
        channel_id: int,
        prompt_key: str | None = None,
    ) -> tuple[Debate, Prompt, bool]:
        now = self.clock.now()
        await guild_store.ensure(conn, guild_id, now=now)
        if slot_date is not None:
            existing = await debate_store.get_slot(conn, guild_id, slot_date)
            if existing is not None:
                prompt = await self.catalog.for_debate(conn, existing)
                return existing, prompt, False  # type: ignore[return-value]
        key, prompt = await self._choose(conn, guild_id, prompt_key)
        # A new dilemma each time the prompt comes round again in this server.
        used = await debate_store.dilemmas_used(conn, guild_id, key)
        prompt = prompt.using(rotation.pick_dilemma(guild_id, key, [d.id for d in prompt.dilemmas], used))
        debate, created = await debate_store.insert(
            conn,
            guild_id=guild_id,
            kind=kind,
            slot_date=slot_date,
            due_at=due_at,
            prompt_key=key,
            dilemma_id=prompt.dilemma.id,
            paragraph=prompt.paragraph,
            excerpt=prompt.excerpt,
            question=prompt.question,
            theme=prompt.theme,
            channel_id=channel_id,
            nonce=new_nonce(),
            now=now,
        )
        return debate, prompt, created

    async def _ensure_poll(
        self, conn: AsyncConnection, debate: Debate, prompt: Prompt | None, options: PostOptions
    ) -> int | None:
        polls = self.polls
        if polls is None or prompt is None:
            return None
        poll_id = await debate_store.poll_id_for(conn, debate.id)
        if poll_id is None:
            poll_id = await polls.create(
                conn,
                guild_id=debate.guild_id,
                channel_id=debate.channel_id,
                dilemma=prompt.dilemma,
                closes_at=self.clock.now() + timedelta(hours=options.poll_hours),
                style=options.poll_style,
                debate_id=debate.id,
                theme=prompt.theme,
                prompt_key=debate.prompt_key,
                vary_order=True,
            )
        return poll_id

    # -- the scheduled post --------------------------------------------------------------------------

    async def handle_post(self, job: Job) -> None:
        guild_id = job.guild_id
        assert guild_id is not None
        slot_date = str(job.payload["slot_date"])
        async with self.db.read() as conn:
            schedule = await schedule_store.get(conn, guild_id)
            settings = await guild_store.get(conn, guild_id)
            existing = await debate_store.get_slot(conn, guild_id, slot_date)
        if schedule is None or not schedule.active or (settings is not None and settings.removed_at is not None):
            return
        tz = ZoneInfo(schedule.timezone)
        slot = slot_for_date(date.fromisoformat(slot_date), schedule.at, tz)
        now = self.clock.now()
        if existing is not None and existing.status != "pending":
            # Posted (or settled) already: this run only has to arm the next slot.
            async with self.db.write() as conn:
                await self.arm(conn, schedule, after=max(now, slot.due_utc))
                await self.scheduler.settle(conn, job)
            return
        window = timedelta(minutes=schedule.catch_up_minutes)
        if catch_up_decision(slot, now, window) == "skip":
            late = await self._adopt_late(existing, PostOptions.of(schedule, schedule.channel_id))
            if existing is not None and late is not None:
                async with self.db.write() as conn:
                    await self._record(conn, existing, late)
                    await self.arm(conn, schedule, after=now)
                    await self.scheduler.settle(conn, job)
                return
            local = slot.due_utc.astimezone(tz)
            note = (
                f"The debate of {local:%a %d %b %Y} ({local:%H:%M} {tz.key}) was skipped: the bot was offline "
                f"until {discord.utils.format_dt(now, 'f')}, past the {_window(window)} catch-up window."
            )
            async with self.db.write() as conn:
                await schedule_store.note_skip(conn, guild_id, note, now=now)
                if existing is not None:
                    await debate_store.mark_status(conn, existing.id, "skipped", error="missed the catch-up window")
                await self.arm(conn, schedule, after=now)
                await self.scheduler.settle(conn, job)
            log.info("guild %s: slot %s skipped (late by %s)", guild_id, slot_date, now - slot.due_utc)
            return
        options = PostOptions.of(schedule, schedule.channel_id)
        async with self.db.write() as conn:
            debate, prompt, created = await self._new_debate(
                conn,
                guild_id=guild_id,
                kind="scheduled",
                slot_date=slot_date,
                due_at=slot.due_utc,
                channel_id=schedule.channel_id,
            )
            poll_id = await self._ensure_poll(conn, debate, prompt, options)
            if created:
                # The send follows at once: its start is committed with the row (one transaction, not two),
                # still before the request leaves, so a crash from here on makes the next run look first.
                await debate_store.mark_send_started(conn, debate.id, at=now)
                self._unsent.add(debate.id)
        delivered = await self._deliver_or_block(debate, prompt, options, poll_id)
        async with self.db.write() as conn:
            if delivered is not None:
                await self._record(conn, debate, delivered)
            await self.arm(conn, schedule, after=max(self.clock.now(), slot.due_utc))
            await self.scheduler.settle(conn, job)  # this job's end, in the same transaction

    async def _record(self, conn: AsyncConnection, debate: Debate, delivered: Delivered) -> None:
        now = self.clock.now()
        note = "; ".join(delivered.notes) or None
        await debate_store.mark_posted(conn, debate.id, message_id=delivered.message_id, at=now, note=note)
        await debate_store.set_extras(conn, debate.id, thread_id=delivered.thread_id)
        await schedule_store.mark_posted(conn, debate.guild_id, at=now)
        self.posts += 1

    async def _deliver_or_block(
        self, debate: Debate, prompt: Prompt | None, options: PostOptions, poll_id: int | None
    ) -> Delivered | None:
        """Deliver once: None if another run (a job and ``/schedule post-now``) posted it meanwhile.

        The start of the first send is committed before it leaves, so a later attempt knows the post
        may already exist (``debate.send_started_at``) and looks for it before sending again."""
        lock = self._send_locks.setdefault(debate.id, asyncio.Lock())
        try:
            async with lock:
                async with self.db.read() as conn:
                    current = await debate_store.get(conn, debate.id)
                first = debate.id in self._unsent
                self._unsent.discard(debate.id)  # from here on a send may have begun: a retry looks first
                if current is not None:
                    if current.status == "posted":
                        return None
                    debate = current
                if debate.send_started_at is None:
                    async with self.db.write() as conn:
                        await debate_store.mark_send_started(conn, debate.id, at=self.clock.now())
                elif first:
                    debate = replace(debate, send_started_at=None)  # started with its creation: nothing sent yet
                return await self._deliver_blocking(debate, prompt, options, poll_id)
        finally:
            if not lock.locked() and self._send_locks.get(debate.id) is lock:
                del self._send_locks[debate.id]

    async def _deliver_blocking(
        self, debate: Debate, prompt: Prompt | None, options: PostOptions, poll_id: int | None
    ) -> Delivered:
        try:
            return await self.deliver(debate, prompt, options, poll_id)
        except Blocked as exc:
            if self.bot is not None and not self.bot.guild_available(debate.guild_id):
                # A 403/404 during an outage says nothing about permissions (G4): retry, block nothing.
                raise GuildUnavailable(f"guild {debate.guild_id} unavailable: {exc.reason}") from exc
            now = self.clock.now()
            async with self.db.write() as conn:
                await schedule_store.block(conn, debate.guild_id, exc.reason, now=now)
                await debate_store.mark_status(conn, debate.id, "failed", error=exc.reason)
            log.warning("guild %s: schedule blocked: %s", debate.guild_id, exc.reason)
            raise PermanentJobError(exc.reason) from exc

    # -- planned and manual debates ------------------------------------------------------------------

    async def _one_off(
        self, conn: AsyncConnection, guild_id: int, *, kind: str, due_at: datetime, prompt_key: str | None, why: str
    ) -> tuple[Schedule, Debate]:
        """A planned or manual debate row in the schedule's channel (there must be a schedule: ``why``)."""
        schedule = await schedule_store.get(conn, guild_id)
        if schedule is None:
            raise UserError(f"Set up the schedule first (`/schedule setup`): {why}.")
        debate, _prompt, _ = await self._new_debate(
            conn,
            guild_id=guild_id,
            kind=kind,
            slot_date=None,
            due_at=due_at,
            channel_id=schedule.channel_id,
            prompt_key=prompt_key,
        )
        return schedule, debate

    async def plan(self, guild_id: int, *, prompt_key: str, when: datetime) -> Debate:
        """A one-off debate at ``when`` in the schedule's channel; armed as job ``plan:<debate id>``."""
        async with self.db.write() as conn:
            _schedule, debate = await self._one_off(
                conn,
                guild_id,
                kind="planned",
                due_at=when,
                prompt_key=prompt_key,
                why="a planned debate uses its channel",
            )
            await self.scheduler.schedule(
                PLAN_KIND, plan_key(debate.id), when, {"debate_id": debate.id}, guild_id=guild_id, conn=conn
            )
        return debate

    async def timezone(self, guild_id: int) -> ZoneInfo:
        """The server's schedule timezone (UTC when it has no schedule), for showing its times."""
        async with self.db.read() as conn:
            schedule = await schedule_store.get(conn, guild_id)
        return ZoneInfo(schedule.timezone) if schedule else ZoneInfo("UTC")

    async def planned(self, guild_id: int) -> list[Debate]:
        """The server's planned debates not posted yet, soonest first."""
        async with self.db.read() as conn:
            return await debate_store.pending_planned(conn, guild_id)

    async def cancel_plan(self, guild_id: int, debate_id: int) -> Debate:
        """Cancel a planned debate of this server before it is posted (``/schedule cancel``): the debate
        is kept as skipped, its job removed, in one transaction. Returns it (with its Discord event id)."""
        if not 0 < debate_id < 2**63:  # typed by hand: any digits; a database id is a signed 64-bit integer
            debate_id = 0
        async with self.db.write() as conn:
            debate = await debate_store.get(conn, debate_id) if debate_id else None
            if debate is None or not await debate_store.cancel_planned(
                conn, guild_id, debate_id, note="cancelled by a moderator"
            ):
                raise NotFound(
                    "That isn't a planned debate waiting here: pick one from the list as you type "
                    "(`/schedule status` shows them)."
                )
            await job_store.cancel(conn, plan_key(debate_id))
        return debate

    async def set_event(self, debate_id: int, event_id: int) -> None:
        async with self.db.write() as conn:
            await debate_store.set_extras(conn, debate_id, event_id=event_id)

    async def handle_plan(self, job: Job) -> None:
        debate_id = int(job.payload["debate_id"])
        async with self.db.read() as conn:
            debate = await debate_store.get(conn, debate_id)
            schedule = await schedule_store.get(conn, debate.guild_id) if debate else None
        if debate is None or debate.status != "pending":
            return
        now = self.clock.now()
        window = timedelta(minutes=schedule.catch_up_minutes if schedule else 180)
        options = PostOptions.of(schedule, debate.channel_id)
        if now - debate.due_at > window:
            late = await self._adopt_late(debate, options)
            async with self.db.write() as conn:
                if late is not None:
                    await self._record(conn, debate, late)
                else:
                    await debate_store.mark_status(conn, debate.id, "skipped", error="missed the catch-up window")
            return
        await self._post_existing(debate, options)

    async def _adopt_late(self, debate: Debate | None, options: PostOptions) -> Delivered | None:
        """Past the catch-up window nothing is sent any more; but a send that began may have reached
        Discord, and that live post is adopted (its buttons work, its thread is named) rather than left
        behind a debate marked skipped."""
        if debate is None or debate.send_started_at is None or self.deliver != self._deliver_discord:
            return None
        async with self.db.read() as conn:
            prompt = await self.catalog.find(conn, debate.guild_id, debate.prompt_key)
            poll_id = await debate_store.poll_id_for(conn, debate.id)
        try:
            return await self._deliver_discord(debate, prompt, options, poll_id, adopt_only=True)
        except (Blocked, discord.HTTPException) as exc:
            log.warning("guild %s: debate %s's earlier post not adopted (%s)", debate.guild_id, debate.id, exc)
            return None

    async def _post_existing(self, debate: Debate, options: PostOptions) -> None:
        async with self.db.write() as conn:
            prompt = await self.catalog.for_debate(conn, debate)
            if prompt is None:
                await debate_store.mark_status(conn, debate.id, "failed", error="its prompt pack was removed")
                raise PermanentJobError(f"debate {debate.id}: prompt {debate.prompt_key} is gone")
            poll_id = await self._ensure_poll(conn, debate, prompt, options)
        delivered = await self._deliver_or_block(debate, prompt, options, poll_id)
        if delivered is not None:
            async with self.db.write() as conn:
                await self._record(conn, debate, delivered)

    async def resume_interrupted(self, guild_id: int | None = None, *, scope: ShardScope | None = None) -> int:
        """Arm, due now, every ``/schedule post-now`` whose send began but was never recorded (the bot
        died or Discord failed mid-send): its job finds the post if Discord has it, or sends it. Scheduled
        and planned debates keep their own job until they are recorded. Returns how many."""
        async with self.db.read() as conn:
            stuck = await debate_store.interrupted(conn, kind="manual", guild_id=guild_id, scope=scope)
        now = self.clock.now()
        for debate in stuck:
            await self.scheduler.schedule(
                PLAN_KIND, plan_key(debate.id), now, {"debate_id": debate.id}, guild_id=debate.guild_id
            )
        if stuck:
            log.info("resuming %d interrupted post-now sends", len(stuck))
        return len(stuck)

    async def post_now(self, guild_id: int, prompt_key: str | None = None) -> Debate:
        """Post a debate now (``/schedule post-now``); Blocked/PermanentJobError say why it could not.

        An earlier post-now of this server whose send began but was never recorded is finished first
        instead (found on Discord and adopted, or sent): a moderator's retry never makes a second post."""
        async with self.db.read() as conn:
            stuck = await debate_store.interrupted(conn, kind="manual", guild_id=guild_id)
            schedule = await schedule_store.get(conn, guild_id)
        if stuck and schedule is not None:
            debate = stuck[0]
        else:
            now = self.clock.now()
            async with self.db.write() as conn:
                schedule, debate = await self._one_off(
                    conn,
                    guild_id,
                    kind="manual",
                    due_at=now,
                    prompt_key=prompt_key,
                    why="the post goes to its channel",
                )
        await self._post_existing(debate, PostOptions.of(schedule, debate.channel_id))
        async with self.db.read() as conn:
            found = await debate_store.get(conn, debate.id)
        assert found is not None
        return found

    # -- moderator actions ------------------------------------------------------------------------------

    async def setup(self, guild_id: int, **values: Any) -> tuple[Schedule, datetime]:
        """Save the schedule and arm its next slot in one transaction; returns it and the next post time."""
        now = self.clock.now()
        async with self.db.write() as conn:
            await guild_store.ensure(conn, guild_id, now=now)
            schedule = await schedule_store.upsert(conn, guild_id, now=now, **values)
            due = await self.arm(conn, schedule, after=now)
        return schedule, due

    async def status(self, guild_id: int) -> tuple[Schedule | None, datetime | None, Debate | None]:
        """The schedule, when its next post is due (None if none is armed) and the last posted debate."""
        async with self.db.read() as conn:
            schedule = await schedule_store.get(conn, guild_id)
            job = await job_store.get(conn, post_key(guild_id))
            last = await debate_store.latest_posted(conn, guild_id)
        armed = job is not None and job.attempts < job_store.PARK_AFTER  # a parked job posts nothing
        return schedule, (job.due_at if armed else None), last

    async def parked_jobs(self, guild_id: int) -> list[tuple[Job, str]]:
        """The server's jobs that stopped retrying, with their last error (for /schedule status)."""
        async with self.db.read() as conn:
            return await job_store.parked(conn, guild_id)

    async def _require(self, conn: AsyncConnection, guild_id: int) -> Schedule:
        schedule = await schedule_store.get(conn, guild_id)
        if schedule is None:
            raise NotFound("There is no schedule here yet: start with `/schedule setup`.")
        return schedule

    async def pause(self, guild_id: int) -> None:
        async with self.db.write() as conn:
            await self._require(conn, guild_id)
            await schedule_store.set_paused(conn, guild_id, True, now=self.clock.now())
            await job_store.cancel(conn, post_key(guild_id))

    async def resume(self, guild_id: int) -> datetime:
        """Un-pause, clear a blocked reason, and arm the next slot from now."""
        now = self.clock.now()
        async with self.db.write() as conn:
            await self._require(conn, guild_id)
            await schedule_store.resume(conn, guild_id, now=now)
            schedule = await self._require(conn, guild_id)
            return await self.arm(conn, schedule, after=now)

    async def skip(self, guild_id: int) -> tuple[str, datetime]:
        """Skip the next slot; returns the skipped local date and the slot after it."""
        now = self.clock.now()
        async with self.db.write() as conn:
            schedule = await self._require(conn, guild_id)
            if not schedule.active:
                raise UserError("The schedule is paused or blocked: there is no next post to skip.")
            job = await job_store.get(conn, post_key(guild_id))
            if job is not None:
                skipped_date, skipped_due = str(job.payload.get("slot_date")), job.due_at
            else:
                slot = self.next_slot_for(schedule, now)
                skipped_date, skipped_due = slot.local_date.isoformat(), slot.due_utc
            due = await self.arm(conn, schedule, after=max(skipped_due, now))
            await schedule_store.note_skip(
                conn, guild_id, f"The debate of {skipped_date} was skipped by a moderator.", now=now
            )
        return skipped_date, due

    # -- delivery through discord.py ------------------------------------------------------------------

    async def _channel(self, debate: Debate) -> discord.TextChannel:
        bot = self.bot
        assert bot is not None, "a DebateService without a bot needs a deliver function"
        await bot.wait_until_ready()
        channel = bot.get_channel(debate.channel_id)
        if channel is None:
            try:
                channel = await bot.fetch_channel(debate.channel_id)
            except discord.NotFound as exc:
                raise Blocked(f"the channel <#{debate.channel_id}> no longer exists (deleted?)") from exc
            except discord.Forbidden as exc:
                raise Blocked(f"missing View Channel in <#{debate.channel_id}>") from exc
        if not isinstance(channel, discord.TextChannel):
            raise Blocked(f"<#{debate.channel_id}> is not a text channel")
        return channel

    async def _deliver_discord(
        self,
        debate: Debate,
        prompt: Prompt | None,
        options: PostOptions,
        poll_id: int | None,
        *,
        adopt_only: bool = False,
    ) -> Delivered | None:
        """Post the debate (or adopt its earlier post on a retry). ``adopt_only``: never send; None when
        Discord has no earlier post."""
        channel = await self._channel(debate)
        # What the post itself needs (the poll style decides Send Polls); the thread, the pin and the chart
        # are extras: the debate goes out without them and /schedule status says what was missing.
        required = ui.post_actions(thread=False, pin=False, style=options.poll_style, chart=False)
        lacking = ui.missing_in(channel, required)
        if lacking:
            # Known from the gateway's cache: no request that is sure to fail.
            raise Blocked(f"missing {ui.join_names(perms.names(lacking))} in #{channel.name}")
        message = None
        if debate.send_started_at is not None:
            # A retry: the earlier send may have reached Discord, and past its nonce window (minutes)
            # sending again would make a second post. Look for it first.
            message = await self._earlier_post(channel, debate, prompt, poll_id)
        if message is None:
            if adopt_only:
                return None
            message = await self._send(channel, debate, prompt, options, poll_id, required)
        if poll_id is not None and self.polls is not None:
            await self.polls.attach_message(poll_id, message.id)
        notes: list[str] = []
        thread_id = None
        if options.thread:
            lacking = ui.missing_in(channel, ["thread"])
            try:
                thread = await message.create_thread(
                    name=ui.thread_name(debate), auto_archive_duration=THREAD_ARCHIVE_MINUTES
                )
                thread_id = thread.id
            except discord.HTTPException as exc:
                if exc.code == THREAD_ALREADY_CREATED:
                    # An earlier attempt of this post made it before dying; a thread started from a message
                    # has the message's id, so we know it without another request.
                    thread_id = message.id
                elif exc.status >= 500:
                    # Discord failed, not a refusal (a bad minute, an outage beginning): the job is retried,
                    # finds this post (send_started_at is set) and opens the thread then.
                    raise
                else:
                    # A permission lost since setup: the debate stands without its thread, not worth a repost.
                    log.warning("guild %s: no thread for debate %s (%s)", debate.guild_id, debate.id, exc.status)
                    what = ui.join_names(perms.names(lacking)) if lacking else f"Discord error {exc.code}"
                    notes.append(f"no thread: missing {what} in #{channel.name}" if lacking else f"no thread: {what}")
        if options.pin and not message.pinned:
            note = await self._pin(channel, message, debate)
            if note:
                notes.append(note)
        return Delivered(message.id, thread_id, tuple(notes))

    async def _earlier_post(
        self, channel: discord.TextChannel, debate: Debate, prompt: Prompt | None, poll_id: int | None
    ) -> discord.Message | None:
        """The bot's own post of this debate among the channel's recent messages, if Discord has it."""
        assert self.bot is not None and self.bot.user is not None
        me = self.bot.user.id
        passage = None if poll_id is not None else ui.debate_embed(debate, self.essay.title, dilemma=prompt).description
        try:
            async for message in channel.history(limit=EARLIER_POST_SCAN):
                if message.author.id != me:
                    continue
                if poll_id is not None and poll_ui.carries_poll(message, poll_id):
                    return message
                if passage is not None and message.embeds and message.embeds[0].description == passage:
                    return message
        except discord.Forbidden as exc:
            # Without Read Message History the nonce is all that guards a retry (minutes only).
            log.warning(
                "guild %s: cannot read #%s's history to find debate %s's earlier post (%s)",
                debate.guild_id,
                channel.name,
                debate.id,
                exc.code,
            )
            return None
        log.info("guild %s: debate %s's earlier send left no post; sending it", debate.guild_id, debate.id)
        return None

    async def _send(
        self,
        channel: discord.TextChannel,
        debate: Debate,
        prompt: Prompt | None,
        options: PostOptions,
        poll_id: int | None,
        required: list[str],
    ) -> discord.Message:
        parts: dict[str, Any] = {"view": None, "poll": None, "embed": None}
        if poll_id is not None and self.polls is not None:
            parts = await self.polls.message_parts(poll_id)
        embeds = [
            ui.debate_embed(
                debate,
                self.essay.title,
                dilemma=None if parts.get("embed") else prompt,
                context=prompt.context if prompt is not None else None,
            )
        ]
        if parts.get("embed") is not None:
            embeds.append(parts["embed"])
        kwargs: dict[str, Any] = {"embeds": embeds, "nonce": debate.nonce}
        if parts.get("view") is not None:
            kwargs["view"] = parts["view"]
        if parts.get("poll") is not None:
            kwargs["poll"] = parts["poll"]
        if options.ping_role_id is not None:
            kwargs["content"] = f"<@&{options.ping_role_id}>"
            kwargs["allowed_mentions"] = discord.AllowedMentions(
                everyone=False, users=False, roles=[discord.Object(options.ping_role_id)], replied_user=False
            )
        else:
            kwargs["allowed_mentions"] = discord.AllowedMentions.none()
        try:
            # discord.py 2.7 sends enforce_nonce=True with every nonce: within a few minutes a retry gets the
            # first message back; later ones rely on the history lookup above (M2).
            message = await channel.send(**kwargs)
        except discord.Forbidden as exc:
            lacking = ui.missing_in(channel, required)
            what = ui.join_names(perms.names(lacking)) if lacking else "a permission Discord did not name"
            raise Blocked(f"missing {what} in #{channel.name} (Discord error {exc.code})") from exc
        except discord.NotFound as exc:
            raise Blocked(f"the channel #{channel.name} no longer exists (Discord error {exc.code})") from exc
        return message

    async def _pin(self, channel: discord.TextChannel, message: discord.Message, debate: Debate) -> str | None:
        """Pin today's post and unpin the previous debate post (so the channel never reaches Discord's
        250 pins because of us); returns what went wrong, for /schedule status, or None."""
        where = f"#{channel.name}"
        lacking = ui.missing_in(channel, ["pin"])
        if lacking:
            return f"not pinned: missing {ui.join_names(perms.names(lacking))} in {where}"
        async with self.db.read() as conn:
            previous = await debate_store.latest_posted(conn, debate.guild_id)
        if previous is not None and previous.message_id not in (None, message.id):
            old = self.bot.get_partial_messageable(previous.channel_id, guild_id=debate.guild_id)
            try:
                await old.get_partial_message(previous.message_id).unpin(reason="Common Ground: a newer debate")
            except discord.NotFound:
                pass  # deleted, or its channel is gone
            except discord.HTTPException as exc:
                log.warning("guild %s: could not unpin debate %s (%s)", debate.guild_id, previous.id, exc.status)
        try:
            await message.pin(reason="Common Ground daily debate")
        except discord.HTTPException as exc:
            log.warning("guild %s: could not pin debate %s (%s)", debate.guild_id, debate.id, exc.status)
            if exc.code == MAX_PINS_REACHED:
                return (
                    f"not pinned: {where} already has 250 pinned messages, Discord's maximum; "
                    "unpin some to let the daily post be pinned"
                )
            if isinstance(exc, discord.Forbidden):
                return f"not pinned: missing Pin Messages in {where} (Discord error {exc.code})"
            return f"not pinned: Discord error {exc.status}"
        return None


def _window(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours}-hour"
    return f"{minutes}-minute"


def get_service(bot: CommonGround) -> DebateService:
    """The bot's DebateService, its jobs and reconciliation wired on first use (each debate extension
    calls this, so the jobs run when any of them is loaded, and only then)."""
    service = bot.debates
    if not service.wired:
        service.wired = True
        service.register()

        bot.reconciler.add_step("schedules", service.reconcile_step, order=reconcile_order.SCHEDULES)
    return service
