"""How old an interaction really is, when the host's clock is off from Discord's and the network adds
latency (I3), and how many follow-ups to keep in flight for the measured round trip.

An interaction's id is a snowflake stamped by Discord's clock. ``observed = host_now - snowflake_time``
is its true age plus the host clock's offset. The offset is estimated as the smallest ``observed`` of
recent interactions, less the network's one-way delay (half the smallest measured round trip): the
least-delayed interaction is the one that shows the offset best. Pure arithmetic: callers pass in the
readings (seconds), so tests drive it with any skew and latency they like.

A step of the host's wall clock (NTP correcting it by seconds) changes every later reading by the step;
a window of readings from before it would hold the old offset for its next 512 interactions, taking
each click for that much older (or younger) than it is. Callers pass the wall clock's distance from the
monotonic clock with each reading (``drift``), which a step moves by exactly the step: readings are kept
net of it, so the estimate follows a step at once.
"""

from __future__ import annotations

import math
from collections import deque

DEADLINE = 3.0  # Discord: the first answer must arrive within 3 s of the interaction's creation (I1)
TOKEN_TTL = 900.0  # Discord: the interaction token (follow-ups) lives 15 minutes (I1)
TOKEN_MARGIN = 30.0  # stop sending follow-ups this long before the token expires
DEFAULT_RTT = 0.1  # assumed round trip before anything was measured
WINDOW = 512  # recent interactions over which the offset is the minimum (a calm moment among them)
RTT_WINDOW = 256


class WindowMin:
    """The minimum of the last ``size`` readings in O(1) per reading (a monotonic queue), instead of a
    ``min()`` over the whole window several times per click."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen = 0
        self._mins: deque[tuple[int, float]] = deque()  # (reading number, value), values increasing

    def add(self, value: float) -> None:
        while self._mins and self._mins[-1][1] >= value:
            self._mins.pop()
        self._mins.append((self._seen, value))
        self._seen += 1
        if self._mins[0][0] <= self._seen - 1 - self.size:
            self._mins.popleft()

    def __bool__(self) -> bool:
        return bool(self._mins)

    @property
    def value(self) -> float:
        return self._mins[0][1]


class InteractionTiming:
    """Skew- and latency-corrected interaction ages, and a follow-up concurrency from measured RTT."""

    def __init__(self, *, window: int = WINDOW, rtt_window: int = RTT_WINDOW) -> None:
        self._observed = WindowMin(window)  # readings net of the drift at their time
        self._rtt_min = WindowMin(rtt_window)
        self._drift = 0.0  # the wall clock's distance from the monotonic clock at the latest reading

    # -- readings -----------------------------------------------------------------------------------

    def observe(self, observed: float, *, drift: float = 0.0) -> float:
        """Record ``host_now - snowflake_time`` of an interaction at its arrival; return its age estimate.
        ``drift``: the host's wall clock less its monotonic clock when ``host_now`` was read."""
        self._drift = drift
        self._observed.add(observed - drift)
        return self.age(observed)

    def round_trip(self, seconds: float) -> None:
        """Record the round trip of an interaction response or follow-up."""
        if seconds >= 0 and math.isfinite(seconds):
            self._rtt_min.add(seconds)

    # -- estimates ----------------------------------------------------------------------------------

    @property
    def one_way(self) -> float:
        """The network's one-way delay: half the smallest recent round trip."""
        return (self._rtt_min.value if self._rtt_min else DEFAULT_RTT) / 2

    @property
    def offset(self) -> float:
        """How far the host's clock is ahead of Discord's (negative: behind)."""
        if not self._observed:
            return 0.0
        return self._observed.value + self._drift - self.one_way

    def age(self, observed: float) -> float:
        """The interaction's true age, in seconds, when ``observed`` was read (never below one way)."""
        return max(self.one_way, observed - self.offset)

    def time_left(self, age: float) -> float:
        """Seconds left to *send* the first answer so it arrives before Discord's deadline."""
        return DEADLINE - age - self.one_way

    def token_left(self, age: float) -> float:
        """Seconds left to send follow-ups with the interaction's token (a margin before 15 min)."""
        return TOKEN_TTL - TOKEN_MARGIN - age - self.one_way

    def followup_concurrency(self, target_per_second: float, *, low: int = 16, high: int = 256) -> int:
        """Follow-ups in flight for ``target_per_second`` at the network's round trip (Little's law).

        The smallest recent round trip, not the median: a busy event loop lengthens every round trip it
        measures, and answering that with more requests in flight would crowd out new clicks' first
        answers (F6); the network's share is what more concurrency can hide."""
        return max(low, min(high, math.ceil(target_per_second * 2 * self.one_way)))
