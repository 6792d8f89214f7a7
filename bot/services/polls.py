"""Polls as a service: create inside a caller's transaction, record votes, close, show results.

Shared by the poll cog, the daily debate posts (``bot.polls``) and scheduled jobs.

Message parts: :meth:`PollService.message_parts` returns the dilemma embed separately (``"embed"``);
a debate post may show it as its own embed or fold the dilemma into the debate embed and drop it.

Anonymity: no reply, embed or log line names who chose what; only the member sees their own choice
(ephemerally). Logs carry poll and guild ids and counts, never user ids with options.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord

from bot.domain import permissions as perms
from bot.domain import rotation
from bot.domain.errors import NotFound, UserError
from bot.domain.leaning import Moments, poll_leaning
from bot.domain.packs import MAX_LABEL, MAX_OPTIONS, MAX_QUESTION, MIN_OPTIONS, Dilemma, text_problem
from bot.domain.shards import ShardScope
from bot.domain.timing import InteractionTiming
from bot.scheduler import GuildUnavailable
from bot.storage import debates as debate_store
from bot.storage import guilds as guild_store
from bot.storage import jobs as job_store
from bot.storage import polls as store
from bot.storage import reconcile as reconcile_store
from bot.storage.vote_writer import WRITES, Mode, Outcome, VoteRequest, VoteResult, VoteStoreError, VoteWriter
from bot.ui import debates as debate_ui
from bot.ui import polls as ui

if TYPE_CHECKING:
    from bot.storage.jobs import Job
    from bot.storage.polls import AsyncConnection  # re-exported: SQL toolkits stay in bot/storage

log = logging.getLogger(__name__)
MISSING_ACCESS = 50001  # Discord's JSON error code when the bot cannot see the channel at all

ACK_DEADLINE = 1.5  # seconds before we defer: Discord's deadline for the first answer is 3 s, and the defer
# itself is a REST call that a loaded loop can delay by a second (F6: 8 s lock, 1,000 clicks)
# Follow-ups to deferred clicks in flight at once. After a long stall (a held write lock) hundreds of them
# are ready together; their tokens last 15 minutes, so they queue here rather than crowd out the first
# answers and defers of new clicks, which have Discord's 3 seconds.
FOLLOWUP_CONCURRENCY = 16  # the floor; the limit follows the measured round trip (Little's law)
FOLLOWUP_TARGET_PER_SECOND = 1100  # the click rate one process answers (benchmarks/README)
# Message ids known not to be our native polls (members' own polls: Discord sends their votes too, P4),
# most recent first out; bounded so a busy server cannot grow it without limit.
NOT_OURS_CACHE = 4096
LIVE_INTERVAL = 5.0  # at most one live-count edit per poll per this many seconds
PUBLISH_RETRY_AFTER = 60  # seconds: the durable fallback for a result edit that failed
UNREADABLE_NOTE = (
    "I couldn't read this native poll any more (I lack View Channel or Read Message History here), "
    "so these are the votes I had recorded before that."
)
POLL_ALREADY_EXPIRED = 520001  # Discord: End Poll on a poll that has already ended
STORE_FAILED = "I couldn't record your vote just now (a storage problem on our side). Please try again in a minute."


def close_key(poll_id: int) -> str:
    return f"poll-close:{poll_id}"


def publish_key(poll_id: int) -> str:
    return f"poll-publish:{poll_id}"


def validate_dilemma(dilemma: Dilemma, *, style: str = "buttons") -> None:
    """The pack rules that apply to any dilemma (ad-hoc ones need not straddle 0)."""
    if style not in ("buttons", "native"):
        raise UserError(f"Unknown poll style {style!r}: use buttons or native.")
    question = dilemma.question.strip()
    if not question:
        raise UserError("The poll needs a question.")
    if len(question) > MAX_QUESTION:
        raise UserError(f"The question is {len(question)} characters; the limit is {MAX_QUESTION}.")
    problem = text_problem(question, multiline=True)
    if problem is not None:
        raise UserError(f"The question can't be used: {problem}.")
    n = len(dilemma.options)
    if not MIN_OPTIONS <= n <= MAX_OPTIONS:
        raise UserError(f"A poll needs {MIN_OPTIONS}–{MAX_OPTIONS} options; this one has {n}.")
    seen: set[str] = set()
    for i, opt in enumerate(dilemma.options, 1):
        label = opt.label.strip()
        if not label:
            raise UserError(f"Option {i} is empty.")
        if len(label) > MAX_LABEL:
            raise UserError(f"Option {i} is {len(label)} characters; the limit is {MAX_LABEL}.")
        if any(ch in label for ch in "\n\r\t") or any(ord(ch) < 32 for ch in label):
            raise UserError(f"Option {i} must be one line of text.")
        problem = text_problem(label, multiline=False)
        if problem is not None:
            raise UserError(f"Option {i} can't be used: {problem}.")
        if label.casefold() in seen:
            raise UserError(f"Option {i} repeats another option.")
        seen.add(label.casefold())
        if not -1.0 <= float(opt.position) <= 1.0:
            raise UserError(f"Option {i}'s position must be between -1 and +1.")


class Limiter:
    """At most ``limit`` holders at once; ``limit`` may change while it is in use."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self):
        async with self._changed:
            await self._changed.wait_for(lambda: self.held < self.limit)
            self.held += 1
        try:
            yield
        finally:
            async with self._changed:
                self.held -= 1
                self._changed.notify(max(1, self.limit - self.held))


def _tally_chart(*args: Any) -> bytes:
    """``charts.tally_chart``, run in a worker thread: the first call imports the chart stack (matplotlib,
    numpy: seconds of CPU on a slow machine) there too, not on the event loop."""
    from bot.ui.charts import tally_chart

    return tally_chart(*args)


class PollService:
    def __init__(self, bot) -> None:
        self.bot = bot
        self.db = bot.db
        self.clock = bot.clock
        self.scheduler = bot.scheduler
        self.writer = VoteWriter(bot.db, bot.clock)
        self._live_pending: dict[int, asyncio.Task[None]] = {}
        self.timing = InteractionTiming()
        self._followups = Limiter(FOLLOWUP_CONCURRENCY)
        self.expired_skipped = 0  # answers not sent because Discord's deadline or the token had passed
        self._live_last: dict[int, float] = {}
        # Polls whose message Discord refused us (403 on an edit, or Missing Access on a read: the bot lost
        # the channel): no live edit and no result edit is sent to it again, each would only be refused and
        # count toward the invalid-request ban (L3). Kept for this process's life.
        self._refused: set[int] = set()
        self._close_locks: dict[int, asyncio.Lock] = {}
        self._native_by_message: dict[int, store.PollRow] = {}
        self._not_ours: OrderedDict[int, None] = OrderedDict()
        self._lookups: dict[int, asyncio.Future[store.PollRow | None]] = {}
        self.live_edits = 0  # counted for tests and benchmarks

    async def shutdown(self) -> None:
        for task in list(self._live_pending.values()):
            task.cancel()
        await self.writer.stop()

    # -- the contract -------------------------------------------------------------------------------

    async def create(
        self,
        conn: AsyncConnection,
        *,
        guild_id: int,
        channel_id: int,
        dilemma: Dilemma,
        closes_at: datetime,
        style: str = "buttons",
        debate_id: int | None = None,
        theme: str | None = None,
        prompt_key: str | None = None,
        vary_order: bool = False,
    ) -> int:
        """Insert the poll and its options in the caller's transaction and arm its close; return its id.

        ``vary_order`` (debate polls): show the options from the individual to the community, or the
        reverse, alternating in seeded pairs across the server's polls (``rotation.reversed_for``). An
        ad-hoc poll keeps the order its moderator typed. Votes store the option's idx either way.
        """
        validate_dilemma(dilemma, style=style)
        now = self.clock.now()
        if closes_at <= now:
            raise UserError("The poll would close before it opens.")
        await guild_store.ensure(conn, guild_id, now=now)
        settings = await guild_store.get(conn, guild_id)
        order = None
        if vary_order:
            reverse = rotation.reversed_for(guild_id, await store.varied_count(conn, guild_id))
            order = rotation.display_order([float(o.position) for o in dilemma.options], reverse=reverse)
        poll_id = await store.insert_poll(
            conn,
            guild_id=guild_id,
            channel_id=channel_id,
            question=dilemma.question.strip(),
            options=[(o.label.strip(), float(o.position)) for o in dilemma.options],
            opened_at=now,
            closes_at=closes_at,
            style=style,
            live_counts=bool(settings and settings.show_live_counts),
            debate_id=debate_id,
            theme=theme,
            prompt_key=prompt_key,
            option_order=order,
        )
        await self.scheduler.schedule(
            "poll-close", close_key(poll_id), closes_at, {"poll_id": poll_id}, guild_id=guild_id, conn=conn
        )
        return poll_id

    async def message_parts(self, poll_id: int) -> dict[str, Any]:
        """``{"view", "poll", "embed"}`` to send with the post (one of view/poll is None)."""
        poll = await self._get(poll_id)
        embed = ui.dilemma_embed(poll)
        if poll.style == "native":
            return {"view": None, "poll": ui.native_poll(poll, self.clock.now()), "embed": embed}
        return {"view": ui.vote_view(poll), "poll": None, "embed": embed}

    async def attach_message(self, poll_id: int, message_id: int) -> None:
        async with self.db.write() as conn:
            await store.set_message(conn, poll_id, message_id)
        self._native_by_message.pop(message_id, None)
        # A vote may have come in before the message was attached; it is ours from now on.
        self._not_ours.pop(message_id, None)

    async def close(self, poll_id: int, *, reason: str = "deadline", job: Job | None = None) -> None:
        """Close the poll (idempotent), then edit its message to the result and tell the debate thread.
        ``job``: the close job running this, settled in the closing transaction."""
        lock = self._close_locks.setdefault(poll_id, asyncio.Lock())
        async with lock:
            poll = await self._get_or_none(poll_id)
            if poll is None or poll.status != "open":
                return
            note = None
            if poll.style == "native" and poll.message_id is not None:
                note = await self._finalize_native(poll)
            now = self.clock.now()
            async with self.db.write() as conn:
                closed = await store.close(conn, poll_id, now=now, note=note)
                if closed is None:
                    return
                await job_store.cancel(conn, close_key(poll_id))
                if job is not None:
                    await self.scheduler.settle(conn, job)
                # If the result edit below fails for a passing reason, this job retries it.
                await self.scheduler.schedule(
                    "poll-publish",
                    publish_key(poll_id),
                    now + _seconds(PUBLISH_RETRY_AFTER),
                    {"poll_id": poll_id},
                    guild_id=poll.guild_id,
                    conn=conn,
                )
            pending = self._live_pending.pop(poll_id, None)
            if pending is not None:
                pending.cancel()
            log.info("poll %s closed (%s) in guild %s with %d voters", poll_id, reason, poll.guild_id, closed.moments.n)
        try:
            await self.publish(poll_id)
        except (discord.HTTPException, GuildUnavailable) as exc:
            # Expected while the server is in an outage (G4): one quiet line; otherwise worth a warning.
            level = logging.WARNING if self.bot.guild_available(poll.guild_id) else logging.INFO
            log.log(level, "poll %s result not published yet (%s); the publish job retries", poll_id, exc)
            return
        await self.scheduler.cancel(publish_key(poll_id))

    async def closed_poll(self, poll_id: int, *, guild_id: int | None = None) -> store.PollRow:
        """The closed poll to show, or the error to show instead (checked before a public defer: after
        one, Discord would make the error public, I2); pass ``guild_id`` to refuse another server's poll."""
        poll = await self._get_or_none(poll_id) if store.valid_poll_id(poll_id) else None
        if poll is None or (guild_id is not None and poll.guild_id != guild_id):
            raise NotFound("There is no such poll in this server.")
        if poll.status == "open":
            raise UserError(
                "That poll is still open: results are shown when it closes "
                f"{discord.utils.format_dt(poll.closes_at, 'R')}."
            )
        return poll

    async def result(self, poll_id: int, *, guild_id: int | None = None) -> tuple[discord.Embed, discord.File | None]:
        """The closed poll's result embed and chart; pass ``guild_id`` to refuse another server's poll."""
        poll = await self.closed_poll(poll_id, guild_id=guild_id)
        counts = {o.idx: o.final_count or 0 for o in poll.options}
        return await self._result_parts(poll, counts)

    async def latest_poll_id(self, guild_id: int, *, closed_only: bool = False) -> int | None:
        async with self.db.read() as conn:
            return await store.latest_id(conn, guild_id, closed_only=closed_only)

    async def autocomplete(self, guild_id: int, query: str, *, status: str | None) -> list[tuple[str, int]]:
        async with self.db.read() as conn:
            rows = await store.search(conn, guild_id, query[:100], status=status, limit=25)
        out = []
        for poll_id, question, st, opened in rows:
            head = f"#{poll_id} · {opened:%Y-%m-%d} · {st} · "
            text = " ".join(question.split())
            room = 100 - len(head)
            out.append((head + (text if len(text) <= room else text[: room - 1] + "…"), poll_id))
        return out

    # -- buttons ------------------------------------------------------------------------------------

    async def handle_click(self, interaction: discord.Interaction, poll_id: int, idx: int) -> None:
        """A vote button: validate against the database, commit, then answer ephemerally."""
        message_id = interaction.message.id if interaction.message is not None else 0
        await self._vote_interaction(interaction, poll_id, idx, Mode.CLICK, message_id)

    async def handle_withdraw(self, interaction: discord.Interaction, poll_id: int) -> None:
        # The button sits on our ephemeral reply, not on the poll's message: no message check here.
        await self._vote_interaction(interaction, poll_id, None, Mode.WITHDRAW, None)

    async def _vote_interaction(
        self, interaction: discord.Interaction, poll_id: int, idx: int | None, mode: str, message_id: int | None
    ) -> None:
        member = interaction.user
        loop = asyncio.get_running_loop()
        # Discord's 3 s run from when it created the interaction (its clock, I3), not from when this
        # handler got to run: the host clock's offset and the network's delay are estimated from recent
        # interactions, and from here on the age is kept on the monotonic clock.
        wall, mono = time.time(), time.monotonic()
        observed = wall - interaction.created_at.timestamp()
        born = loop.time() - self.timing.observe(observed, drift=wall - mono)
        if interaction.guild_id is None or not store.valid_poll_id(poll_id) or (idx is not None and idx >= 25):
            await self._answer(interaction, ui.UNAVAILABLE, deferred=False, born=born)
            return
        request = VoteRequest(
            poll_id=poll_id,
            guild_id=interaction.guild_id,
            user_id=member.id,
            option_idx=idx,
            mode=mode,
            message_id=message_id,
            role_ids=_role_ids(member),
            joined_at=getattr(member, "joined_at", None),
        )
        future = self.writer.submit(request)
        deferred = False
        budget = min(ACK_DEADLINE, max(0.0, ACK_DEADLINE - (loop.time() - born)))
        try:
            try:
                result = await asyncio.wait_for(asyncio.shield(future), budget)
            except TimeoutError:
                # The commit is slow (a long lock, a busy disk): keep the interaction alive, answer after,
                # unless Discord's deadline has already passed (a defer then only earns a 404).
                if self.timing.time_left(loop.time() - born) > 0:
                    started = loop.time()
                    try:
                        await interaction.response.defer(ephemeral=True, thinking=True)
                    except discord.HTTPException as exc:
                        # Past Discord's deadline after all (10062: the estimate of its clock was off, or the
                        # machine stalled): no answer can reach the member now; the vote is still stored.
                        outcome = (await asyncio.gather(future, return_exceptions=True))[0]
                        log.warning(
                            "could not defer a poll click in guild %s (%s); the vote %s",
                            interaction.guild_id,
                            exc.status,
                            "was not stored" if isinstance(outcome, BaseException) else "is stored",
                        )
                        return
                    self.timing.round_trip(loop.time() - started)
                    acked_at = discord.utils.utcnow()
                    deferred = True
                result = await future
        except VoteStoreError:
            await self._answer(interaction, STORE_FAILED, deferred=deferred, born=born)
            return
        await self._answer(
            interaction, _reply_text(result), deferred=deferred, born=born, result=result, poll_id=poll_id
        )
        metrics = getattr(self.bot, "metrics", None)
        if metrics is not None:
            # Acknowledged at the defer when there was one, else now: Discord's 3 s cover the first answer.
            acked = acked_at if deferred else discord.utils.utcnow()
            metrics.vote_answered(str(result.outcome), (acked - interaction.created_at).total_seconds())
        if result.outcome in WRITES and result.live_counts:
            self._schedule_live(poll_id)

    async def _answer(
        self,
        interaction: discord.Interaction,
        content: str,
        *,
        deferred: bool,
        born: float,
        result: VoteResult | None = None,
        poll_id: int | None = None,
    ) -> None:
        """The answer, unless it could no longer reach the member: past Discord's 3 s for a first answer,
        or past the token's 15 minutes for a follow-up (the vote is stored either way)."""
        kwargs: dict[str, Any] = {}
        if result is not None and result.outcome == Outcome.SAME and poll_id is not None:
            kwargs["view"] = ui.withdraw_view(poll_id)
        loop = asyncio.get_running_loop()
        try:
            if deferred:
                async with self._followups.slot():
                    if self.timing.token_left(loop.time() - born) <= 0:
                        self.expired_skipped += 1
                        log.info("a poll click's token expired before its follow-up (guild %s)", interaction.guild_id)
                        return
                    started = loop.time()
                    await interaction.followup.send(content, ephemeral=True, **kwargs)
            else:
                if self.timing.time_left(loop.time() - born) <= 0:
                    self.expired_skipped += 1
                    log.info("a poll click was past Discord's deadline; not answered (guild %s)", interaction.guild_id)
                    return
                started = loop.time()
                await interaction.response.send_message(content, ephemeral=True, **kwargs)
            self.timing.round_trip(loop.time() - started)
            self._followups.limit = self.timing.followup_concurrency(FOLLOWUP_TARGET_PER_SECOND)
        except discord.HTTPException as exc:
            log.warning("could not answer a poll click in guild %s (%s)", interaction.guild_id, exc.status)

    # -- native polls -------------------------------------------------------------------------------

    async def native_vote(self, *, message_id: int, guild_id: int | None, user_id: int, answer_id: int, add: bool):
        """A raw poll vote add/remove event (answer ids start at 1, in the order the answers are shown)."""
        poll = await self._native_poll(message_id)
        if poll is None:
            return None
        request = VoteRequest(
            poll_id=poll.id,
            guild_id=guild_id,
            user_id=user_id,
            option_idx=poll.idx_of_answer(answer_id),
            mode=Mode.SET if add else Mode.UNSET,
            message_id=message_id,
        )
        try:
            return await self.writer.vote(request)
        except VoteStoreError:
            log.warning("a native poll vote in guild %s was not stored; reconciliation will recover it", guild_id)
            return None

    async def _native_poll(self, message_id: int) -> store.PollRow | None:
        """The native poll on this message (cached: its id and option order never change)."""
        if message_id in self._native_by_message:
            return self._native_by_message[message_id]
        if message_id in self._not_ours:
            self._not_ours.move_to_end(message_id)
            return None
        # Votes come in bursts: concurrent events of one message share a single read.
        pending = self._lookups.get(message_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[store.PollRow | None] = asyncio.get_running_loop().create_future()
        self._lookups[message_id] = future
        try:
            async with self.db.read() as conn:
                poll = await store.by_message(conn, message_id)
            found = poll if poll is not None and poll.style == "native" else None
            if found is None:
                self._not_ours[message_id] = None
                if len(self._not_ours) > NOT_OURS_CACHE:
                    self._not_ours.popitem(last=False)
            else:
                self._native_by_message[message_id] = found
            future.set_result(found)
            return found
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters get it, an unawaited future logs nothing
            raise
        finally:
            del self._lookups[message_id]

    async def _read_voters(self, poll: store.PollRow, message: discord.Message) -> dict[int, int] | None:
        if message.poll is None:
            return None
        voters: dict[int, int] = {}
        for answer in message.poll.answers:
            idx = poll.idx_of_answer(answer.id)
            if idx < 0:
                continue
            # discord.py pages through the answer-voters endpoint 100 at a time.
            async for user in answer.voters(limit=10**9):
                voters[user.id] = idx
        return voters

    async def _fetch_message(self, poll: store.PollRow) -> discord.Message:
        channel = self.bot.get_partial_messageable(poll.channel_id, guild_id=poll.guild_id)
        return await channel.fetch_message(poll.message_id)

    async def _finalize_native(self, poll: store.PollRow) -> str | None:
        """End the native poll and store its exact voter lists; the final counts are then the recount of
        those rows. Discord's own ``results`` are not used: until ``is_finalized`` they "may not be
        perfectly accurate" (P2), and some answers (End Poll's) omit them, which discord.py reads as zero
        votes everywhere (P3). A message already gone leaves the stored votes as they are.

        Returns a note when the poll can no longer be read (403: the bot lost View Channel or Read
        Message History there): it then closes from the votes stored so far, once, instead of a close
        job retried forever."""
        try:
            message = await self._fetch_message(poll)
            if message.poll is not None and not message.poll.is_finalised():
                try:
                    await message.end_poll()
                except discord.HTTPException as exc:
                    # Discord ends a poll at its expiry on its own; our close job may come second.
                    if exc.code != POLL_ALREADY_EXPIRED:
                        raise
            voters = await self._read_voters(poll, message)
        except discord.NotFound:
            return None
        except discord.Forbidden as exc:
            if exc.code == MISSING_ACCESS:
                # The channel itself is out of reach: an edit of the message would be refused too. Without
                # Read Message History alone (50013), the bot may still edit its own message: the result goes in.
                self._refused.add(poll.id)
            log.warning("native poll %s can't be read any more (%s); closing it from stored votes", poll.id, exc.code)
            return UNREADABLE_NOTE
        if voters is None:
            return None
        async with self.db.write() as conn:
            await store.sync_voters(conn, poll.id, voters, now=self.clock.now())
        return None

    async def rearm_closes(self, guild_id: int | None = None) -> int:
        """Reconciliation step: a close job for every open poll (of one server, or all) that has none, as
        after the bot left a server and came back; a poll past its time closes at once. Returns how many."""
        async with self.db.read() as conn:
            scope = getattr(self.bot, "scope", None) if guild_id is None else None  # a full run: our shards
            unarmed = await reconcile_store.open_polls_without_close_job(conn, guild_id, scope=scope)
        for poll_id, gid, closes_at in unarmed:
            await self.scheduler.schedule(
                "poll-close", close_key(poll_id), closes_at, {"poll_id": poll_id}, guild_id=gid
            )
        if unarmed:
            log.info("reconcile: re-armed the close of %d open polls", len(unarmed))
        return len(unarmed)

    async def reconcile(self, scope: ShardScope | None = None) -> None:
        """On every ready: re-read the voters of open native polls (votes cast while we were down),
        those of ``scope``'s servers only (the servers of this process's shards)."""
        async with self.db.read() as conn:
            open_native = await store.open_polls(conn, style="native", scope=scope)
        changed = 0
        for poll in open_native:
            if poll.message_id is None or self.bot.get_guild(poll.guild_id) is None:
                continue  # a server the bot has left: every request would be refused (403)
            try:
                message = await self._fetch_message(poll)
                # open_polls() reads no options; the answer -> option mapping needs them.
                full = await self._get_or_none(poll.id)
                voters = await self._read_voters(full, message) if full is not None else None
            except discord.NotFound:
                with contextlib.suppress(GuildUnavailable):  # re-read at the next READY
                    await self._mark_deleted(poll.id, poll.guild_id)
                continue
            except discord.HTTPException as exc:
                log.warning("could not re-read native poll %s (%s)", poll.id, exc.status)
                continue
            if voters is None:
                continue
            async with self.db.write() as conn:
                changed += await store.sync_voters(conn, poll.id, voters, now=self.clock.now())
        if open_native:
            log.info("reconciled %d open native polls (%d vote changes)", len(open_native), changed)

    # -- results and messages -----------------------------------------------------------------------

    async def publish(self, poll_id: int) -> None:
        """Edit the closed poll's message to the result, and post the summary in the debate's thread."""
        poll = await self._get_or_none(poll_id)
        if poll is None or poll.status == "open":
            return
        counts = {o.idx: o.final_count or 0 for o in poll.options}
        if poll_id in self._refused:
            log.info("poll %s result not edited into its message: Discord refused that message before", poll_id)
        elif poll.message_id is not None and poll.status != "deleted":
            # M4: an edit that adds a file needs Attach Files; without it the result goes out without its chart
            # rather than not at all (/schedule status names the missing permission).
            embed, file = await self._result_parts(poll, counts, chart=self._may_attach(poll.channel_id))
            message = self.bot.get_partial_messageable(poll.channel_id, guild_id=poll.guild_id).get_partial_message(
                poll.message_id
            )
            # Edit Message replaces the whole embeds array (M1): a debate post sends its passage again.
            kwargs: dict[str, Any] = {
                "embeds": await self._post_embeds(poll, embed),
                "attachments": [file] if file else [],
            }
            if poll.style == "buttons":
                kwargs["view"] = ui.vote_view(poll, disabled=True)
            try:
                await message.edit(**kwargs)
            except discord.NotFound:
                # The message was deleted (F13): remember it, never try to edit it again.
                await self._mark_deleted(poll_id)
            except discord.Forbidden as exc:
                self._refused.add(poll_id)
                log.warning("poll %s result edit forbidden (%s); not retried", poll_id, exc.code)
        async with self.db.read() as conn:
            thread_id = await store.debate_thread(conn, poll.debate_id)
        if thread_id:
            thread = self.bot.get_partial_messageable(thread_id, guild_id=poll.guild_id)
            leaning = poll_leaning(_moments(poll))
            try:
                await thread.send(ui.summary_text(poll, counts, leaning), nonce=f"pollsum{poll_id}"[:25])
            except (discord.NotFound, discord.Forbidden) as exc:
                log.warning("poll %s summary not posted in its thread (%s)", poll_id, exc.status)

    async def _post_embeds(self, poll: store.PollRow, embed: discord.Embed) -> list[discord.Embed]:
        """The embeds of the poll's message with ``embed`` as its poll part: a daily debate's post keeps
        its passage-and-question embed first (an edit with ``embeds`` replaces the whole array, M1)."""
        if poll.debate_id is None:
            return [embed]
        context = None
        debates = getattr(self.bot, "debates", None)  # None for a PollService without the bot (storage tests)
        async with self.db.read() as conn:
            debate = await debate_store.get(conn, poll.debate_id)
            if debate is not None and debates is not None:
                # The prompt's context note is not stored with the debate: read it from the pack again.
                prompt = await debates.catalog.for_debate(conn, debate)
                context = prompt.context if prompt is not None else None
        if debate is None:
            return [embed]
        return [debate_ui.debate_embed(debate, self._essay_title(), context=context), embed]

    def _essay_title(self) -> str:
        debates = getattr(self.bot, "debates", None)  # None for a PollService without the bot (storage tests)
        if debates is not None:
            return debates.essay.title
        from bot.domain.essay import load_essay

        return load_essay().title

    def _cached_permissions(self, channel_id: int) -> int | None:
        """The bot's permissions in a channel as the gateway's cache shows them (None: not cached)."""
        channel = self.bot.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        if channel is None or guild is None or guild.me is None:
            return None
        return channel.permissions_for(guild.me).value

    def _may_attach(self, channel_id: int) -> bool:
        """False when the gateway's cache says the bot lacks Attach Files there (unknown: try)."""
        granted = self._cached_permissions(channel_id)
        return granted is None or not perms.missing(granted, ["chart"])

    async def _result_parts(self, poll: store.PollRow, counts: dict[int, int], *, chart: bool = True):
        leaning = poll_leaning(_moments(poll))
        file = None
        if not chart:
            return ui.result_embed(poll, counts, leaning, chart=False), None
        try:
            png = await asyncio.to_thread(_tally_chart, poll.question, ui.options_for_chart(poll, counts), leaning)
            file = discord.File(io.BytesIO(png), filename=ui.chart_name(poll.id))
        except Exception:
            log.exception("poll %s chart could not be rendered; sending the result without it", poll.id)
        return ui.result_embed(poll, counts, leaning, chart=file is not None), file

    async def _mark_deleted(self, poll_id: int, guild_id: int | None = None) -> None:
        """The poll's message is gone: close it as deleted (final counts kept) and stop editing it.

        Only while its server is available: during an outage a 404 proves nothing (G4), so the caller's
        job is retried instead (GuildUnavailable)."""
        if guild_id is None:
            poll = await self._get_or_none(poll_id)
            guild_id = poll.guild_id if poll is not None else None
        if guild_id is not None and not self.bot.guild_available(guild_id):
            raise GuildUnavailable(f"guild {guild_id} unavailable: poll {poll_id} message not found")
        now = self.clock.now()
        async with self.db.write() as conn:
            await store.close(conn, poll_id, now=now)
            await store.set_status(conn, poll_id, "deleted", now=now)
            await job_store.cancel(conn, close_key(poll_id))
        pending = self._live_pending.pop(poll_id, None)
        if pending is not None and pending is not asyncio.current_task():
            pending.cancel()
        log.info("poll %s closed as deleted: its message is gone", poll_id)

    def _schedule_live(self, poll_id: int) -> None:
        """Coalesce: one pending edit per poll, at least LIVE_INTERVAL after the previous one; none
        after Discord refused one (403: the bot lost access; retrying only counts toward the ban, L3)."""
        if poll_id in self._live_pending or poll_id in self._refused:
            return
        loop = asyncio.get_running_loop()
        last = self._live_last.get(poll_id)
        delay = 0.0 if last is None else max(0.0, last + LIVE_INTERVAL - loop.time())
        self._live_pending[poll_id] = loop.create_task(self._live_edit(poll_id, delay), name=f"poll-live:{poll_id}")

    async def _live_edit(self, poll_id: int, delay: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(delay)
            # The previous edit may have finished later than it started (a busy loop, a slow REST
            # call): count the interval from when it finished, so Discord never sees two within 5 s.
            last = self._live_last.get(poll_id)
            if last is not None and last + LIVE_INTERVAL > loop.time():
                await asyncio.sleep(last + LIVE_INTERVAL - loop.time())
            self._live_last[poll_id] = loop.time()
            # Leave the pending slot before reading, so a vote committed after the read arms the next edit.
            self._live_pending.pop(poll_id, None)
            poll = await self._get_or_none(poll_id)
            if poll is None or poll.status != "open" or poll.message_id is None:
                return
            async with self.db.read() as conn:
                counts = await store.tally(conn, poll_id)
            message = self.bot.get_partial_messageable(poll.channel_id, guild_id=poll.guild_id).get_partial_message(
                poll.message_id
            )
            embeds = await self._post_embeds(poll, ui.live_embed(poll, counts))
            self.live_edits += 1
            try:
                await message.edit(embeds=embeds)
            finally:
                self._live_last[poll_id] = loop.time()
        except discord.NotFound:
            with contextlib.suppress(GuildUnavailable):  # the next click schedules another edit
                await self._mark_deleted(poll_id)
        except discord.Forbidden as exc:
            self._refused.add(poll_id)
            log.warning("live count edit of poll %s refused (%s); no more live edits for it", poll_id, exc.code)
        except discord.HTTPException as exc:
            log.warning("live count edit of poll %s failed (%s)", poll_id, exc.status)
        except asyncio.CancelledError:
            pass

    # -- jobs ---------------------------------------------------------------------------------------

    async def run_close_job(self, job: Job) -> None:
        await self.close(int(job.payload["poll_id"]), reason="deadline", job=job)

    async def run_publish_job(self, job: Job) -> None:
        await self.publish(int(job.payload["poll_id"]))

    # -- ad-hoc polls -------------------------------------------------------------------------------

    async def post(
        self,
        channel: discord.abc.Messageable,
        *,
        guild_id: int,
        channel_id: int,
        dilemma: Dilemma,
        closes_at: datetime,
        style: str = "buttons",
    ) -> int:
        """Create a poll and post it in ``channel``; return its id (UserError if it cannot be posted)."""
        async with self.db.write() as conn:
            poll_id = await self.create(
                conn, guild_id=guild_id, channel_id=channel_id, dilemma=dilemma, closes_at=closes_at, style=style
            )
        parts = await self.message_parts(poll_id)
        kwargs = {k: v for k, v in parts.items() if v is not None}
        try:
            message = await channel.send(**kwargs)
        except discord.HTTPException as exc:
            async with self.db.write() as conn:
                await store.set_status(conn, poll_id, "deleted", now=self.clock.now())
                await job_store.cancel(conn, close_key(poll_id))
            if isinstance(exc, discord.Forbidden):
                raise UserError(self._refused_post(channel_id, style)) from exc
            raise UserError("Discord refused the poll message; please try again.") from exc
        await self.attach_message(poll_id, message.id)
        return poll_id

    def _refused_post(self, channel_id: int, style: str) -> str:
        """Why Discord refused a poll post (403), naming what the bot lacks there for this poll's style:
        from the gateway's view of the channel when it shows the gap, else everything the post needs."""
        actions = ["post"] + (["native-poll"] if style == "native" else [])
        granted = self._cached_permissions(channel_id)
        lacking = perms.missing(granted, actions) if granted is not None else []
        return perms.cannot_post(f"<#{channel_id}>", lacking or perms.needed(actions))

    async def open_poll_ids(self, guild_id: int) -> list[int]:
        async with self.db.read() as conn:
            return [p.id for p in await store.open_polls(conn) if p.guild_id == guild_id]

    # -- helpers ------------------------------------------------------------------------------------

    async def _get_or_none(self, poll_id: int) -> store.PollRow | None:
        async with self.db.read() as conn:
            return await store.get(conn, poll_id)

    async def _get(self, poll_id: int) -> store.PollRow:
        poll = await self._get_or_none(poll_id)
        if poll is None:
            raise NotFound("There is no such poll.")
        return poll


def _seconds(n: float):
    from datetime import timedelta

    return timedelta(seconds=n)


def _moments(poll: store.PollRow) -> Moments:
    if poll.final_voters is not None:
        return Moments(poll.final_voters, poll.final_total or 0.0, poll.final_total_sq or 0.0)
    return Moments()


def _role_ids(member: Any) -> frozenset[int]:
    # Member._roles holds the role ids from the interaction payload even when the guild's roles are
    # not cached; Member.roles would silently drop uncached ones.
    raw: Sequence[int] | None = getattr(member, "_roles", None)
    if raw is not None:
        return frozenset(int(r) for r in raw)
    return frozenset(r.id for r in getattr(member, "roles", ()))


def _reply_text(result: VoteResult) -> str:
    if result.outcome == Outcome.NO_ROLE and result.role_id is not None:
        return ui.refused_role(result.role_id)
    if result.outcome == Outcome.TOO_NEW:
        return ui.refused_new(result.min_days, result.eligible_at)
    return ui.vote_reply(result.outcome, result.label, result.closes_at)
