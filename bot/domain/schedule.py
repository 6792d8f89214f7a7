"""Schedules: parsing what moderators type, and the next-run maths in their local timezone.

Gap and fold rule (one rule everywhere: `slot_for_date`, `next_slot`, `parse_local_datetime`):

* A local time that does not exist (a DST gap, e.g. 02:30 in New York on the spring-forward day)
  is read with the offset in force *before* the change (PEP 495 ``fold=0``), which lands the
  same length of time after the gap: 02:30 New York -> 03:30 EDT (07:30 UTC); 02:15 Lord Howe
  (a 30-minute gap) -> 02:45.
* A local time that occurs twice (a DST fold, e.g. 01:30 in New York on the fall-back day) means
  its *first* occurrence (``fold=0``, still on summer time).
* Every local date therefore has exactly one slot. Its instant can fall on the next local date
  when a gap crosses midnight (Nuuk: 23:30 on 2026-03-28 posts at 00:30 on the 29th); it still
  belongs to the 28th. A date removed from the calendar (Samoa skipped 2011-12-30) shares its
  instant with the next date; `next_slot` and `slots_between` yield that instant once.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = [
    "CATCH_UP_DEFAULT",
    "MAX_AHEAD",
    "ScheduleInputError",
    "Slot",
    "catch_up_decision",
    "describe_relative",
    "format_days",
    "next_slot",
    "parse_days",
    "parse_local_datetime",
    "parse_time",
    "parse_timezone",
    "slot_for_date",
    "slots_between",
    "timezone_choices",
]

CATCH_UP_DEFAULT = timedelta(hours=3)
"""A slot missed while the bot was down is still posted if the bot is back within this long."""

MAX_AHEAD = timedelta(days=366)
"""How far ahead a one-off debate may be planned."""

_SHOWN_MAX = 60  # characters of user input echoed back in an error message
_INPUT_MAX = 200  # longer input is refused before any parsing


class ScheduleInputError(ValueError):
    """Bad schedule input; ``str(error)`` is a safe message for the user that says how to fix it."""

    @property
    def message(self) -> str:
        return str(self)


# --------------------------------------------------------------------------- echoing user input


def _shown(text: str) -> str:
    """User input made safe to quote inside inline code: at most 60 characters, nothing that escapes.

    Control and format characters (NUL, RTL override, zero-width) are dropped, backticks become
    quotes so the code span cannot be closed, ``@`` cannot ping, and long input is cut with "…".
    """
    cleaned = "".join(ch for ch in text if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
    cleaned = cleaned.replace("`", "'").replace("@", "@\u2060")
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > _SHOWN_MAX:
        cleaned = cleaned[: _SHOWN_MAX - 1] + "…"
    return f"`{cleaned}`" if cleaned else "(blank)"


def _has_non_ascii_digit(text: str) -> bool:
    return any(ch.isdigit() and not ch.isascii() for ch in text)


# --------------------------------------------------------------------------- times

_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})", re.ASCII)
_TIME_HELP = "use 24-hour HH:MM, like 09:30 or 18:00"


def parse_time(text: str) -> time:
    """Parse a 24-hour ``HH:MM`` time ("9:30" and "09:30" both work); refuse anything else."""
    stripped = (text or "").strip()
    if not stripped:
        raise ScheduleInputError(f"The time is empty: {_TIME_HELP}.")
    if len(stripped) > _INPUT_MAX:
        raise ScheduleInputError(f"{_shown(stripped)} is too long to be a time: {_TIME_HELP}.")
    if _has_non_ascii_digit(stripped) or "：" in stripped:
        raise ScheduleInputError(
            f"{_shown(stripped)} uses non-ASCII digits or colon: type the time with the ordinary "
            f"digits 0-9 and ':', like 09:30."
        )
    match = _TIME_RE.fullmatch(stripped)
    if match is None:
        if re.fullmatch(r"\d{1,2}:\d{2}:\d{2}", stripped, re.ASCII):
            hint = "seconds aren't used"
        elif re.search(r"[ap]\.?m\.?$", stripped, re.IGNORECASE):
            hint = "am/pm isn't used (9 pm is 21:00)"
        elif re.fullmatch(r"\d{1,4}", stripped, re.ASCII):
            hint = "minutes are needed (7 o'clock is 07:00)"
        else:
            hint = "it isn't in HH:MM form"
        raise ScheduleInputError(f"{_shown(stripped)} isn't a time I understand ({hint}): {_TIME_HELP}.")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23:
        raise ScheduleInputError(f"{_shown(stripped)} isn't a time: hours go from 00 to 23; {_TIME_HELP}.")
    if minute > 59:
        raise ScheduleInputError(f"{_shown(stripped)} isn't a time: minutes go from 00 to 59; {_TIME_HELP}.")
    return time(hour, minute)


# --------------------------------------------------------------------------- weekdays

_DAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_WORDS: dict[str, int] = {}
for _index, _names in enumerate(
    (
        ("mon", "monday"),
        ("tue", "tues", "tuesday"),
        ("wed", "weds", "wednesday"),
        ("thu", "thur", "thurs", "thursday"),
        ("fri", "friday"),
        ("sat", "saturday"),
        ("sun", "sunday"),
    )
):
    for _name in _names:
        _DAY_WORDS[_name] = _index
_ALL_DAYS = frozenset(range(7))
_DAY_GROUPS: dict[str, frozenset[int]] = {
    "daily": _ALL_DAYS,
    "everyday": _ALL_DAYS,
    "every_day": _ALL_DAYS,
    "all": _ALL_DAYS,
    "weekdays": frozenset(range(5)),
    "weekday": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    "weekend": frozenset({5, 6}),
}
_DAYS_HELP = (
    "use day names (mon, tue, … sun), ranges like mon-fri or fri-mon, lists like mon,wed,fri, "
    "or weekdays, weekends, daily"
)


def _day_index(word: str, original: str) -> int:
    if word in _DAY_WORDS:
        return _DAY_WORDS[word]
    if word.endswith("s") and word[:-1] in _DAY_WORDS:  # "mondays"
        return _DAY_WORDS[word[:-1]]
    if word == "":
        raise ScheduleInputError(f"{_shown(original)} has a range with a missing end: {_DAYS_HELP}.")
    close = difflib.get_close_matches(word, [*_DAY_WORDS, *_DAY_GROUPS], n=1, cutoff=0.75)
    hint = f" (did you mean {close[0].replace('_', ' ')}?)" if close else ""
    raise ScheduleInputError(f"{_shown(word)} isn't a day{hint}: {_DAYS_HELP}.")


def parse_days(text: str | None) -> frozenset[int]:
    """Parse weekdays (0 = Monday … 6 = Sunday); ``None`` means every day."""
    if text is None:
        return _ALL_DAYS
    stripped = text.strip()
    if not stripped:
        raise ScheduleInputError(f"The days are empty: {_DAYS_HELP}.")
    if len(stripped) > _INPUT_MAX:
        raise ScheduleInputError(f"{_shown(stripped)} is too long for a list of days: {_DAYS_HELP}.")
    normal = stripped.casefold()
    normal = re.sub(r"\s*[-–—]\s*", "-", normal)  # "mon - fri", and our own "Mon–Fri"
    normal = re.sub(r"\bevery\s+day\b", "every_day", normal)
    days: set[int] = set()
    for token in re.split(r"[,;/\s]+|\band\b", normal):
        if not token:
            continue
        if token in _DAY_GROUPS:
            days |= _DAY_GROUPS[token]
            continue
        if "-" in token:
            parts = token.split("-")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise ScheduleInputError(f"{_shown(token)} isn't a range: give both ends, like mon-fri; {_DAYS_HELP}.")
            first, last = _day_index(parts[0], token), _day_index(parts[1], token)
            # Ranges wrap past Sunday: fri-mon is Fri, Sat, Sun, Mon.
            days.update((first + step) % 7 for step in range((last - first) % 7 + 1))
            continue
        days.add(_day_index(token, stripped))
    if not days:
        raise ScheduleInputError(f"{_shown(stripped)} names no days: {_DAYS_HELP}.")
    return frozenset(days)


def format_days(days: Iterable[int]) -> str:
    """Render weekdays compactly: "Daily", "Mon–Fri", "Sat, Sun", "Fri–Mon", "Mon, Wed, Fri"."""
    chosen = frozenset(days)
    if not chosen <= _ALL_DAYS:
        raise ValueError(f"weekdays are 0..6, got {sorted(chosen)!r}")
    if not chosen:
        return "No days"
    if chosen == _ALL_DAYS:
        return "Daily"
    # Cyclic runs, so a run may wrap past Sunday; runs of three or more become ranges.
    items: list[tuple[int, str]] = []
    for start in sorted(chosen):
        if (start - 1) % 7 in chosen:
            continue
        length = 1
        while (start + length) % 7 in chosen:
            length += 1
        if length >= 3:
            items.append((start, f"{_DAY_ABBR[start]}–{_DAY_ABBR[(start + length - 1) % 7]}"))
        else:
            items.extend(((start + i) % 7, _DAY_ABBR[(start + i) % 7]) for i in range(length))
    return ", ".join(label for _, label in sorted(items))


# --------------------------------------------------------------------------- timezones

_NOT_ZONES = frozenset({"Factory", "localtime", "posixrules"})
_COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/Mexico_City",
    "America/Toronto",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Honolulu",
)
# A real place per UTC offset (minutes), for "UTC+5"-style input; fixed Etc zones cover whole hours.
_OFFSET_EXAMPLES = {
    -660: "Pacific/Pago_Pago",
    -600: "Pacific/Honolulu",
    -570: "Pacific/Marquesas",
    -540: "America/Anchorage",
    -480: "America/Los_Angeles",
    -420: "America/Denver",
    -360: "America/Chicago",
    -300: "America/New_York",
    -240: "America/Halifax",
    -210: "America/St_Johns",
    -180: "America/Sao_Paulo",
    -120: "America/Noronha",
    -60: "Atlantic/Azores",
    0: "Europe/London",
    60: "Europe/Paris",
    120: "Europe/Athens",
    180: "Europe/Moscow",
    210: "Asia/Tehran",
    240: "Asia/Dubai",
    270: "Asia/Kabul",
    300: "Asia/Karachi",
    330: "Asia/Kolkata",
    345: "Asia/Kathmandu",
    360: "Asia/Dhaka",
    390: "Asia/Yangon",
    420: "Asia/Bangkok",
    480: "Asia/Singapore",
    525: "Australia/Eucla",
    540: "Asia/Tokyo",
    570: "Australia/Darwin",
    600: "Australia/Brisbane",
    630: "Australia/Lord_Howe",
    660: "Pacific/Noumea",
    720: "Pacific/Auckland",
    765: "Pacific/Chatham",
    780: "Pacific/Tongatapu",
    840: "Pacific/Kiritimati",
}
_OFFSET_RE = re.compile(r"(?:utc|gmt|z)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.ASCII | re.IGNORECASE)
_TZ_HELP = "use an IANA name like Europe/London or America/New_York (pick one from the list as you type)"


@functools.cache
def _zone_names() -> dict[str, str]:
    """casefolded name -> canonical IANA name, for every zone the system knows."""
    return {name.casefold(): name for name in available_timezones() if name not in _NOT_ZONES}


@functools.cache
def _choice_index() -> tuple[tuple[str, str, str], ...]:
    """(name, casefolded name, casefolded last part) for autocomplete, sorted by name."""
    names = [
        name
        for name in _zone_names().values()
        if name == "UTC" or ("/" in name and not name.startswith(("posix/", "right/", "SystemV/")))
    ]
    return tuple((name, name.casefold(), name.rsplit("/", 1)[-1].casefold()) for name in sorted(names))


def _offset_minutes(text: str) -> int | None:
    match = _OFFSET_RE.fullmatch(text.strip())
    if match is None:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if hours > 14 or minutes > 59:
        return None
    total = hours * 60 + minutes
    return -total if sign == "-" else total


def _offset_suggestions(minutes: int) -> list[str]:
    found = []
    if minutes in _OFFSET_EXAMPLES:
        found.append(_OFFSET_EXAMPLES[minutes])
    if minutes % 60 == 0 and -12 <= minutes // 60 <= 14:
        hours = minutes // 60
        # POSIX reverses the sign in the Etc area: Etc/GMT-5 is five hours *ahead* of UTC.
        found.append("Etc/UTC" if hours == 0 else f"Etc/GMT{-hours:+d}")
    return found


def parse_timezone(text: str) -> ZoneInfo:
    """Return the zone for an IANA name (case-insensitive); anything else is refused with hints.

    The input is only ever compared against ``available_timezones()``; it never reaches the
    filesystem, so paths such as ``../../etc/passwd`` cannot be probed.
    """
    stripped = (text or "").strip()
    if not stripped:
        raise ScheduleInputError(f"The timezone is empty: {_TZ_HELP}.")
    if len(stripped) > 64:
        raise ScheduleInputError(f"{_shown(stripped)} is too long to be a timezone name: {_TZ_HELP}.")
    key = "_".join(stripped.split()).casefold()
    canonical = _zone_names().get(key)
    if canonical is not None:
        try:
            return ZoneInfo(canonical)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # listed but unreadable: treat as unknown
            pass
    offset = _offset_minutes(stripped)
    if offset is not None:
        suggestions = _offset_suggestions(offset)
        if suggestions:
            fixed = next((s for s in suggestions if s.startswith("Etc/")), None)
            place = next((s for s in suggestions if not s.startswith("Etc/")), None)
            parts = []
            if place:
                parts.append(f"a place such as {place} (it follows that place's daylight saving, if any)")
            if fixed:
                sign_note = "" if fixed == "Etc/UTC" else "; the Etc sign is reversed on purpose"
                parts.append(f"the fixed offset {fixed}{sign_note}")
            raise ScheduleInputError(
                f"{_shown(stripped)} is an offset, not a timezone name: use " + " or ".join(parts) + "."
            )
        raise ScheduleInputError(f"{_shown(stripped)} is not an offset any timezone uses: {_TZ_HELP}.")
    close = _close_zone_names(key)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ScheduleInputError(f"{_shown(stripped)} isn't a timezone I know: {_TZ_HELP}.{hint}")


def _close_zone_names(key: str, n: int = 3) -> list[str]:
    names = _zone_names()
    found = difflib.get_close_matches(key, list(names), n=n, cutoff=0.75)
    if not found:
        # "london" or "new york": match the city part alone.
        cities: dict[str, str] = {}
        for _name, folded, city in _choice_index():
            cities.setdefault(city, folded)
        found = [cities[c] for c in difflib.get_close_matches(key, list(cities), n=n, cutoff=0.75)]
    return [names[f] for f in found]


def timezone_choices(query: str, limit: int = 25) -> list[str]:
    """Autocomplete: city-part prefix matches first, then name prefix, then substring; ≤ ``limit``."""
    limit = max(0, min(limit, 25))
    key = "_".join((query or "").split()).casefold()
    if not key:
        return [z for z in _COMMON_ZONES if z.casefold() in _zone_names()][:limit]
    if len(key) > 100:
        return []
    offset = _offset_minutes(key)
    if offset is not None:
        return [z for z in _offset_suggestions(offset) if z.casefold() in _zone_names()][:limit]
    common = {z: i for i, z in enumerate(_COMMON_ZONES)}
    city_prefix: list[str] = []
    name_prefix: list[str] = []
    substring: list[str] = []
    for name, folded, city in _choice_index():
        if city.startswith(key):
            city_prefix.append(name)
        elif folded.startswith(key):
            name_prefix.append(name)
        elif key in folded:
            substring.append(name)
    ranked: list[str] = []
    for group in (city_prefix, name_prefix, substring):
        ranked.extend(sorted(group, key=lambda z: (common.get(z, len(common)), z)))
        if len(ranked) >= limit:
            break
    return [z for z in ranked[:limit] if len(z) <= 100]


# --------------------------------------------------------------------------- slots


@dataclass(frozen=True)
class Slot:
    """One scheduled post: the local day it belongs to and the UTC instant it is due."""

    local_date: date
    due_utc: datetime

    def __post_init__(self) -> None:
        if self.due_utc.tzinfo is None or self.due_utc.utcoffset() != timedelta(0):
            raise ValueError(f"Slot.due_utc must be aware UTC, got {self.due_utc!r}")


def _require_utc(dt: datetime, what: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {dt!r}")
    return dt.astimezone(UTC)


def _local_to_utc(local_date: date, at: time, tz: ZoneInfo) -> datetime:
    # fold=0 gives both halves of the documented rule: in a gap the pre-transition offset (so the
    # post lands the gap's length later), in a fold the first occurrence.
    wall = datetime.combine(local_date, at.replace(tzinfo=None, fold=0), tzinfo=tz)
    return wall.astimezone(UTC)


def slot_for_date(local_date: date, at: time, tz: ZoneInfo) -> Slot:
    """The slot for ``local_date`` at wall time ``at`` in ``tz`` (gap/fold rule: see module doc)."""
    return Slot(local_date, _local_to_utc(local_date, at, tz))


def _check_days(days: frozenset[int]) -> frozenset[int]:
    chosen = frozenset(days)
    if not chosen or not chosen <= _ALL_DAYS:
        raise ValueError(f"days must be a non-empty subset of 0..6, got {sorted(chosen)!r}")
    return chosen


def next_slot(after_utc: datetime, at: time, tz: ZoneInfo, days: frozenset[int]) -> Slot:
    """The first slot on a chosen weekday with ``due_utc > after_utc``."""
    after = _require_utc(after_utc, "after_utc")
    chosen = _check_days(days)
    # Start a day early: a slot pushed past midnight by a gap can belong to the previous date.
    day = after.astimezone(tz).date() - timedelta(days=1)
    for _ in range(16):
        if day.weekday() in chosen:
            slot = slot_for_date(day, at, tz)
            if slot.due_utc > after:
                return slot
        day += timedelta(days=1)
    raise ValueError(f"no slot found within 16 days after {after.isoformat()} in {tz.key}")


def slots_between(start_utc: datetime, end_utc: datetime, at: time, tz: ZoneInfo, days: frozenset[int]) -> list[Slot]:
    """Slots with ``start_utc < due_utc <= end_utc``, in order; the same ones `next_slot` steps through."""
    start = _require_utc(start_utc, "start_utc")
    end = _require_utc(end_utc, "end_utc")
    chosen = _check_days(days)
    found: list[Slot] = []
    if end <= start:
        return found
    day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    last_due = start
    while day <= last_day:
        if day.weekday() in chosen:
            slot = slot_for_date(day, at, tz)
            # Strictly after the previous one: a date removed from the calendar (Samoa, 2011)
            # would otherwise share an instant with the next date.
            if last_due < slot.due_utc <= end:
                found.append(slot)
                last_due = slot.due_utc
        day += timedelta(days=1)
    return found


def catch_up_decision(slot: Slot, now_utc: datetime, window: timedelta = CATCH_UP_DEFAULT) -> Literal["post", "skip"]:
    """After downtime: post a missed slot if it is at most ``window`` late, else skip it."""
    if window < timedelta(0):
        raise ValueError(f"window must not be negative, got {window!r}")
    now = _require_utc(now_utc, "now_utc")
    return "post" if now - slot.due_utc <= window else "skip"


# --------------------------------------------------------------------------- one-off debates

_WHEN_HELP = "write a date and time like 2026-12-01 18:30, or tomorrow 18:30, or just 18:30 for today"
_WHEN_RE = re.compile(
    r"(?:(?P<date>\d{4}-\d{2}-\d{2})|(?P<word>today|tomorrow))?(?:\s+|(?<=\d)t)?(?P<time>\S+)?",
    re.ASCII | re.IGNORECASE,
)


def parse_local_datetime(text: str, tz: ZoneInfo, now_utc: datetime) -> datetime:
    """Parse a one-off debate time in ``tz``; returns aware UTC, strictly after now, within a year."""
    now = _require_utc(now_utc, "now_utc")
    stripped = " ".join((text or "").split())
    if not stripped:
        raise ScheduleInputError(f"The date and time are empty: {_WHEN_HELP}.")
    if len(stripped) > _INPUT_MAX:
        raise ScheduleInputError(f"{_shown(stripped)} is too long: {_WHEN_HELP}.")
    if _has_non_ascii_digit(stripped):
        raise ScheduleInputError(f"{_shown(stripped)} uses non-ASCII digits: type 0-9; {_WHEN_HELP}.")
    match = _WHEN_RE.fullmatch(stripped)
    if match is None:
        raise ScheduleInputError(f"{_shown(stripped)} isn't understood: {_WHEN_HELP}.")
    if match.group("time") is None:
        raise ScheduleInputError(f"{_shown(stripped)} has no time of day: {_WHEN_HELP}.")
    at = parse_time(match.group("time"))
    today = now.astimezone(tz).date()
    if match.group("date"):
        try:
            local_date = date.fromisoformat(match.group("date"))
        except ValueError:
            raise ScheduleInputError(
                f"{_shown(match.group('date'))} isn't a calendar date: use YYYY-MM-DD, like 2026-12-01."
            ) from None
    elif (match.group("word") or "").casefold() == "tomorrow":
        local_date = today + timedelta(days=1)
    else:
        local_date = today
    due = _local_to_utc(local_date, at, tz)
    if due <= now:
        local_now = now.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        if match.group("date") is None and local_date == today:
            raise ScheduleInputError(
                f"{at:%H:%M} today has already passed (it is {local_now} in {tz.key}): "
                f"write tomorrow {at:%H:%M}, or a date like {today + timedelta(days=1)} {at:%H:%M}."
            )
        raise ScheduleInputError(
            f"{_shown(stripped)} is in the past (it is {local_now} in {tz.key}): pick a time ahead."
        )
    if due - now > MAX_AHEAD:
        raise ScheduleInputError(
            f"{_shown(stripped)} is more than a year ahead: pick a time within the next 12 months."
        )
    return due


def describe_relative(delta: timedelta) -> str:
    """A rounded human phrase for a time difference: "in 3 hours", "in 2 days", "5 minutes ago"."""
    seconds = delta.total_seconds()
    size = abs(seconds)
    if size < 60:
        return "in under a minute" if seconds >= 0 else "under a minute ago"

    def rounded(unit: float) -> int:
        return int(size / unit + 0.5)

    amount, unit = rounded(60), "minute"
    if amount >= 60:
        amount, unit = rounded(3600), "hour"
        if amount >= 24:
            amount, unit = rounded(86400), "day"
    phrase = f"{amount} {unit}{'' if amount == 1 else 's'}"
    return f"in {phrase}" if seconds >= 0 else f"{phrase} ago"
