"""One durable job dispatcher: jobs live in the database, time comes from an injected clock.

The dispatcher sleeps until the earliest due job (woken early when an earlier job is added, or, with a
:class:`~bot.domain.clock.FakeClock`, whenever a test moves time). It never polls every server.
A job is deleted only after its handler returns; a handler that raises is retried with backoff and
jitter, so handlers must be idempotent. After ``PARK_AFTER`` failures in a row the job is parked: kept
with its last error (moderators see it in ``/schedule status``), logged at ERROR and counted in
:attr:`Scheduler.metrics`, never run again until it is re-armed. A handler that raises
:class:`PermanentJobError` is not retried: it has recorded why (for example, a schedule blocked by a
missing permission).

Past one process, a scheduler runs only the jobs of the servers on its own shards (``scope``; jobs of
no server only where shard 0 is held), and claims each job with a lease before running it: two
processes given overlapping shards by mistake still never run one job twice. Leases are measured on
the wall clock (they are about processes being alive, not about the schedule's time), renewed while
the job runs, and taken over when they expire or when their owner, a process on this host, is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.clock import Clock
from bot.domain.shards import ShardScope
from bot.storage import jobs as job_store
from bot.storage.database import Database
from bot.storage.jobs import PARK_AFTER, Job

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]
# Whether a handler's failure only says that Discord is not serving the job's server right now (a 5xx or
# a timeout while the guild is in an outage, G4): given by the bot, which knows the guilds' state.
OutageCheck = Callable[[Job, Exception], bool]

# With the real clock, re-read the queue at least this often, in case the wall clock jumped.
MAX_SLEEP = timedelta(minutes=10)
# On a database several processes share, at least this often: a job another process armed for one of our
# servers (the website of cluster A changing a schedule of a server on cluster B) wakes no one here.
SHARED_MAX_SLEEP = timedelta(seconds=30)
BATCH = 200
CONCURRENCY = 16
# A claimed job is held this long (wall clock) and renewed while it runs; a process that dies
# holding one blocks that job at most this long on another machine (on this one: not at all).
LEASE = timedelta(seconds=120)
RENEW_EVERY = 40.0


def process_owner() -> str:
    """A lease owner name unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_local_owners(owners: set[str], me: str) -> tuple[str, ...]:
    """Owners on this host whose process no longer exists (killed, crashed): their leases are void."""
    host = me.split(":", 1)[0]
    dead = []
    for owner in owners:
        parts = owner.rsplit(":", 2)
        if owner == me or len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid():
            continue  # another scheduler in this very process (tests run two clusters in one)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.append(owner)
        except PermissionError:
            continue  # alive, someone else's
    return tuple(sorted(dead))


class PermanentJobError(Exception):
    """The job cannot succeed by retrying; the handler has recorded the reason where users see it."""


class GuildUnavailable(Exception):
    """Discord refused a request while the guild is in an outage (G4): nothing permanent is decided,
    the job is retried (and brought forward when the guild comes back)."""


def backoff(attempts: int) -> timedelta:
    """The longest wait after ``attempts`` failures: 30 s, 1 min, 2 min … capped at one hour."""
    return timedelta(seconds=min(30 * 2**attempts, 3600))


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """Between half of :func:`backoff` and all of it ("equal jitter"): jobs that failed together, say
    every server's post in one Discord outage, do not all retry in the same second."""
    ceiling = backoff(attempts)
    return ceiling / 2 + ceiling / 2 * rng.random()


class Scheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        scope: ShardScope | None = None,
        owner: str | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.scope = scope or ShardScope()
        self.owner = owner or process_owner()
        self._wall = wall_clock or (lambda: datetime.now(UTC))
        self._dead_owners: tuple[str, ...] = ()
        self._renewer: asyncio.Task[None] | None = None
        self.runs = 0  # handlers started by this scheduler (for tests and metrics)
        self.rng = rng or random.Random()
        # Counters for operators: "retried" and "parked" jobs since start. Exposed as plain numbers so a
        # metrics endpoint (Prometheus text, later) can read them: see :meth:`metric_values`.
        self.metrics: Counter[str] = Counter()
        self.handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[int] = set()
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight: set[asyncio.Task[None]] = set()
        self._fake_clock = hasattr(clock, "add_listener")
        self.in_outage: OutageCheck = lambda _job, _exc: False
        self._settled: set[int] = set()  # jobs whose handler settled them in its own last transaction
        self.max_sleep = MAX_SLEEP if db.is_sqlite else SHARED_MAX_SLEEP

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    # -- arming -----------------------------------------------------------------------------------

    async def schedule(
        self,
        kind: str,
        key: str,
        due_at: datetime,
        payload: dict[str, Any] | None = None,
        *,
        guild_id: int | None = None,
        conn=None,
    ) -> None:
        """Create or move the job ``key``. Pass ``conn`` to make it part of a caller's transaction."""
        now = self.clock.now()
        if conn is not None:
            await job_store.upsert(conn, kind=kind, key=key, due_at=due_at, payload=payload, guild_id=guild_id, now=now)
        else:
            async with self.db.write() as own:
                await job_store.upsert(
                    own, kind=kind, key=key, due_at=due_at, payload=payload, guild_id=guild_id, now=now
                )
        self.poke()

    async def cancel(self, key: str) -> bool:
        async with self.db.write() as conn:
            return await job_store.cancel(conn, key)

    async def bring_forward(self, guild_id: int) -> int:
        """A server is back from an outage: its jobs waiting on a retry run now."""
        async with self.db.write() as conn:
            moved = await job_store.bring_forward(conn, guild_id, now=self.clock.now())
        if moved:
            self.poke()
        return moved

    async def settle(self, conn: Any, job: Job) -> None:
        """Finish ``job`` in the write transaction ``conn``: deleted unless re-armed meanwhile, its lease
        released. A handler calls it in its own last transaction (one write transaction per job instead
        of two); for a handler that did not, the scheduler calls it once the handler has returned. If the
        handler raises after settling, the usual failure path still runs (and finds the job gone or re-armed)."""
        await job_store.done(conn, job)
        await job_store.release(conn, job.id, owner=self.owner)
        self._settled.add(job.id)

    def poke(self) -> None:
        """Re-read the queue now (a job was added or moved)."""
        self._wake.set()

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            if self._fake_clock:
                self.clock.add_listener(lambda _now: self._wake.set())  # type: ignore[attr-defined]
            self._task = asyncio.create_task(self._loop(), name="scheduler")
            self._renewer = asyncio.create_task(self._renew_loop(), name="scheduler-leases")

    async def stop(self) -> None:
        for task in (self._task, self._renewer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._renewer = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _loop(self) -> None:
        await self._refresh_dead_owners()  # a restart after a kill takes its predecessor's jobs at once
        while True:
            self._wake.clear()
            lease_end = None
            try:
                await self.run_due()
                wall = self._wall()
                async with self.db.read() as conn:
                    earliest = await job_store.earliest_due(conn, self.scope, wall_now=wall)
                    lease_end = await job_store.earliest_lease_end(
                        conn, self.clock.now(), self.scope, wall_now=wall, running=self._running
                    )
                if lease_end is not None:
                    await self._refresh_dead_owners()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler pass failed; retrying shortly")
                earliest = self.clock.now() + timedelta(seconds=5)
            timeout: float | None
            if self._fake_clock:
                timeout = None if earliest is None or earliest > self.clock.now() else 0
            else:
                wait = self.max_sleep if earliest is None else min(earliest - self.clock.now(), self.max_sleep)
                timeout = max(wait.total_seconds(), 0)
            if lease_end is not None:
                # A due job of ours is leased by another process: look again when that lease ends.
                until_free = max((lease_end - self._wall()).total_seconds(), 0.05)
                timeout = until_free if timeout is None else min(timeout, until_free)
            if timeout == 0 and self._running:
                # Everything due is already running: wait for a slot to finish instead of spinning.
                timeout = 0.05
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _refresh_dead_owners(self) -> None:
        host = self.owner.split(":", 1)[0] + ":"
        async with self.db.read() as conn:
            owners = await job_store.live_lease_owners(conn, host, wall_now=self._wall())
        self._dead_owners = dead_local_owners(owners, self.owner)
        if self._dead_owners:
            log.info("taking over jobs leased by %d stopped process(es) on this host", len(self._dead_owners))

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            if not self._running:
                continue
            try:
                async with self.db.write() as conn:
                    await job_store.renew(conn, set(self._running), owner=self.owner, lease_until=self._wall() + LEASE)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not renew job leases")

    async def run_due(self) -> int:
        """Claim and start every due job of our servers that no process holds; return how many."""
        now = self.clock.now()
        wall = self._wall()
        async with self.db.read() as conn:
            candidates = await job_store.due(conn, now, 1, self.scope, wall_now=wall, takeover=self._dead_owners)
        if not candidates:
            return 0
        async with self.db.write() as conn:
            claimed = await job_store.claim_due(
                conn,
                now,
                BATCH,
                self.scope,
                owner=self.owner,
                wall_now=wall,
                lease_until=wall + LEASE,
                takeover=self._dead_owners,
            )
        started = 0
        for job in claimed:
            if job.id in self._running:
                continue
            self._running.add(job.id)
            self._idle.clear()
            task = asyncio.create_task(self._run(job), name=f"job:{job.key}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            started += 1
        return started

    async def wait_idle(self) -> None:
        """Until no job is running."""
        await self._idle.wait()

    async def drain(self) -> None:
        """Run every job that is due now, and any they make due, until none is left or running.

        Tests call this after moving a fake clock; it does not wait for jobs due in the future.
        """
        while True:
            started = await self.run_due()
            if self._inflight:
                await asyncio.wait(set(self._inflight))
            elif not started:
                return

    def metric_values(self) -> dict[str, int]:
        """The counters under the names a Prometheus endpoint would publish."""
        return {
            "commonground_job_retries_total": self.metrics["retried"],
            "commonground_jobs_parked_total": self.metrics["parked"],
        }

    async def _failed(self, job: Job, exc: Exception) -> None:
        attempt = job.attempts + 1
        if attempt >= PARK_AFTER:
            log.error(
                "job %s (%s, guild %s) parked after %d failed attempts; last error: %r. It stays parked, "
                "shown in /schedule status, until it is re-armed.",
                job.key,
                job.kind,
                job.guild_id,
                attempt,
                exc,
                exc_info=exc,
            )
            self.metrics["parked"] += 1
            async with self.db.write() as conn:
                await job_store.park(conn, job, error=repr(exc))
            return
        delay = retry_delay(job.attempts, self.rng)
        log.warning("job %s failed (attempt %d), retrying in %s", job.key, attempt, delay, exc_info=exc)
        self.metrics["retried"] += 1
        async with self.db.write() as conn:
            await job_store.retry(conn, job, due_at=self.clock.now() + delay, error=repr(exc))

    async def _wait_for_guild(self, job: Job, exc: Exception) -> None:
        """Retry after the backoff, one line in the log (no traceback), not counted toward parking; the
        job is brought forward when its server comes back (:meth:`bring_forward`)."""
        delay = backoff(job.attempts)
        log.info("job %s waits for its server (%s); retrying in %s", job.key, _brief(exc), delay)
        self.metrics["waited"] += 1
        async with self.db.write() as conn:
            await job_store.retry(conn, job, due_at=self.clock.now() + delay, error=repr(exc), park=False)

    async def _run(self, job: Job) -> None:
        settled = False
        try:
            async with self._limit:
                # The claim may predate another run of it finishing (done, or moved to a retry time):
                # run only what is still stored, still due, at the time we were given.
                async with self.db.read() as conn:
                    current = await job_store.get_by_id(conn, job.id)
                if current is None or current.due_at != job.due_at or current.due_at > self.clock.now():
                    return
                job = current
                handler = self.handlers.get(job.kind)
                self.runs += 1
                try:
                    if handler is None:
                        raise PermanentJobError(f"no handler for job kind {job.kind!r}")
                    await handler(job)
                except PermanentJobError as exc:
                    log.warning("job %s gave up: %s", job.key, exc)
                    async with self.db.write() as conn:
                        await job_store.done(conn, job)
                        await job_store.release(conn, job.id, owner=self.owner)
                except asyncio.CancelledError:
                    raise
                except GuildUnavailable as exc:
                    await self._wait_for_guild(job, exc)
                except Exception as exc:
                    if self.in_outage(job, exc):
                        # A 5xx or a timeout from a server in an outage: expected, retried quietly, never parked.
                        await self._wait_for_guild(job, exc)
                    else:
                        await self._failed(job, exc)
                        async with self.db.write() as conn:
                            await job_store.release(conn, job.id, owner=self.owner)
                else:
                    if job.id not in self._settled:
                        async with self.db.write() as conn:
                            await self.settle(conn, job)
                settled = True
        finally:
            if not settled:
                # Not run (stale) or interrupted (shutdown): give the job back for the next claimer.
                with contextlib.suppress(Exception):
                    async with self.db.write() as conn:
                        await job_store.release(conn, job.id, owner=self.owner)
            self._running.discard(job.id)
            self._settled.discard(job.id)
            if not self._running:
                self._idle.set()
            self._wake.set()


def _brief(exc: Exception) -> str:
    """One line for the log: the exception's text, or its type when it has none (a bare TimeoutError)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__
