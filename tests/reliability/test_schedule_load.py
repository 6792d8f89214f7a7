"""L4: servers across six timezones, fake days over both DST changes of spring 2026 (America and
Europe in March; Lord Howe's half-hour and Chatham's in April): exactly one post per server per local
day, no duplicates, none missed. Times sit in DST gaps and folds on purpose. The default run: 6 servers
over 38 days (every change and four days after the last); the soak: 100 servers over 45 days."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.storage import jobs as job_store
from tests.harness import START
from tests.reliability.support import check_database, daily_schedule, mention_violations, tiny_chart, world

ZONES = (
    ("America/New_York", "02:30"),  # 8 Mar: 02:00 -> 03:00, the slot does not exist that day
    ("Europe/London", "01:30"),  # 29 Mar: 01:00 -> 02:00
    ("Australia/Lord_Howe", "01:45"),  # 5 Apr: 02:00 -> 01:30, the slot happens twice
    ("Asia/Kathmandu", "09:15"),  # +05:45, no DST
    ("Pacific/Chatham", "03:00"),  # 5 Apr: 03:45 -> 02:45, the slot happens twice
    ("UTC", "00:00"),  # midnight, the day boundary itself
)
DAYS = 45
# The default run's days: through 9 April, four days past the last change (Lord Howe and Chatham, 5 April).
FAST_DAYS = 38


def expected_dates(zone: str, at: str, start: datetime, end: datetime) -> list[str]:
    """Local days whose slot falls in (start, end], computed here with zoneinfo, not the product's maths."""
    tz = ZoneInfo(zone)
    t = time.fromisoformat(at)
    out = []
    day: date = start.astimezone(tz).date() - timedelta(days=1)
    while day <= end.astimezone(tz).date() + timedelta(days=1):
        slot = datetime.combine(day, t, tzinfo=tz)
        if start < slot.astimezone(start.tzinfo) <= end:
            out.append(day.isoformat())
        day += timedelta(days=1)
    return out


async def run_l4(tmp_path, summary, monkeypatch, *, servers: int, days: int, case: str) -> None:
    monkeypatch.setattr("bot.ui.charts.tally_chart", tiny_chart)
    async with world(tmp_path, servers=servers, members=0) as (h, extra):
        service = h.bot.debates
        plan = {}
        for i, s in enumerate(extra):
            zone, at = ZONES[i % len(ZONES)]
            plan[s.guild.id] = (s, zone, at)
            # thread=False: threads are F4/F5's business; here only the posts are counted
            await daily_schedule(service, s.guild.id, s.channel.id, post_time=at, timezone=zone, thread=False)
        end = START + timedelta(days=days)
        steps = 0
        while True:
            async with h.db.read() as conn:
                due = await job_store.earliest_due(conn)
            if due is None or due > end:
                break
            h.clock.set(max(due, h.clock.now()))  # jump to the next job, as the dispatcher would wake
            await h.bot.scheduler.drain()
            steps += 1
        h.clock.set(end)
        await h.bot.scheduler.drain()
        async with h.db.read() as conn:
            rows = (await conn.exec_driver_sql("SELECT guild_id, slot_date, status FROM debates")).all()
        posted: dict[int, list[str]] = {}
        for gid, slot_date, status in rows:
            assert status == "posted", (gid, slot_date, status)
            posted.setdefault(gid, []).append(slot_date)
        missed = duplicates = 0
        for gid, (s, zone, at) in plan.items():
            want = expected_dates(zone, at, START, end)
            got = sorted(posted.get(gid, []))
            messages = [m for m in h.sandbox.messages(s.channel.id) if m.get("embeds")]
            missed += len(set(want) - set(got))
            duplicates += len(got) - len(set(got)) + max(0, len(messages) - len(got))
            assert got == want, (zone, at, sorted(set(want) ^ set(got)))
            assert len(messages) == len(want), (zone, len(messages), len(want))
        await check_database(h.db)
        summary(
            case,
            "load",
            servers=servers,
            days=days,
            posts=len(rows),
            duplicates=duplicates,
            missed=missed,
            wakeups=steps,
        )
        assert missed == 0 and duplicates == 0
        assert mention_violations(h.sandbox) == []


async def test_l4_schedules_over_dst_fast(tmp_path, summary, monkeypatch):
    await run_l4(tmp_path, summary, monkeypatch, servers=6, days=FAST_DAYS, case="L4 6 servers x 38 days, 6 zones")


@pytest.mark.soak
@pytest.mark.timeout(600)
async def test_l4_schedules_over_dst_soak(tmp_path, summary, monkeypatch):
    await run_l4(tmp_path, summary, monkeypatch, servers=100, days=DAYS, case="L4 100 servers x 45 days, 6 zones")
