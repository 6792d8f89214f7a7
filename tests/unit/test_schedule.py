import itertools
import time as perf
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import schedule
from bot.domain.schedule import (
    CATCH_UP_DEFAULT,
    ScheduleInputError,
    Slot,
    catch_up_decision,
    describe_relative,
    format_days,
    next_slot,
    parse_days,
    parse_local_datetime,
    parse_time,
    parse_timezone,
    slot_for_date,
    slots_between,
    timezone_choices,
)

ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "UTC",
]
TIMES = [time(0, 0), time(1, 30), time(1, 45), time(2, 15), time(2, 30), time(3, 0), time(9, 0), time(23, 59)]
DAY_SETS = [frozenset(range(7)), frozenset(range(5)), frozenset({6}), frozenset({5, 6})]

# 2026 transitions, from tzdata 2026 (checked against zoneinfo):
# wall-clock gap [start, end) on the spring-forward day, and the repeated hour on the fall-back day.
GAPS = {
    "America/New_York": (date(2026, 3, 8), time(2, 0), time(3, 0)),  # EST -5 -> EDT -4
    "Europe/London": (date(2026, 3, 29), time(1, 0), time(2, 0)),  # GMT -> BST +1
    "Australia/Lord_Howe": (date(2026, 10, 4), time(2, 0), time(2, 30)),  # +10:30 -> +11
    "Pacific/Chatham": (date(2026, 9, 27), time(2, 45), time(3, 45)),  # +12:45 -> +13:45
}
FOLDS = {
    "America/New_York": (date(2026, 11, 1), time(1, 0), time(2, 0)),  # EDT -> EST
    "Europe/London": (date(2026, 10, 25), time(1, 0), time(2, 0)),  # BST -> GMT
    "Australia/Lord_Howe": (date(2026, 4, 5), time(1, 30), time(2, 0)),  # +11 -> +10:30
    "Pacific/Chatham": (date(2026, 4, 5), time(2, 45), time(3, 45)),  # +13:45 -> +12:45
}


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------- a whole year


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("at", TIMES, ids=str)
@pytest.mark.parametrize("days", DAY_SETS, ids=format_days)
def test_a_year_of_next_slot_gives_one_slot_per_chosen_local_date(zone, at, days):
    tz = ZoneInfo(zone)
    cursor = datetime(2026, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(microseconds=1)
    slots: list[Slot] = []
    while True:
        slot = next_slot(cursor, at, tz, days)
        assert slot.due_utc > cursor
        if slot.local_date.year > 2026:
            break
        slots.append(slot)
        cursor = slot.due_utc

    expected_dates = [
        date(2026, 1, 1) + timedelta(days=i)
        for i in range(365)
        if (date(2026, 1, 1) + timedelta(days=i)).weekday() in days
    ]
    assert [s.local_date for s in slots] == expected_dates  # none missing, none twice
    assert all(a.due_utc < b.due_utc for a, b in itertools.pairwise(slots))
    assert slots == slots_between(
        datetime(2026, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(microseconds=1),
        slots[-1].due_utc,
        at,
        tz,
        days,
    )

    gap = GAPS.get(zone)
    fold = FOLDS.get(zone)
    for slot in slots:
        local = slot.due_utc.astimezone(tz)
        assert local.date() == slot.local_date or (gap and slot.local_date == gap[0])
        if gap and slot.local_date == gap[0] and gap[1] <= at < gap[2]:
            # Documented gap rule: the same length of time after the gap as `at` is after its start.
            shift = _minutes(gap[2]) - _minutes(gap[1])
            assert _minutes(local.time()) == _minutes(at) + shift, slot
        else:
            assert local.time() == at, slot
        if fold and slot.local_date == fold[0] and fold[1] <= at < fold[2]:
            assert local.fold == 0, "a repeated time means its first occurrence"


# Hand-computed: local wall time minus the offset in force (gap: the offset *before* the change;
# fold: the first occurrence, i.e. still summer time).
HAND_CHECKED = [
    # New York, spring 2026-03-08: 02:30 doesn't exist; EST -5 -> 07:30Z (shows 03:30 EDT).
    ("America/New_York", date(2026, 3, 8), time(2, 30), _utc(2026, 3, 8, 7, 30)),
    ("America/New_York", date(2026, 3, 8), time(1, 30), _utc(2026, 3, 8, 6, 30)),  # EST
    ("America/New_York", date(2026, 3, 8), time(3, 0), _utc(2026, 3, 8, 7, 0)),  # EDT
    # New York, autumn 2026-11-01: 01:30 twice; first is EDT -4 -> 05:30Z.
    ("America/New_York", date(2026, 11, 1), time(1, 30), _utc(2026, 11, 1, 5, 30)),
    ("America/New_York", date(2026, 11, 1), time(2, 30), _utc(2026, 11, 1, 7, 30)),  # EST
    # London, 2026-03-29: 01:30 doesn't exist; GMT -> 01:30Z (shows 02:30 BST).
    ("Europe/London", date(2026, 3, 29), time(1, 30), _utc(2026, 3, 29, 1, 30)),
    ("Europe/London", date(2026, 3, 29), time(9, 0), _utc(2026, 3, 29, 8, 0)),  # BST
    # London, 2026-10-25: 01:30 twice; first is BST +1 -> 00:30Z.
    ("Europe/London", date(2026, 10, 25), time(1, 30), _utc(2026, 10, 25, 0, 30)),
    ("Europe/London", date(2026, 10, 25), time(9, 0), _utc(2026, 10, 25, 9, 0)),  # GMT
    # Lord Howe, 2026-10-04: 02:00-02:30 doesn't exist; 02:15 at +10:30 -> 15:45Z the day before.
    ("Australia/Lord_Howe", date(2026, 10, 4), time(2, 15), _utc(2026, 10, 3, 15, 45)),
    ("Australia/Lord_Howe", date(2026, 10, 4), time(9, 0), _utc(2026, 10, 3, 22, 0)),  # +11
    # Lord Howe, 2026-04-05: 01:30-02:00 twice; 01:45 first at +11 -> 14:45Z the day before.
    ("Australia/Lord_Howe", date(2026, 4, 5), time(1, 45), _utc(2026, 4, 4, 14, 45)),
    ("Australia/Lord_Howe", date(2026, 4, 5), time(9, 0), _utc(2026, 4, 4, 22, 30)),  # +10:30
    # Chatham, 2026-09-27: 02:45-03:45 doesn't exist; 03:00 at +12:45 -> 14:15Z (shows 04:00).
    ("Pacific/Chatham", date(2026, 9, 27), time(3, 0), _utc(2026, 9, 26, 14, 15)),
    # Chatham, 2026-04-05: 02:45-03:45 twice; 03:00 first at +13:45 -> 13:15Z the day before.
    ("Pacific/Chatham", date(2026, 4, 5), time(3, 0), _utc(2026, 4, 4, 13, 15)),
    ("Pacific/Chatham", date(2026, 4, 5), time(9, 0), _utc(2026, 4, 4, 20, 15)),  # +12:45
    # Kathmandu is +05:45 all year.
    ("Asia/Kathmandu", date(2026, 3, 8), time(9, 0), _utc(2026, 3, 8, 3, 15)),
    ("Asia/Kathmandu", date(2026, 11, 1), time(0, 0), _utc(2026, 10, 31, 18, 15)),
    ("UTC", date(2026, 3, 29), time(1, 30), _utc(2026, 3, 29, 1, 30)),
]


@pytest.mark.parametrize(("zone", "local_date", "at", "expected"), HAND_CHECKED)
def test_transition_days_hand_checked(zone, local_date, at, expected):
    tz = ZoneInfo(zone)
    assert slot_for_date(local_date, at, tz) == Slot(local_date, expected)
    # next_slot from just before reaches the same slot, and from it moves to the next day.
    assert next_slot(expected - timedelta(seconds=1), at, tz, frozenset(range(7))) == Slot(local_date, expected)
    following = next_slot(expected, at, tz, frozenset(range(7)))
    assert following.local_date == local_date + timedelta(days=1)


def test_gap_day_and_neighbour_do_not_collide():
    ny = ZoneInfo("America/New_York")
    # 02:30 on the gap day shows as 03:30; a 03:30 schedule lands on the same instant that day, once.
    assert slot_for_date(date(2026, 3, 8), time(2, 30), ny).due_utc == _utc(2026, 3, 8, 7, 30)
    assert slot_for_date(date(2026, 3, 8), time(3, 30), ny).due_utc == _utc(2026, 3, 8, 7, 30)
    got = slots_between(_utc(2026, 3, 6), _utc(2026, 3, 10), time(2, 30), ny, frozenset(range(7)))
    assert [s.local_date for s in got] == [date(2026, 3, d) for d in (6, 7, 8, 9)]


def test_a_gap_that_crosses_midnight_keeps_the_slot_of_the_day_before():
    # Nuuk, 2026-03-28: 23:00 -02:00 jumps to 00:00 -01:00, so 23:30 doesn't exist that evening;
    # at -02:00 it is 2026-03-29 01:30Z (shows 00:30 on the 29th) and still belongs to the 28th.
    nuuk = ZoneInfo("America/Nuuk")
    every = frozenset(range(7))
    expected = Slot(date(2026, 3, 28), _utc(2026, 3, 29, 1, 30))
    assert next_slot(_utc(2026, 3, 29, 1, 10), time(23, 30), nuuk, every) == expected
    # 23:30 on the 26th (-02:00) is 01:30Z on the 27th; on the 30th (-01:00) it is 00:30Z on the 31st.
    got = slots_between(_utc(2026, 3, 27), _utc(2026, 3, 31), time(23, 30), nuuk, every)
    assert [s.local_date for s in got] == [date(2026, 3, d) for d in (26, 27, 28, 29)]


def test_a_date_removed_from_the_calendar_never_posts_twice():
    # Samoa skipped 2011-12-30 (-10:00 -> +14:00): the 30th, read at -10:00, is the same instant
    # as 09:00 on the 31st, so the walk posts once at that instant and goes on to 2012-01-01.
    apia = ZoneInfo("Pacific/Apia")
    every = frozenset(range(7))
    walk, cursor = [], _utc(2011, 12, 28)
    for _ in range(4):
        walk.append(next_slot(cursor, time(9), apia, every))
        cursor = walk[-1].due_utc
    assert [s.due_utc for s in walk] == [_utc(2011, 12, d, 19) for d in (28, 29, 30, 31)]
    assert slots_between(_utc(2011, 12, 28), cursor, time(9), apia, every) == walk


def test_slot_accepts_a_time_carrying_fold_or_tzinfo_without_changing_the_rule():
    ny = ZoneInfo("America/New_York")
    odd = time(1, 30, fold=1, tzinfo=UTC)
    assert slot_for_date(date(2026, 11, 1), odd, ny).due_utc == _utc(2026, 11, 1, 5, 30)


def test_next_slot_refuses_naive_instants_and_empty_days():
    with pytest.raises(ValueError):
        next_slot(datetime(2026, 1, 1), time(9), ZoneInfo("UTC"), frozenset({0}))
    with pytest.raises(ValueError):
        next_slot(_utc(2026, 1, 1), time(9), ZoneInfo("UTC"), frozenset())
    with pytest.raises(ValueError):
        next_slot(_utc(2026, 1, 1), time(9), ZoneInfo("UTC"), frozenset({7}))
    with pytest.raises(ValueError):
        Slot(date(2026, 1, 1), datetime(2026, 1, 1, 9))


def test_slots_between_is_half_open_and_empty_when_reversed():
    utc = ZoneInfo("UTC")
    every = frozenset(range(7))
    got = slots_between(_utc(2026, 1, 1, 9), _utc(2026, 1, 3, 9), time(9), utc, every)
    assert [s.due_utc for s in got] == [_utc(2026, 1, 2, 9), _utc(2026, 1, 3, 9)]
    assert slots_between(_utc(2026, 1, 3), _utc(2026, 1, 1), time(9), utc, every) == []


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(
    # Nuuk and Santiago add transitions at and across midnight.
    zone=st.sampled_from([*ZONES, "America/Nuuk", "America/Santiago"]),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
)
def test_property_slots_increase_unique_on_chosen_days_none_missing(zone, hour, minute, days, start):
    tz = ZoneInfo(zone)
    at = time(hour, minute)
    slots = []
    cursor = start
    for _ in range(25):
        slot = next_slot(cursor, at, tz, days)
        assert slot.due_utc > cursor
        slots.append(slot)
        cursor = slot.due_utc
    assert all(a.due_utc < b.due_utc for a, b in itertools.pairwise(slots))
    dates = [s.local_date for s in slots]
    assert len(set(dates)) == len(dates)
    assert all(d.weekday() in days for d in dates)
    # None missing: between two consecutive slots lies no other chosen weekday.
    for a, b in itertools.pairwise(dates):
        between = [a + timedelta(days=i) for i in range(1, (b - a).days)]
        assert not [d for d in between if d.weekday() in days]
    # None missing at the start: the chosen day before the first slot was already due.
    before = dates[0] - timedelta(days=1)
    while before.weekday() not in days:
        before -= timedelta(days=1)
    assert slot_for_date(before, at, tz).due_utc <= start
    assert slots_between(start, slots[-1].due_utc, at, tz, days) == slots


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), hour=st.integers(0, 23), minute=st.integers(0, 59), day=st.dates())
def test_property_slot_wall_time_is_the_chosen_time_unless_it_does_not_exist(zone, hour, minute, day):
    tz = ZoneInfo(zone)
    at = time(hour, minute)
    slot = slot_for_date(day, at, tz)
    local = slot.due_utc.astimezone(tz)
    if local.replace(tzinfo=None) != datetime.combine(day, at):
        # Only in a gap, and then pushed later by less than a day.
        naive = datetime.combine(day, at)
        assert naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive
        assert timedelta(0) < local.replace(tzinfo=None) - naive < timedelta(days=1)


# --------------------------------------------------------------------------- catch-up


def test_catch_up_window_edge():
    slot = Slot(date(2026, 3, 8), _utc(2026, 3, 8, 7, 30))
    edge = slot.due_utc + CATCH_UP_DEFAULT
    assert timedelta(hours=3) == CATCH_UP_DEFAULT
    assert catch_up_decision(slot, edge, CATCH_UP_DEFAULT) == "post"
    assert catch_up_decision(slot, edge + timedelta(microseconds=1), CATCH_UP_DEFAULT) == "skip"
    assert catch_up_decision(slot, slot.due_utc, CATCH_UP_DEFAULT) == "post"
    assert catch_up_decision(slot, slot.due_utc, timedelta(0)) == "post"
    assert catch_up_decision(slot, slot.due_utc + timedelta(microseconds=1), timedelta(0)) == "skip"
    with pytest.raises(ValueError):
        catch_up_decision(slot, edge, timedelta(seconds=-1))
    with pytest.raises(ValueError):
        catch_up_decision(slot, datetime(2026, 3, 8, 8), CATCH_UP_DEFAULT)


# --------------------------------------------------------------------------- parsing: good input


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:30", time(9, 30)),
        ("9:30", time(9, 30)),
        (" 18:00 \n", time(18)),
        ("00:00", time(0)),
        ("23:59", time(23, 59)),
    ],
)
def test_parse_time_accepts(text, expected):
    assert parse_time(text) == expected


def test_parse_time_round_trips_every_minute():
    for minutes in range(24 * 60):
        t = time(minutes // 60, minutes % 60)
        assert parse_time(t.strftime("%H:%M")) == t
        assert parse_time(f"{t.hour}:{t.minute:02d}") == t


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, set(range(7))),
        ("daily", set(range(7))),
        ("Every Day", set(range(7))),
        ("weekdays", {0, 1, 2, 3, 4}),
        ("WEEKENDS", {5, 6}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("Mon – Fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("mon, wed, fri", {0, 2, 4}),
        ("mon wed fri", {0, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("sun-sun", {6}),
        ("Monday,Tuesday,Thursday", {0, 1, 3}),
        ("thurs", {3}),
        ("mondays and fridays", {0, 4}),
        ("weekends, wed", {2, 5, 6}),
    ],
)
def test_parse_days_accepts(text, expected):
    assert parse_days(text) == frozenset(expected)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (range(7), "Daily"),
        (range(5), "Mon–Fri"),
        ({5, 6}, "Sat, Sun"),
        ({0, 2, 4}, "Mon, Wed, Fri"),
        ({4, 5, 6, 0}, "Fri–Mon"),
        ({6, 0}, "Mon, Sun"),
        ({3}, "Thu"),
        (set(), "No days"),
    ],
)
def test_format_days(days, expected):
    assert format_days(days) == expected


def test_format_days_round_trips_through_parse_days_for_every_set():
    for size in range(1, 8):
        for combo in itertools.combinations(range(7), size):
            assert parse_days(format_days(combo)) == frozenset(combo)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Europe/London", "Europe/London"),
        ("europe/london", "Europe/London"),
        ("  America/New York ", "America/New_York"),
        ("UTC", "UTC"),
        ("pacific/chatham", "Pacific/Chatham"),
        ("Etc/GMT-5", "Etc/GMT-5"),
    ],
)
def test_parse_timezone_accepts_iana_names_case_insensitively(text, key):
    assert parse_timezone(text).key == key


# --------------------------------------------------------------------------- parsing: bad input

LONG = "Europe/" + "x" * 293  # 300 characters


def _refusal(parser, text) -> str:
    with pytest.raises(ScheduleInputError) as caught:
        parser(text)
    return str(caught.value)


def _echo(value: str) -> str:
    shown = value.strip()
    return shown if len(shown) <= 60 else shown[:59] + "…"


BAD_INPUTS = [
    # (parser, text, words that say how to fix it)
    (parse_timezone, "Mars/Olympus", "Europe/London"),
    (parse_timezone, "../../etc/passwd", "Europe/London"),
    (parse_timezone, "UTC+5", "Etc/GMT-5"),
    (parse_timezone, LONG, "Europe/London"),
    (parse_timezone, "", "Europe/London"),
    (parse_time, "25:00", "HH:MM"),
    (parse_time, "9:60", "HH:MM"),
    (parse_time, "9am", "HH:MM"),
    (parse_time, "０９:３０", "0-9"),
    (parse_time, "", "HH:MM"),
    (parse_time, "12:00:00", "HH:MM"),
    (parse_time, "7", "HH:MM"),
    (parse_days, "funday", "mon-fri"),
    (parse_days, "mon-", "mon-fri"),
    (parse_days, "", "mon-fri"),
]


@pytest.mark.parametrize(("parser", "text", "fix"), BAD_INPUTS, ids=lambda v: getattr(v, "__name__", repr(v)[:30]))
def test_bad_input_is_refused_naming_the_value_and_the_fix(parser, text, fix):
    with pytest.raises(ScheduleInputError) as caught:
        parser(text)
    message = str(caught.value)
    assert caught.value.message == message
    assert fix in message
    if text.strip():
        assert f"`{_echo(text)}`" in message
    else:
        assert "empty" in message
    quoted = message.split("`")[1::2]
    assert all(len(q) <= 60 for q in quoted)
    assert len(message) < 400


def test_utc_plus_five_suggests_a_place_and_explains_the_reversed_sign():
    message = _refusal(parse_timezone, "UTC+5")
    assert "Asia/Karachi" in message
    assert "reversed" in message


def test_close_timezone_names_are_suggested():
    assert "Europe/London" in _refusal(parse_timezone, "Europe/Londn")
    assert "Europe/London" in _refusal(parse_timezone, "london")


def test_full_width_time_is_refused_not_normalised():
    message = _refusal(parse_time, "０９:３０")
    assert "ASCII" in message or "0-9" in message


@pytest.mark.parametrize(
    "hostile",
    ["`@everyone` ``` \u202e", "@here\x00\x07", "<@&123> ``x``", "a\u200b`b" * 40],
)
def test_echoed_input_cannot_escape_the_code_span_or_ping(hostile):
    for parser in (parse_timezone, parse_time, parse_days):
        message = _refusal(parser, hostile)
        assert message.count("`") == 2
        assert "@everyone" not in message
        assert "@here" not in message
        assert not any(ch in message for ch in "\x00\x07\u202e\u200b")
        assert len(message.split("`")[1]) <= 60


def test_parse_timezone_never_hands_unknown_text_to_zoneinfo(monkeypatch):
    known = available_timezones()
    seen: list[str] = []

    def spy(key: str) -> ZoneInfo:
        seen.append(key)
        assert key in known
        return ZoneInfo(key)

    monkeypatch.setattr(schedule, "ZoneInfo", spy)
    for bad in ["Mars/Olympus", "../../etc/passwd", "UTC+5", LONG, "", "/etc/passwd", "Europe/../UTC", "\x00"]:
        with pytest.raises(ScheduleInputError):
            parse_timezone(bad)
    assert seen == []
    parse_timezone("europe/paris")
    assert seen == ["Europe/Paris"]


@pytest.mark.parametrize("text", ["funday", "mon-", "-fri", "mon--fri", "mon-fri-sat", "weekdays,xyz", ",,", "  "])
def test_parse_days_refuses(text):
    with pytest.raises(ScheduleInputError):
        parse_days(text)


# --------------------------------------------------------------------------- autocomplete


def test_timezone_choices_default_and_limits():
    default = timezone_choices("")
    assert default[:3] == ["UTC", "Europe/London", "America/New_York"]
    assert len(default) <= 25
    for query in ["", "a", "e", "america", "/", "_"]:
        got = timezone_choices(query)
        assert len(got) <= 25
        assert all(len(name) <= 100 for name in got)
        assert all(parse_timezone(name).key == name for name in got)
    assert len(timezone_choices("a", limit=5)) == 5


def test_timezone_choices_ranks_city_prefix_first_then_substring():
    assert timezone_choices("lon")[0] == "Europe/London"
    assert timezone_choices("new york")[0] == "America/New_York"
    assert timezone_choices("Kathm")[0] == "Asia/Kathmandu"
    assert "America/New_York" in timezone_choices("york")
    assert timezone_choices("europe/lo")[0] == "Europe/London"
    assert timezone_choices("utc+5") == ["Asia/Karachi", "Etc/GMT-5"]
    assert timezone_choices("zzzz") == []
    assert timezone_choices("x" * 300) == []


@pytest.mark.timing
def test_timezone_choices_is_fast():
    timezone_choices("warm up the cache")
    started = perf.perf_counter()
    for query in ["a", "am", "ame", "amer", "europe/b", "san", "new", "x"] * 25:
        timezone_choices(query)
    assert perf.perf_counter() - started < 1.0  # 200 keystrokes


# --------------------------------------------------------------------------- one-off debates

NY = ZoneInfo("America/New_York")
NOW = _utc(2026, 3, 7, 17, 0)  # 12:00 EST on Saturday 2026-03-07


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18:30", _utc(2026, 3, 7, 23, 30)),
        ("today 18:30", _utc(2026, 3, 7, 23, 30)),
        ("Tomorrow 18:30", _utc(2026, 3, 8, 22, 30)),  # EDT from tomorrow
        ("tomorrow 02:30", _utc(2026, 3, 8, 7, 30)),  # gap: same rule as slot_for_date
        ("2026-11-01 01:30", _utc(2026, 11, 1, 5, 30)),  # fold: first occurrence
        ("2026-12-01 18:30", _utc(2026, 12, 1, 23, 30)),
        ("2026-12-01T18:30", _utc(2026, 12, 1, 23, 30)),
        ("  2026-12-01   18:30 ", _utc(2026, 12, 1, 23, 30)),
        ("2027-03-07 12:00", _utc(2027, 3, 7, 17, 0)),  # a year ahead, to the minute: allowed
    ],
)
def test_parse_local_datetime_accepts(text, expected):
    got = parse_local_datetime(text, NY, NOW)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("11:00", "tomorrow 11:00"),  # already passed today
        ("12:00", "tomorrow 12:00"),  # exactly now is not ahead
        ("2020-01-01 10:00", "past"),
        ("2026-03-07 11:59", "past"),
        ("2027-03-09 12:00", "year"),
        ("2026-02-30 10:00", "YYYY-MM-DD"),
        ("2026-12-01", "no time"),
        ("tomorrow", "no time"),
        ("tomorrow 25:00", "HH:MM"),
        ("next friday", "tomorrow 18:30"),
        ("２０２６-12-01 18:30", "0-9"),
        ("", "empty"),
    ],
)
def test_parse_local_datetime_refuses(text, words):
    with pytest.raises(ScheduleInputError) as caught:
        parse_local_datetime(text, NY, NOW)
    assert words in str(caught.value)


def test_parse_local_datetime_needs_an_aware_now():
    with pytest.raises(ValueError):
        parse_local_datetime("18:30", NY, datetime(2026, 3, 7, 12))


# --------------------------------------------------------------------------- describe_relative


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(hours=3), "in 3 hours"),
        (timedelta(days=2), "in 2 days"),
        (timedelta(days=1), "in 1 day"),
        (timedelta(minutes=1), "in 1 minute"),
        (timedelta(minutes=45), "in 45 minutes"),
        (timedelta(minutes=59, seconds=50), "in 1 hour"),
        (timedelta(hours=23, minutes=50), "in 1 day"),
        (timedelta(seconds=20), "in under a minute"),
        (timedelta(0), "in under a minute"),
        (timedelta(minutes=-5), "5 minutes ago"),
        (timedelta(days=-3), "3 days ago"),
    ],
)
def test_describe_relative(delta, expected):
    assert describe_relative(delta) == expected
