"""Small helpers shared by the sandbox modules: snowflakes, timestamps, Discord error bodies."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable
from typing import Any

DISCORD_EPOCH_MS = 1420070400000


class SnowflakeFactory:
    """Strictly increasing, time-based snowflakes (so ids sort like Discord's), on ``wall`` (epoch
    seconds; Discord's clock, which may be offset from the host's)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._last = 0
        self._inc = itertools.count()
        self._wall = wall

    def __call__(self) -> int:
        ms = int(self._wall() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (next(self._inc) & 0xFFF)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value


def iso(when: dt.datetime | None = None) -> str:
    """Discord's ISO-8601 timestamp with a +00:00 offset."""
    when = when or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat()


def snowflake_time(snowflake: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, dt.UTC)


class DiscordHTTPError(Exception):
    """Raised inside a handler to answer with Discord's JSON error shape."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors:
            self.body["errors"] = errors


def not_found(code: int = 0, message: str | None = None) -> DiscordHTTPError:
    names = {
        0: "404: Not Found",
        10003: "Unknown Channel",
        10004: "Unknown Guild",
        10007: "Unknown Member",
        10008: "Unknown Message",
        10011: "Unknown Role",
        10013: "Unknown User",
        10015: "Unknown Webhook",
        10062: "Unknown interaction",
        10063: "Unknown application command",
        10070: "Unknown Guild Scheduled Event",
    }
    return DiscordHTTPError(404, code, message or names.get(code, "Not Found"))


def forbidden(code: int = 50013, message: str | None = None) -> DiscordHTTPError:
    names = {
        50001: "Missing Access",
        50005: "Cannot edit a message authored by another user",
        50013: "Missing Permissions",
    }
    return DiscordHTTPError(403, code, message or names.get(code, "Forbidden"))


def invalid_form(errors: dict[str, Any]) -> DiscordHTTPError:
    return DiscordHTTPError(400, 50035, "Invalid Form Body", errors)
