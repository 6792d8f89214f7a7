"""Clocks: the one place the bot asks what time it is, so tests can move time without waiting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ClockListener", "FakeClock", "SystemClock"]

ClockListener = Callable[[datetime], None]
"""Called with the new current time after a `FakeClock` moves."""


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _as_utc(dt: datetime, what: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {dt!r}")
    return dt.astimezone(UTC)


class FakeClock:
    """A clock that only moves when told to; listeners hear every move.

    The scheduler registers a listener (for instance ``event.set``) so it re-checks due jobs the
    moment a test advances time, instead of sleeping on the real clock.
    """

    def __init__(self, start: datetime) -> None:
        self._now = _as_utc(start, "start")
        self._listeners: list[ClockListener] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` (not backwards: use `set` for that) and notify listeners."""
        if delta < timedelta(0):
            raise ValueError(f"advance() needs a non-negative delta, got {delta!r}; use set() to go back")
        return self._move(self._now + delta)

    def set(self, dt: datetime) -> datetime:
        """Jump to ``dt`` (either direction, to simulate clock corrections) and notify listeners."""
        return self._move(_as_utc(dt, "dt"))

    def add_listener(self, callback: ClockListener) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: ClockListener) -> None:
        """Forget ``callback``; removing one that is not registered is a no-op."""
        try:
            self._listeners.remove(callback)
        except ValueError:
            pass

    def _move(self, new_now: datetime) -> datetime:
        self._now = new_now
        # A snapshot, so a listener may add or remove listeners while being called. Every listener
        # is called even if an earlier one fails; the first failure is re-raised afterwards.
        first_error: BaseException | None = None
        for listener in list(self._listeners):
            try:
                listener(new_now)
            except Exception as exc:
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error
        return new_now
