"""The reconciler: steps in order, one run at a time, a guard can stop a run, a failing step does not."""

from __future__ import annotations

import asyncio

import pytest

from bot.reconcile import Reconciler, StopReconciliation


async def test_steps_run_in_order_and_a_failure_does_not_stop_the_next():
    rec = Reconciler()
    seen: list[tuple[str, int | None]] = []

    def step(name: str, fail: bool = False):
        async def run(guild_id: int | None) -> None:
            seen.append((name, guild_id))
            if fail:
                raise RuntimeError("boom")

        return run

    rec.add_step("c", step("c"), order=30)
    rec.add_step("a", step("a", fail=True), order=10)
    rec.add_step("b", step("b"), order=20)
    assert rec.steps == ["a", "b", "c"]
    await rec.run()
    await rec.run_for_guild(7)
    assert seen == [("a", None), ("b", None), ("c", None), ("a", 7), ("b", 7), ("c", 7)]
    assert rec.full_runs_done == 1 and rec.runs == 2
    with pytest.raises(ValueError):
        rec.add_step("a", step("a"), order=1)


async def test_a_guard_stops_the_run():
    rec = Reconciler()
    seen: list[str] = []

    async def guard(_g: int | None) -> None:
        raise StopReconciliation("another application")

    async def later(_g: int | None) -> None:
        seen.append("later")

    rec.add_step("guard", guard, order=1)
    rec.add_step("later", later, order=2)
    await rec.run()
    assert seen == [] and ("stop", "guard", None) in rec.history


async def test_single_flight_callers_during_a_run_share_the_next_one():
    rec = Reconciler()
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def slow(_g: int | None) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    rec.add_step("slow", slow, order=1)
    calls = [asyncio.create_task(rec.run()) for _ in range(4)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert peak == 1
    assert rec.full_runs_done == 2  # the first, then one shared by the three that came during it
