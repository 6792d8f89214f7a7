"""Servers leaving and coming back: a re-invite re-arms the schedule and the close jobs of open polls at
once (G5: no READY follows a GUILD_CREATE), and READY reconciliation runs its steps in order, one run at
a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.storage import polls as poll_store
from tests.harness import Harness
from tests.reliability.support import eventually

STEPS = ["servers", "schedules", "poll-closes", "native-voters"]


def assert_whole_runs_in_order(h: Harness) -> None:
    """The reconciler's history is whole runs one after the other, each with every step in order."""
    history = [(e, n) for e, n, _g in h.bot.reconciler.history]
    per_run = [(e, n) for n in STEPS for e in ("start", "end")]
    assert history and len(history) % len(per_run) == 0, history
    assert history == per_run * (len(history) // len(per_run)), history


async def setup(h: Harness) -> None:
    reply = await h.reply(
        h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "Europe/London"}
    )
    assert "Next post" in reply["data"]["content"], reply


async def job_keys(h: Harness) -> set[str]:
    async with h.db.read() as conn:
        rows = await conn.exec_driver_sql("SELECT key FROM jobs WHERE guild_id = ?", (h.guild.id,))
        return {r[0] for r in rows}


async def open_poll(h: Harness) -> int:
    async with h.db.read() as conn:
        polls = [p for p in await poll_store.open_polls(conn) if p.guild_id == h.guild.id]
    assert len(polls) == 1
    return polls[0].id


async def poll_status(h: Harness, poll_id: int) -> str:
    async with h.db.read() as conn:
        return (await poll_store.get(conn, poll_id)).status


async def leave(h: Harness) -> None:
    h.sandbox.remove_guild(h.guild.id)
    await h.sandbox.wait_for(lambda: h.bot.get_guild(h.guild.id) is None, timeout=10)

    async def only_purge_left() -> bool:
        return await job_keys(h) == {f"purge:{h.guild.id}"}

    await eventually(only_purge_left, timeout=10)


async def test_a_reinvite_rearms_the_schedule_and_the_open_polls_at_once(tmp_path):
    async with Harness(tmp_path) as h:
        await setup(h)
        await h.advance(timedelta(hours=3))  # the first post; its poll is open for 24 hours
        assert len(h.posts()) == 1
        poll_id = await open_poll(h)
        await leave(h)
        readies = h.sandbox.identify_count

        h.sandbox.rejoin_guild(h.guild.id)  # GUILD_CREATE only: no new READY
        await h.sandbox.wait_for(lambda: h.bot.get_guild(h.guild.id) is not None, timeout=10)

        async def rearmed() -> bool:
            keys = await job_keys(h)
            return f"post:{h.guild.id}" in keys and f"poll-close:{poll_id}" in keys

        await eventually(rearmed, timeout=10)
        assert f"purge:{h.guild.id}" not in await job_keys(h)
        assert h.sandbox.identify_count == readies
        await h.advance(timedelta(days=1))
        assert await poll_status(h, poll_id) == "closed"
        assert len(h.posts()) == 2


async def test_reinvited_while_offline_the_ready_steps_run_in_order(tmp_path):
    """The server comes back in READY: the servers step marks it present before the schedule and poll
    steps look for what to arm (steps racing each other would skip it until the next READY)."""
    async with Harness(tmp_path) as h:
        await setup(h)
        await h.advance(timedelta(hours=3))
        poll_id = await open_poll(h)
        await leave(h)
        await h.stop_bot()
        h.sandbox.rejoin_guild(h.guild.id)
        await h.start_bot()

        async def idle() -> bool:
            return not h.bot.reconciler.busy

        await eventually(idle, timeout=10)
        keys = await job_keys(h)
        assert f"post:{h.guild.id}" in keys and f"poll-close:{poll_id}" in keys, keys
        assert_whole_runs_in_order(h)
        assert any(g is None for _e, _n, g in h.bot.reconciler.history), "a full run on READY"
        await h.advance(timedelta(days=1))
        assert await poll_status(h, poll_id) == "closed"
        assert len(h.posts()) == 2


async def test_two_readies_never_run_reconciliation_twice_at_once(tmp_path):
    async with Harness(tmp_path) as h:
        await setup(h)
        rec = h.bot.reconciler
        runs, done = rec.runs, rec.full_runs_done
        rec.history.clear()

        def reconcile_tasks() -> list[asyncio.Task]:
            return [t for t in asyncio.all_tasks() if t.get_name() == "discord.py: on_reconcile" and not t.done()]

        async def started() -> bool:
            return rec.full_runs_done > done or rec.busy

        async def settled(n: int) -> bool:
            return rec.full_runs_done >= n and not reconcile_tasks() and not rec.busy

        # An invalid session: a new READY; a second one while (or after) its reconciliation runs.
        await h.sandbox.invalidate_session()
        await eventually(started, timeout=10)
        await h.sandbox.invalidate_session()
        await eventually(lambda: settled(done + 2), timeout=15)
        # Three READYs at once: one run, and the two that arrive during it share the one run after it.
        before = rec.full_runs_done
        for _ in range(3):
            h.bot.dispatch("reconcile")
        await eventually(lambda: settled(before + 2), timeout=15)
        assert rec.full_runs_done == before + 2
        assert rec.runs > runs
        assert_whole_runs_in_order(h)
