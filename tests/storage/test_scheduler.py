"""The durable dispatcher and the debate-post handler, driven by a FakeClock (no real waiting)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.clock import FakeClock, SystemClock
from bot.scheduler import MAX_SLEEP, SHARED_MAX_SLEEP, PermanentJobError, Scheduler, backoff, retry_delay
from bot.services.debates import Blocked, DebateService, Delivered
from bot.storage import debates as debate_store
from bot.storage import guilds
from bot.storage import jobs as job_store
from bot.storage import schedules as schedule_store
from bot.storage.database import Database
from bot.storage.schedules import post_key

START = datetime(2026, 3, 2, 6, tzinfo=UTC)  # Monday 06:00 UTC = 06:00 London


@pytest.fixture
async def sched(db):
    """A dispatcher driven by ``drain()`` alone (its loop is not started), so runs are deterministic."""
    s = Scheduler(db, FakeClock(START))
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def running(db):
    """A dispatcher with its own loop running, woken by the fake clock."""
    s = Scheduler(db, FakeClock(START))
    s.start()
    try:
        yield s
    finally:
        await s.stop()


# -- the dispatcher --------------------------------------------------------------------------------


async def test_a_job_runs_once_when_due_and_is_then_deleted(db, sched):
    runs = []

    async def handler(job):
        runs.append((job.key, sched.clock.now()))

    sched.register("t", handler)
    await sched.schedule("t", "k1", START + timedelta(hours=1), {"a": 1})
    await sched.drain()
    assert runs == []
    sched.clock.advance(timedelta(minutes=59))
    await sched.drain()
    assert runs == []
    sched.clock.advance(timedelta(minutes=1))
    await sched.drain()
    assert runs == [("k1", START + timedelta(hours=1))]
    sched.clock.advance(timedelta(days=1))
    await sched.drain()
    assert len(runs) == 1
    async with db.read() as conn:
        assert await job_store.count(conn) == 0


async def test_the_loop_wakes_on_its_own_when_the_fake_clock_moves(db, running):
    done = asyncio.Event()

    async def handler(job):
        done.set()

    running.register("t", handler)
    await running.schedule("t", "k", START + timedelta(minutes=5))
    running.clock.advance(timedelta(minutes=5))
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.wait_for(running.wait_idle(), 5)
    async with db.read() as conn:
        assert await job_store.get(conn, "k") is None


async def test_a_job_another_process_arms_runs_here_without_a_wake_up(db):
    """Clusters share one database: a job armed by another process (its own engine, its own scheduler)
    wakes no one here, so the loop re-reads the queue on its own, often enough on a shared database. The
    real clock runs; the loop's longest sleep is shortened to keep the test quick."""
    assert Scheduler(db, SystemClock()).max_sleep == (MAX_SLEEP if db.is_sqlite else SHARED_MAX_SLEEP)
    here = Scheduler(db, SystemClock())
    here.max_sleep = timedelta(seconds=0.3)
    done = asyncio.Event()

    async def handler(job):
        done.set()

    here.register("t", handler)
    here.start()
    other = await Database.open(db.url)
    try:
        await asyncio.sleep(0.05)  # the loop has read the empty queue and sleeps
        async with other.write() as conn:
            await job_store.upsert(conn, kind="t", key="from-b", due_at=datetime.now(UTC), payload=None, now=START)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await here.stop()
        await other.close()


async def test_loop_and_drain_together_run_a_failing_job_once_per_due_time(db, running):
    attempts = []

    async def handler(job):
        attempts.append(job.attempts)
        raise RuntimeError("502")

    running.register("t", handler)
    for _ in range(20):
        attempts.clear()
        await running.schedule("t", "k", running.clock.now())
        await running.drain()
        await asyncio.wait_for(running.wait_idle(), 5)
        assert attempts == [0]
        async with running.db.write() as conn:
            await job_store.cancel(conn, "k")


async def test_a_failing_job_is_retried_with_backoff_and_kept_until_it_succeeds(db, sched):
    attempts = []

    async def handler(job):
        attempts.append(job.attempts)
        if len(attempts) < 3:
            raise RuntimeError("discord 502")

    sched.register("t", handler)
    await sched.schedule("t", "k", START)
    await sched.drain()
    async with db.read() as conn:
        job = await job_store.get(conn, "k")
    assert attempts == [0] and job is not None and job.attempts == 1
    assert START + backoff(0) / 2 <= job.due_at <= START + backoff(0)  # jittered
    sched.clock.advance(job.due_at - START - timedelta(seconds=1))
    await sched.drain()
    assert attempts == [0]
    sched.clock.advance(timedelta(seconds=1))
    await sched.drain()
    assert attempts == [0, 1]
    sched.clock.advance(backoff(1))
    await sched.drain()
    assert attempts == [0, 1, 2]
    async with db.read() as conn:
        assert await job_store.get(conn, "k") is None


async def test_a_permanent_error_is_not_retried(db, sched):
    calls = []

    async def handler(job):
        calls.append(1)
        raise PermanentJobError("blocked")

    sched.register("t", handler)
    await sched.schedule("t", "k", START)
    await sched.drain()
    sched.clock.advance(timedelta(days=2))
    await sched.drain()
    assert calls == [1]
    async with db.read() as conn:
        assert await job_store.count(conn) == 0


async def test_a_job_re_armed_while_running_is_not_deleted_by_the_old_run(db, sched):
    runs = []

    async def handler(job):
        runs.append(job.due_at)
        await sched.schedule("t", "k", job.due_at + timedelta(days=1))

    sched.register("t", handler)
    await sched.schedule("t", "k", START)
    await sched.drain()
    async with db.read() as conn:
        job = await job_store.get(conn, "k")
    assert runs == [START] and job is not None and job.due_at == START + timedelta(days=1)
    sched.clock.advance(timedelta(days=1))
    await sched.drain()
    assert runs == [START, START + timedelta(days=1)]


# -- the debate-post handler ------------------------------------------------------------------------


class FakeSender:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []  # (nonce, excerpt)
        self.fail_with: Exception | None = None
        self.by_nonce: dict[str, int] = {}

    async def __call__(self, debate, prompt, options, poll_id):
        if self.fail_with is not None:
            exc, self.fail_with = self.fail_with, None
            raise exc
        # Like Discord with enforce_nonce: the same nonce returns the first message.
        if debate.nonce not in self.by_nonce:
            self.sent.append((debate.nonce, debate.excerpt))
            self.by_nonce[debate.nonce] = 1000 + len(self.by_nonce)
        return Delivered(self.by_nonce[debate.nonce])


@pytest.fixture
async def service(db, sched):
    sender = FakeSender()
    svc = DebateService(db, sched.clock, sched, deliver=sender)
    svc.register()
    svc.sender = sender
    return svc


async def setup_schedule(svc, guild_id=1, **over):
    values = {"channel_id": 10, "post_time": "09:00", "timezone": "Europe/London", "weekdays": 0b1111111}
    values.update(over)
    return await svc.setup(guild_id, **values)


async def test_one_post_per_local_day_and_the_next_slot_is_armed(db, service, sched):
    _s, due = await setup_schedule(service)
    assert due == datetime(2026, 3, 2, 9, tzinfo=UTC)
    sched.clock.set(due)
    await sched.drain()
    for _ in range(2):
        sched.clock.advance(timedelta(hours=24))
        await sched.drain()
    assert len(service.sender.sent) == 3
    assert len({e for _n, e in service.sender.sent}) == 3  # three different prompts
    async with db.read() as conn:
        job = await job_store.get(conn, post_key(1))
        rows, total = await debate_store.history(conn, 1, offset=0, limit=10)
    assert total == 3 and {r.slot_date for r in rows} == {"2026-03-02", "2026-03-03", "2026-03-04"}
    assert job.payload == {"slot_date": "2026-03-05"}


async def test_a_retry_after_a_failed_send_reuses_the_nonce_and_posts_once(db, service, sched):
    await setup_schedule(service)
    service.sender.fail_with = RuntimeError("502 after the message was created")
    sched.clock.set(datetime(2026, 3, 2, 9, tzinfo=UTC))
    await sched.drain()
    assert service.sender.sent == []
    sched.clock.advance(backoff(0))
    await sched.drain()
    assert len(service.sender.sent) == 1
    async with db.read() as conn:
        d = await debate_store.get_slot(conn, 1, "2026-03-02")
    assert d.status == "posted" and d.nonce == service.sender.sent[0][0] and len(d.nonce) <= 25


async def test_running_the_same_slot_again_posts_nothing(db, service, sched):
    await setup_schedule(service)
    sched.clock.set(datetime(2026, 3, 2, 9, tzinfo=UTC))
    await sched.drain()
    # Simulate a stale duplicate run of the same slot (e.g. a restart racing the re-arm).
    await sched.schedule("debate-post", post_key(1), sched.clock.now(), {"slot_date": "2026-03-02"}, guild_id=1)
    await sched.drain()
    assert len(service.sender.sent) == 1


async def test_missed_slot_is_posted_within_the_catch_up_window(db, service, sched):
    await setup_schedule(service)
    sched.clock.set(datetime(2026, 3, 2, 11, 59, tzinfo=UTC))  # back 2 h 59 min late
    await sched.drain()
    assert len(service.sender.sent) == 1


async def test_missed_slot_past_the_window_is_skipped_and_noted(db, service, sched):
    await setup_schedule(service)
    sched.clock.set(datetime(2026, 3, 2, 12, 1, tzinfo=UTC))
    await sched.drain()
    assert service.sender.sent == []
    async with db.read() as conn:
        s = await schedule_store.get(conn, 1)
        job = await job_store.get(conn, post_key(1))
    assert "was skipped" in s.last_skip_note and "3-hour catch-up window" in s.last_skip_note
    assert job.payload == {"slot_date": "2026-03-03"}


async def test_blocked_post_blocks_the_schedule_without_a_retry_loop(db, service, sched):
    await setup_schedule(service)
    service.sender.fail_with = Blocked("missing Send Messages in #general")
    sched.clock.set(datetime(2026, 3, 2, 9, tzinfo=UTC))
    await sched.drain()
    sched.clock.advance(timedelta(days=3))
    await sched.drain()
    assert service.sender.sent == []
    async with db.read() as conn:
        s = await schedule_store.get(conn, 1)
        assert await job_store.get(conn, post_key(1)) is None
        d = await debate_store.get_slot(conn, 1, "2026-03-02")
    assert s.blocked_reason == "missing Send Messages in #general"
    assert d.status == "failed"
    due = await service.resume(1)
    assert due == datetime(2026, 3, 6, 9, tzinfo=UTC)
    sched.clock.set(due)
    await sched.drain()
    assert len(service.sender.sent) == 1


async def test_paused_schedule_posts_nothing_until_resumed(db, service, sched):
    await setup_schedule(service)
    await service.pause(1)
    sched.clock.advance(timedelta(days=2))
    await sched.drain()
    assert service.sender.sent == []
    await service.resume(1)
    sched.clock.advance(timedelta(hours=3))
    await sched.drain()
    assert len(service.sender.sent) == 1


async def test_skip_moves_the_next_post_by_one_slot(db, service, sched):
    await setup_schedule(service)
    skipped, due = await service.skip(1)
    assert skipped == "2026-03-02" and due == datetime(2026, 3, 3, 9, tzinfo=UTC)
    sched.clock.set(datetime(2026, 3, 2, 23, tzinfo=UTC))
    await sched.drain()
    assert service.sender.sent == []


async def test_reconcile_arms_missing_jobs_once(db, service, sched):
    for gid in range(1, 51):
        await setup_schedule(service, gid, post_time=f"{gid % 24:02d}:30", timezone="Asia/Kathmandu")
    async with db.write() as conn:
        for gid in range(1, 51):
            await job_store.cancel(conn, post_key(gid))
    assert await service.reconcile() == 50
    assert await service.reconcile() == 0
    async with db.read() as conn:
        assert await job_store.count(conn, "debate-post") == 50
        job = await job_store.get(conn, post_key(9))
    # 09:30 in Kathmandu (UTC+5:45) is 03:45 UTC; it is 06:00 UTC, so tomorrow.
    assert job.due_at == datetime(2026, 3, 3, 3, 45, tzinfo=UTC)


async def test_dst_change_still_gives_one_post_per_local_day(db, service, sched):
    sched.clock.set(datetime(2026, 3, 27, 12, tzinfo=UTC))
    await setup_schedule(service, timezone="Europe/London", post_time="01:30")  # 29 Mar: 01:00->02:00 gap
    for _ in range(4 * 24):
        sched.clock.advance(timedelta(hours=1))
        await sched.drain()
    async with db.read() as conn:
        rows, total = await debate_store.history(conn, 1, offset=0, limit=10)
    assert total == 4
    assert sorted(r.slot_date for r in rows) == ["2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]


async def test_guild_row_is_created_before_the_schedule(db, service):
    await setup_schedule(service, 77)
    async with db.read() as conn:
        assert await guilds.get(conn, 77) is not None


def test_retry_delays_are_jittered_between_half_and_all_of_the_backoff():
    rng = random.Random(1)
    for attempts in range(12):
        delays = [retry_delay(attempts, rng) for _ in range(200)]
        assert all(backoff(attempts) / 2 <= d <= backoff(attempts) for d in delays)
        assert len(set(delays)) == 200  # no two of the 200 retries fall on the same instant
        assert max(delays) - min(delays) > backoff(attempts) / 4


async def test_jobs_failing_together_retry_at_different_times(db, sched):
    async def handler(job):
        raise RuntimeError("discord 503")

    sched.register("t", handler)
    for i in range(30):
        await sched.schedule("t", f"k{i}", START)
    await sched.drain()
    async with db.read() as conn:
        due = [(await job_store.get(conn, f"k{i}")).due_at for i in range(30)]
    assert len(set(due)) == 30
    assert all(START + backoff(0) / 2 <= d <= START + backoff(0) for d in due)
    assert sched.metric_values() == {"commonground_job_retries_total": 30, "commonground_jobs_parked_total": 0}


async def test_a_job_failing_every_time_is_parked_with_its_error_then_rearmed(db, sched, caplog):
    runs = []

    async def handler(job):
        runs.append(job.attempts)
        raise RuntimeError(f"discord 503 #{len(runs)}")

    sched.register("t", handler)
    await sched.schedule("t", "k", START, guild_id=7)
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        await sched.drain()
        for _ in range(job_store.PARK_AFTER + 5):  # more than enough time for every retry, and then some
            sched.clock.advance(backoff(20))
            await sched.drain()
    assert runs == list(range(job_store.PARK_AFTER))  # tried PARK_AFTER times, then never again
    async with db.read() as conn:
        job = await job_store.get(conn, "k")
        parked = await job_store.parked(conn, 7)
        assert await job_store.parked(conn, 8) == []
        assert await job_store.earliest_due(conn) is None  # the dispatcher does not wake for it
    assert job is not None and job.attempts == job_store.PARK_AFTER  # kept, for moderators to see
    assert parked == [(job, f"RuntimeError('discord 503 #{job_store.PARK_AFTER}')")]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "job k (t, guild 7) parked after 10 failed attempts" in errors[0].getMessage()
    assert sched.metric_values() == {
        "commonground_job_retries_total": job_store.PARK_AFTER - 1,
        "commonground_jobs_parked_total": 1,
    }
    # Re-arming (what /schedule resume does for the daily post) clears the count: it runs again.
    await sched.schedule("t", "k", sched.clock.now(), guild_id=7)
    await sched.drain()
    assert runs[-1] == 0 and len(runs) == job_store.PARK_AFTER + 1


async def retry_past_parking(sched) -> None:
    """Run what is due, then move past the longest backoff and run again, two more times than a job may
    fail before it is parked."""
    await sched.drain()
    for _ in range(job_store.PARK_AFTER + 2):
        sched.clock.advance(timedelta(hours=1, seconds=1))
        await sched.drain()


async def test_a_job_waiting_for_a_server_in_an_outage_is_never_parked_and_comes_back_with_it(db, sched):
    """G4: GuildUnavailable retries with backoff but never counts up to parking (an outage can last
    hours); bring_forward runs it at once when the server is back, and leaves parked jobs alone."""
    from bot.scheduler import GuildUnavailable

    available = False
    runs = []

    async def handler(job):
        runs.append(sched.clock.now())
        if not available:
            raise GuildUnavailable("server 7 unavailable")

    sched.register("t", handler)
    await sched.schedule("t", "k", START, {}, guild_id=7)
    await sched.schedule("t", "parked", START + timedelta(days=30), {}, guild_id=7)
    async with db.write() as conn:
        await conn.exec_driver_sql(f"UPDATE jobs SET attempts = {job_store.PARK_AFTER} WHERE key = 'parked'")
    await retry_past_parking(sched)
    async with db.read() as conn:
        waiting = await job_store.get(conn, "k")
    assert len(runs) == job_store.PARK_AFTER + 3 and waiting is not None
    assert waiting.attempts == job_store.PARK_AFTER - 1  # still claimable
    available = True
    assert await sched.bring_forward(7) == 1  # the waiting job, not the parked one
    await sched.drain()
    async with db.read() as conn:
        assert await job_store.get(conn, "k") is None
        assert (await job_store.get(conn, "parked")).attempts == job_store.PARK_AFTER


async def test_a_failure_the_bot_calls_an_outage_is_retried_quietly_and_never_parks(db, sched, caplog):
    """``in_outage`` (the bot's check: a 5xx or a timeout while the job's server is unavailable, G4) turns a
    failure into a quiet wait: one INFO line, no traceback, not counted toward parking. Other servers' failures,
    and the same error once the server is back, take the usual path (a warning, parked after ten)."""
    down = {7}
    sched.in_outage = lambda job, exc: isinstance(exc, TimeoutError) and job.guild_id in down
    runs: Counter[int] = Counter()

    async def handler(job):
        runs[job.guild_id] += 1
        raise TimeoutError

    sched.register("t", handler)
    await sched.schedule("t", "down", START, {}, guild_id=7)
    await sched.schedule("t", "up", START, {}, guild_id=8)
    with caplog.at_level(logging.INFO, logger="bot.scheduler"):
        await retry_past_parking(sched)
    async with db.read() as conn:
        waiting = await job_store.get(conn, "down")
        assert await job_store.parked(conn, 7) == []
        assert len(await job_store.parked(conn, 8)) == 1
    assert runs[7] == job_store.PARK_AFTER + 3 and runs[8] == job_store.PARK_AFTER
    assert waiting is not None and waiting.attempts < job_store.PARK_AFTER
    quiet = [r for r in caplog.records if "job down" in r.getMessage()]
    assert len(quiet) == runs[7] and {r.levelno for r in quiet} == {logging.INFO}
    assert all(r.exc_info is None and "waits for its server (TimeoutError)" in r.getMessage() for r in quiet)
    assert sched.metrics["waited"] == runs[7] and sched.metrics["parked"] == 1


async def test_a_handler_may_settle_its_job_in_its_own_last_transaction(db, sched):
    """``settle`` ends the job inside the handler's transaction (deleted, lease released) and the scheduler
    writes nothing more for it; a handler that raises after settling still takes the failure path, which
    finds the job gone and changes nothing; a re-armed job survives its settle."""
    calls: list[str] = []

    async def settles(job):
        async with db.write() as conn:
            calls.append(job.key)
            if job.key == "again":  # re-armed while it ran: settle keeps it
                await sched.schedule("t", "again", START + timedelta(days=1), {}, conn=conn)
            await sched.settle(conn, job)
        if job.key == "raises":
            raise RuntimeError("after the settle")

    sched.register("t", settles)
    for key in ("plain", "raises", "again"):
        await sched.schedule("t", key, START, {})
    writes = 0
    real_write = db.write

    def counted(**kw):
        nonlocal writes
        writes += 1
        return real_write(**kw)

    db.write = counted
    try:
        await sched.drain()
    finally:
        db.write = real_write
    async with db.read() as conn:
        left = {j.key: j for j in await job_store.due(conn, START + timedelta(days=2), 10)}
    assert sorted(calls) == ["again", "plain", "raises"]
    assert set(left) == {"again"} and left["again"].due_at == START + timedelta(days=1)
    # The claim, three handler transactions, and the failure path's retry + release of "raises" (two, no-ops).
    assert writes == 1 + 3 + 2, writes
    assert sched.metrics["retried"] == 1


async def test_its_own_running_jobs_do_not_send_the_loop_looking_for_dead_lease_owners(db, running, monkeypatch):
    """Another process's lease on a due job makes the loop look for dead owners and wake at its end; the
    leases this scheduler holds on the jobs it is running are not that (the busy hour: every pass of the
    wave re-read the lease owners)."""
    looked: list[int] = []
    real = job_store.live_lease_owners

    async def counted(conn, prefix, *, wall_now):
        looked.append(1)
        return await real(conn, prefix, wall_now=wall_now)

    monkeypatch.setattr(job_store, "live_lease_owners", counted)
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow(job):
        started.set()
        await asyncio.wait_for(finish.wait(), 10)

    running.register("t", slow)
    await running.schedule("t", "long", START, {})
    await asyncio.wait_for(started.wait(), 5)
    looked.clear()
    for i in range(5):  # other jobs armed while it runs: five passes of the loop
        await running.schedule("t", f"later{i}", START + timedelta(hours=1), {})
        await asyncio.sleep(0.05)
    finish.set()
    await asyncio.wait_for(running.wait_idle(), 5)
    assert looked == [], f"{len(looked)} looks for dead owners while only our own job ran"
