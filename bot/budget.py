"""The process's REST budget: a token bucket under Discord's global limit (L1: 50 requests/s per bot,
across all its processes; interaction responses and follow-ups are not counted, I5).

discord.py slows down only *after* a global 429, and every 429 counts toward the invalid-request ban
(L3). So every request that is not an interaction response waits here first. At a busy local time
(09:00 in a popular timezone) the day's posts, yesterday's closes and live edits fall in the same
minute: the bucket spreads them at ``rate`` per second, first come first served.

The rate is a constructor parameter: a cluster of a sharded bot gets its share of the 50/s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

GLOBAL_LIMIT = 50.0  # Discord's requests per second per bot (L1)
DEFAULT_RATE = 40.0  # headroom under it for what is not ours to pace (retries after 5xx, another tool)
EXEMPT_PREFIXES = ("/interactions/", "/webhooks/")  # interaction callbacks and follow-ups (I5)


class RestBudget:
    """A token bucket: ``rate`` requests per second, bursts up to ``burst``; waiters are served in order."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 0 < rate <= GLOBAL_LIMIT:
            raise ValueError(f"rate must be in (0, {GLOBAL_LIMIT}], got {rate}")
        self.rate = rate
        # At most 100 ms worth at once. Discord counts a request when it arrives, and network jitter (80 ms
        # ± 40 ms) can bring requests granted 1.08 s apart into one second: 40/s with a burst of 4 stays
        # at 47 there, a burst of 8 (200 ms worth) reached 51 (tests/unit/test_budget.py).
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.granted = 0
        self.waited = 0.0  # seconds spent waiting, summed over requests

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        """Wait for the next request's turn."""
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in arrival order
            self._refill()
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.rate
                self.waited += wait
                await self._sleep(wait)
                self._refill()
            self._tokens -= 1
            self.granted += 1


def install(http: Any, budget: RestBudget) -> None:
    """Make discord.py's HTTPClient wait for ``budget`` before every request that is not an interaction
    response (``HTTPClient.request`` is the one door every REST call but webhooks goes through)."""
    original = http.request

    async def request(route: Any, **kwargs: Any) -> Any:
        if not route.path.startswith(EXEMPT_PREFIXES):
            await budget.acquire()
        return await original(route, **kwargs)

    http.request = request
