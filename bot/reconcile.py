"""Reconciliation: the database brought back in line with Discord, as clear ordered steps.

It runs on every READY (``on_ready`` can fire more than once, and days can pass between two: G5), and
for one server when a GUILD_CREATE brings back a server the bot had left (a re-invite comes without a
new READY). Steps run one after another, in their order, under one single-flight guard: a READY that
arrives while a run is going waits for it and then runs once more (several such READYs share that one
run), so two runs never interleave. Every step is idempotent.

A step may raise :class:`StopReconciliation` to end the run before the later steps (a guard, e.g. one
that finds the bot connected as another application); any other error is logged and the next step runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# The built-in steps, in order. Guards go before SERVERS; later issues add their steps between these.
SERVERS = 100  # servers joined or left while the bot was offline
SCHEDULES = 200  # daily post jobs (and planned debates) of present servers
POLL_CLOSES = 300  # the close jobs of open polls
NATIVE_VOTERS = 400  # native poll voters re-read (votes cast while the bot was away)

# A step gets the server id for a one-server run (a re-invite), None for a full run.
StepFn = Callable[[int | None], Awaitable[object]]


class StopReconciliation(Exception):
    """Raised by a step (a guard) to end this run before the later steps; ``str()`` says why."""


@dataclass(frozen=True)
class Step:
    order: int
    name: str
    run: StepFn


class Reconciler:
    def __init__(self) -> None:
        self._steps: list[Step] = []
        self._lock = asyncio.Lock()
        self._queued: asyncio.Future[None] | None = None
        self.runs = 0
        self.full_runs_done = 0  # full runs finished (READYs reconciled), for start-up waits and tests
        # (event, step name, guild id or None): "start"/"end" per step, for logs and tests.
        self.history: deque[tuple[str, str, int | None]] = deque(maxlen=1000)

    def add_step(self, name: str, run: StepFn, *, order: int) -> None:
        if any(s.name == name for s in self._steps):
            raise ValueError(f"reconciliation step {name!r} is already registered")
        self._steps.append(Step(order, name, run))
        self._steps.sort(key=lambda s: (s.order, s.name))

    @property
    def busy(self) -> bool:
        return self._lock.locked() or self._queued is not None

    @property
    def steps(self) -> list[str]:
        return [s.name for s in self._steps]

    async def run(self) -> None:
        """A full run, single-flight: callers arriving during a run share the one run queued after it."""
        if self._queued is not None:
            await asyncio.shield(self._queued)
            return
        queued: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued = queued
        try:
            async with self._lock:
                self._queued = None
                try:
                    await self._steps_for(None)
                finally:
                    self.full_runs_done += 1
        finally:
            if self._queued is queued:
                self._queued = None
            if not queued.done():
                queued.set_result(None)

    async def run_for_guild(self, guild_id: int) -> None:
        """The same steps for one server (re-invited), under the same guard."""
        async with self._lock:
            await self._steps_for(guild_id)

    async def _steps_for(self, guild_id: int | None) -> None:
        self.runs += 1
        for step in list(self._steps):
            self.history.append(("start", step.name, guild_id))
            try:
                await step.run(guild_id)
            except StopReconciliation as exc:
                log.warning("reconciliation stopped at step %s: %s", step.name, exc)
                self.history.append(("stop", step.name, guild_id))
                return
            except Exception:
                log.exception("reconciliation step %s failed (guild %s); the next steps still run", step.name, guild_id)
            self.history.append(("end", step.name, guild_id))
