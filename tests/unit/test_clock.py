import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.domain.clock import Clock, FakeClock, SystemClock

START = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)


def test_system_clock_is_aware_utc_and_current():
    before = datetime.now(UTC)
    now = SystemClock().now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert before <= now <= after


def test_both_clocks_satisfy_the_protocol():
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FakeClock(START), Clock)


def test_fake_clock_starts_where_told_and_normalises_to_utc():
    plus_two = timezone(timedelta(hours=2))
    clock = FakeClock(datetime(2026, 3, 8, 8, 0, tzinfo=plus_two))
    assert clock.now() == START
    assert clock.now().tzinfo is UTC


def test_fake_clock_refuses_naive_datetimes():
    with pytest.raises(ValueError):
        FakeClock(datetime(2026, 1, 1))
    clock = FakeClock(START)
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 1, 1))


def test_advance_and_set_move_time_and_notify_listeners():
    clock = FakeClock(START)
    heard: list[datetime] = []
    clock.add_listener(heard.append)
    assert clock.advance(timedelta(minutes=5)) == START + timedelta(minutes=5)
    assert clock.now() == START + timedelta(minutes=5)
    clock.set(START - timedelta(days=1))  # set may go backwards (a clock correction)
    assert clock.now() == START - timedelta(days=1)
    clock.advance(timedelta(0))
    assert heard == [START + timedelta(minutes=5), START - timedelta(days=1), START - timedelta(days=1)]


def test_advance_refuses_negative_delta():
    clock = FakeClock(START)
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))
    assert clock.now() == START


def test_remove_listener_and_self_removal_during_notification():
    clock = FakeClock(START)
    calls: list[str] = []

    def once(_now: datetime) -> None:
        calls.append("once")
        clock.remove_listener(once)

    def always(_now: datetime) -> None:
        calls.append("always")

    clock.add_listener(once)
    clock.add_listener(always)
    clock.advance(timedelta(seconds=1))
    clock.advance(timedelta(seconds=1))
    assert calls == ["once", "always", "always"]
    clock.remove_listener(always)
    clock.remove_listener(always)  # unknown listener: no error
    clock.advance(timedelta(seconds=1))
    assert calls == ["once", "always", "always"]


def test_a_failing_listener_does_not_starve_the_others():
    clock = FakeClock(START)
    heard: list[datetime] = []

    def broken(_now: datetime) -> None:
        raise RuntimeError("boom")

    clock.add_listener(broken)
    clock.add_listener(heard.append)
    with pytest.raises(RuntimeError, match="boom"):
        clock.advance(timedelta(hours=1))
    assert heard == [START + timedelta(hours=1)]
    assert clock.now() == START + timedelta(hours=1)


async def test_async_waiter_is_woken_by_advance_without_real_waiting():
    clock = FakeClock(START)
    woken = asyncio.Event()
    clock.add_listener(lambda _now: woken.set())
    due = START + timedelta(hours=3)

    async def wait_until_due() -> datetime:
        while clock.now() < due:
            woken.clear()
            await woken.wait()
        return clock.now()

    task = asyncio.create_task(wait_until_due())
    await asyncio.sleep(0)
    clock.advance(timedelta(hours=1))
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(timedelta(hours=2))
    assert await asyncio.wait_for(task, timeout=1) == due
