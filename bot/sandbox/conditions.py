"""Real-world conditions for the sandbox: network latency with jitter, Discord's clock offset from the
host's, Discord's rate limits and its invalid-request ban. All off by default except the ban counter
(Discord applies it to every bot); :meth:`Conditions.realistic` switches everything on at once.

    Sandbox(conditions=Conditions(latency=(0.080, 0.040), skew=-2.0, rate_limits=True, seed=7))
    Sandbox(conditions=Conditions.realistic(seed=7))
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Conditions:
    """How far the sandbox is from localhost.

    - ``latency`` — ``(mean, jitter)`` seconds of **one-way** network delay, each sample uniform in
      ``[mean - jitter, mean + jitter]`` (never below 0). A REST call pays it twice (the request's trip,
      after which Discord acts and its rate limits and deadlines are measured, and the answer's trip); a
      gateway frame once, in order. ``None``: no delay.
    - ``skew`` — seconds Discord's clock is ahead of the host's (negative: behind; a host clock 2 s fast is
      ``skew=-2``). Snowflakes, timestamps, ``X-RateLimit-Reset``, the ``Date`` header and native poll
      expiry carry Discord's clock. Deadlines (3 s to answer, 15 min token) are durations on Discord's
      clock, counted from when Discord created the interaction, so the host's offset cannot stretch them.
    - ``rate_limits`` — per-route buckets (:data:`bot.sandbox.ratelimits.ROUTE_BUCKETS`) and the global
      ``global_limit`` requests per second, with Discord's headers and 429s. ``window_scale`` multiplies
      every per-route window (tests may shorten 5 s to 0.5 s; the limits and the global second stay).
    - ``invalid_limit`` / ``invalid_window`` — Discord's invalid-request ban: that many 401/403/429
      (shared-scope 429s excepted) within the window bans the host for ``ban_seconds`` (``None``: until
      :meth:`~bot.sandbox.Sandbox.lift_ban`). ``invalid_limit=None`` turns the counter off.
    - ``seed`` — the latency samples come from ``random.Random(seed)``: the same seed, the same sequence.
    """

    latency: tuple[float, float] | None = None
    skew: float = 0.0
    rate_limits: bool = False
    global_limit: int = 50
    window_scale: float = 1.0
    invalid_limit: int | None = 10_000
    invalid_window: float = 600.0
    ban_seconds: float | None = 3600.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency is not None:
            mean, jitter = self.latency
            if mean < 0 or jitter < 0:
                raise ValueError(f"latency needs a mean and a jitter >= 0, got {self.latency!r}")
        if self.global_limit < 1 or self.window_scale <= 0:
            raise ValueError("global_limit must be >= 1 and window_scale > 0")
        if self.invalid_limit is not None and self.invalid_limit < 1:
            raise ValueError("invalid_limit must be >= 1 (or None to switch the counter off)")

    @classmethod
    def realistic(cls, *, seed: int = 0, skew: float = -2.0, **overrides: Any) -> Conditions:
        """Discord as a busy bot meets it: 80 ms ± 40 ms each way, the host clock 2 s fast (Discord's
        clock 2 s behind), real per-route buckets and the global 50/s, the 10,000 / 10 min ban."""
        return replace(cls(latency=(0.080, 0.040), skew=skew, rate_limits=True, seed=seed), **overrides)


class Clocks:
    """Discord's side of time for one sandbox: its wall clock (host wall clock + skew) and the latency
    sampler. Monotonic time is shared with the host (an offset does not change durations)."""

    def __init__(self, conditions: Conditions) -> None:
        self.use(conditions)

    def use(self, conditions: Conditions) -> None:
        """Switch to ``conditions``; the latency samples restart from its seed."""
        self.conditions = conditions
        self._rng = random.Random(conditions.seed)

    @property
    def skew(self) -> float:
        return self.conditions.skew

    def wall(self) -> float:
        """Discord's epoch seconds."""
        return time.time() + self.conditions.skew

    def now(self) -> dt.datetime:
        """Discord's wall clock as an aware datetime."""
        return dt.datetime.fromtimestamp(self.wall(), dt.UTC)

    def delay(self) -> float:
        """One one-way latency sample in seconds (0 when latency is off)."""
        lat = self.conditions.latency
        if lat is None:
            return 0.0
        mean, jitter = lat
        return max(0.0, mean + self._rng.uniform(-jitter, jitter)) if jitter else mean
