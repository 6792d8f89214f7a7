"""The busy hour (issue 11, item 4): 5,000 servers with a daily debate at 09:00 Europe/London, each
closing yesterday's poll at that minute (a fifth of them native polls, a tenth showing live counts),
members clicking throughout, against Discord as a busy bot meets it (``Conditions.realistic()``: 80 ms
± 40 ms each way, the host clock 2 s fast, the real global and per-route limits and the ban counter),
with 50 servers in a Discord outage for 10 minutes in the middle of the wave, and a few servers where the
bot has lost View Channel (the refusals a real bot meets; every one must be the last to its resource).

    python -m pytest -m soak -n 0 tests/reliability -k busy_hour

Time. The scheduler's clock is the FakeClock: yesterday's posts go out at a fixed 09:00 (localhost speed,
rate limits off, the budget lifted), then the clock is set to today's 08:59:55 and from there follows
real time, because the REST pacing cannot be faked: the bot's budget and Discord's limits count real
seconds, so the wave takes the minutes it would take (about 25,000 requests at 40/s). Scaling the
sandbox's windows and the bot's budget by one factor would not keep the measurement: the 80 ms network
trips, the 3 s interaction deadline and the bot's own CPU per request do not scale with them.

``COMMONGROUND_BUSY_HOUR_SERVERS`` (default 5,000) and ``COMMONGROUND_BUSY_HOUR_OUTAGE`` (seconds,
default 600) shrink the run for a quicker look; the printed line names the scale.
``COMMONGROUND_BUSY_HOUR_DUMP=<file>`` writes the wave request by request (seconds after 09:00, method,
path, status) for a closer look at where the time went; ``COMMONGROUND_BUSY_HOUR_PROFILE=<file>`` writes
a cProfile of the wave (it slows the process: not for the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import os
import random
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import pytest

from bot.runtime import tune_gc
from bot.sandbox import Conditions
from bot.sandbox.server import Sandbox
from bot.storage import guilds as guild_store
from bot.storage import polls as poll_store
from bot.storage.database import make_url
from tests.harness import TEST_IDENTIFY_INTERVAL, Harness
from tests.reliability.support import (
    DEADLINE,
    DISABLED,
    LoopStalls,
    Server,
    build_servers,
    check_database,
    click,
    daily_schedule,
    eventually,
    gather_limited,
    mention_violations,
    p99,
)
from tests.reliability.test_schedule_load import tiny_chart

ZONE = "Europe/London"  # UTC+0 in early March: 09:00 local is 09:00 UTC
YESTERDAY = datetime(2026, 3, 2, 8, 58, tzinfo=UTC)  # the harness starts here; the schedules are set up
SLOT = timedelta(minutes=2)  # from YESTERDAY to yesterday's 09:00
DAY = timedelta(days=1)
MEMBERS = 8  # per server: member 0 votes yesterday, the others click during the wave
REVOKED = 10  # extra servers whose channel the bot can no longer see by today's 09:00
CLICK_RATE = 5.0  # clicks and native votes per second during the wave
CLICKS_IN_FLIGHT = 64
BAN_THRESHOLD = 10_000  # Discord's invalid requests per 10 minutes (L3)
VIEW_CHANNEL = discord.Permissions(view_channel=True).value


def scale() -> tuple[int, float]:
    servers = int(os.environ.get("COMMONGROUND_BUSY_HOUR_SERVERS", "5000"))
    outage = float(os.environ.get("COMMONGROUND_BUSY_HOUR_OUTAGE", "600"))
    return servers, outage


class BusyHarness(Harness):
    """The harness with start-up time for thousands of servers on several shards."""

    async def start_bot(self, *, timeout: float = 10):
        return await super().start_bot(timeout=max(timeout, 300))


@dataclass
class Post:
    """One server's daily post: its poll, message and thread (yesterday's or today's)."""

    guild_id: int
    channel_id: int
    poll_id: int
    message_id: int
    style: str
    thread_id: int | None
    passage: str = ""  # the debate embed's description as posted


@dataclass
class Clicks:
    """What the members did during the wave, and what they got."""

    sent: list[Any] = field(default_factory=list)  # support.Click
    native: list[tuple[int, int, int, int]] = field(default_factory=list)  # (poll, message, user, answer)
    refused_native: int = 0  # votes on a native poll that had already ended (Discord refuses them)
    disabled: int = 0  # buttons already disabled (the poll closed): nothing to click
    used: set[tuple[int, int]] = field(default_factory=set)  # (poll, user): one click each


async def driver_rows(h: Harness, sql: str, params: tuple = ()) -> list[tuple]:
    """The test driver's own reads, on a plain sqlite3 connection in a worker thread: thousands of rows a
    second would otherwise be turned into Row objects on the event loop the bot and the sandbox share, and the
    driver's cost would be counted as the bot's (a real bot shares its loop with neither)."""
    path = make_url(h.settings.database_url).database

    def read() -> list[tuple]:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    return await asyncio.to_thread(read)


async def posts_of(h: Harness, slot_date: str) -> dict[int, Post]:
    """guild id -> that day's post (debate rows joined with their poll)."""
    rows = await driver_rows(
        h,
        "SELECT d.guild_id, d.channel_id, p.id, d.message_id, p.style, d.thread_id FROM debates d "
        "JOIN polls p ON p.debate_id = d.id WHERE d.slot_date = ? AND d.status = 'posted'",
        (slot_date,),
    )
    return {g: Post(g, c, p, m, s, t) for g, c, p, m, s, t in rows}


async def open_targets(h: Harness) -> dict[int, list[tuple[int, int, int, str]]]:
    """guild id -> its open polls with a message: (poll, channel, message, style)."""
    rows = await driver_rows(
        h,
        "SELECT guild_id, id, channel_id, message_id, style FROM polls "
        "WHERE status = 'open' AND message_id IS NOT NULL",
    )
    out: dict[int, list[tuple[int, int, int, str]]] = {}
    for g, p, c, m, s in rows:
        out.setdefault(g, []).append((p, c, m, s))
    return out


async def follow_real_time(h: Harness, base: datetime, t0: float, stop: asyncio.Event) -> None:
    """From ``base`` on, the FakeClock follows real time (the REST pacing under test is real)."""
    while not stop.is_set():
        h.clock.set(base + timedelta(seconds=time.monotonic() - t0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def members_click(
    h: Harness,
    servers: dict[int, Server],
    down: set[int],
    clicks: Clicks,
    stop: asyncio.Event,
    rng: random.Random,
) -> None:
    """Members click (buttons) and vote (native polls) on open polls at CLICK_RATE, until ``stop``."""
    sb = h.sandbox
    in_flight = asyncio.Semaphore(CLICKS_IN_FLIGHT)
    tasks: set[asyncio.Task] = set()
    targets: dict[int, list[tuple[int, int, int, str]]] = {}
    refreshed = 0.0
    loop = asyncio.get_running_loop()

    async def one(server: Server, poll_id: int, channel_id: int, message_id: int, user_id: int, idx: int):
        try:
            c = await click(sb, channel_id, message_id, poll_id, idx, user_id, timeout=30)
        finally:
            in_flight.release()
        if c.text == DISABLED:
            clicks.disabled += 1
        else:
            clicks.sent.append(c)

    while not stop.is_set():
        if loop.time() - refreshed > 2.0:
            targets = await open_targets(h)
            refreshed = loop.time()
        choices = [g for g in targets if g not in down and g in servers]
        if choices:
            gid = rng.choice(choices)
            poll_id, channel_id, message_id, style = rng.choice(targets[gid])
            server = servers[gid]
            free = [m.id for m in server.members[1:] if (poll_id, m.id) not in clicks.used]
            if free:
                user_id = rng.choice(free)
                clicks.used.add((poll_id, user_id))
                if style == "native":
                    answer = rng.randint(1, 3)
                    try:
                        sb.poll_vote(channel_id, message_id, user_id, answer)
                        clicks.native.append((poll_id, message_id, user_id, answer))
                    except RuntimeError:  # the poll has ended: Discord's client refuses the vote
                        clicks.refused_native += 1
                else:
                    await in_flight.acquire()
                    task = asyncio.create_task(one(server, poll_id, channel_id, message_id, user_id, rng.randint(0, 2)))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1 / CLICK_RATE)
    if tasks:
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


CHANNEL_PATH = re.compile(r"^/channels/(\d+)(?:/messages/(\d+))?")


def refusal_repeats(sb: Sandbox) -> tuple[int, list[str]]:
    """(401/403 refusals, the requests sent after one to the same resource: the same path)."""
    refused: dict[str, str] = {}
    repeats = []
    for rec in sb.requests:
        first = refused.get(rec.path)
        if first is not None:
            repeats.append(f"{rec.method} {rec.path} {rec.status} after {first}")
        elif rec.status in (401, 403):
            refused[rec.path] = f"{rec.method} {rec.status}"
    return len(refused), repeats


def busiest_second(stamps: list[float]) -> int:
    """The most requests in any one-second window (a sliding window, as the sandbox counts the global limit)."""
    stamps = sorted(stamps)
    best = lo = 0
    for hi, at in enumerate(stamps):
        while stamps[lo] <= at - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.soak
@pytest.mark.timeout(9000)
async def test_busy_hour(tmp_path, summary, monkeypatch):
    n_servers, outage_seconds = scale()
    n_outage = min(50, max(1, n_servers // 4))
    rng = random.Random(11)
    monkeypatch.setattr("bot.ui.charts.tally_chart", tiny_chart)  # benchmarks/charts.py measures the charts
    # Yesterday: localhost speed, no limits, no skew: the 2 s skew appears at 09:00, a jump neither clock
    # makes (benchmarks/README.md). COMMONGROUND_BUSY_HOUR_SETUP_SKEW=-2 runs the set-up under it too.
    setup_skew = float(os.environ.get("COMMONGROUND_BUSY_HOUR_SETUP_SKEW", "0"))
    sb = Sandbox(identify_interval=TEST_IDENTIFY_INTERVAL, conditions=Conditions(skew=setup_skew))
    world = build_servers(sb, n_servers + REVOKED, MEMBERS)
    servers = {s.guild.id: s for s in world[:n_servers]}
    revoked = {s.guild.id: s for s in world[n_servers:]}
    everyone = {**servers, **revoked}
    thresholds: tuple[int, ...] | None = None
    try:
        async with BusyHarness(tmp_path, sandbox=sb, now=YESTERDAY) as h:
            await eventually(lambda: _all_known(h, everyone), timeout=300, every=0.5)
            budget = h.bot.budget
            assert budget is not None
            rate, burst = budget.rate, budget.burst
            budget.rate = budget.burst = 1_000_000.0  # yesterday is set-up, not under test

            # -- yesterday: schedules, settings, the posts at 09:00 ----------------------------------------
            for i, s in enumerate(world):
                native = i % 5 == 0
                live = i % 10 == 1
                if live:
                    async with h.db.write() as conn:
                        await guild_store.ensure(conn, s.guild.id, now=h.clock.now())
                        await guild_store.update_settings(conn, s.guild.id, show_live_counts=True)
                await daily_schedule(
                    h.bot.debates, s.guild.id, s.channel.id, timezone=ZONE, poll_style="native" if native else "buttons"
                )
            h.clock.set(YESTERDAY + SLOT)
            await asyncio.wait_for(h.bot.scheduler.drain(), 3600)
            yesterday = await posts_of(h, "2026-03-02")
            assert len(yesterday) == len(world), f"{len(yesterday)} of {len(world)} posted yesterday"
            async with h.db.read() as conn:
                sample = await poll_store.get(conn, next(iter(yesterday.values())).poll_id)
            assert sample is not None and sample.closes_at == YESTERDAY + SLOT + DAY, sample  # today, 09:00
            for post in yesterday.values():
                post.passage = sb.message(post.channel_id, post.message_id)["embeds"][0]["description"]
            # Member 0 of every server votes on yesterday's poll (buttons: a click; native: a poll vote). This
            # is set-up at localhost speed on a loaded machine: a click the bot found past Discord's deadline
            # is stored but not answered (as it should be), so the set-up counts stored votes, not answers.
            votes = []
            for post in yesterday.values():
                voter = everyone[post.guild_id].members[0].id
                if post.style == "native":
                    sb.poll_vote(post.channel_id, post.message_id, voter, 1 + post.guild_id % 3)
                else:
                    votes.append(click(sb, post.channel_id, post.message_id, post.poll_id, post.guild_id % 3, voter))
            await gather_limited(votes, 16)

            async def yesterday_votes_stored() -> bool:
                async with h.db.read() as conn:
                    n = (await conn.exec_driver_sql("SELECT count(*) FROM votes")).scalar_one()
                return n == len(world)

            await eventually(yesterday_votes_stored, timeout=1800, every=0.5)
            # The bot loses View Channel in the REVOKED servers' channels (a moderator's change overnight).
            for s in revoked.values():
                sb.set_channel_permissions(s.channel.id, deny_bot=VIEW_CHANNEL)

            # -- today: Discord as it is, the budget as configured, the clock following real time ---------
            sb.set_conditions(Conditions.realistic(seed=11))
            budget.rate, budget.burst = rate, burst
            base = YESTERDAY + SLOT + DAY - timedelta(seconds=5)
            requests_before = len(sb.requests)
            granted_before = budget.granted
            stop_clock, stop_clicks = asyncio.Event(), asyncio.Event()
            # The collector as `commonground run` sets it once start-up is done (bot/runtime.py): this
            # process also holds the sandbox's world and its request log, which a real bot's does not;
            # with the default thresholds full collections over them paused the shared loop (measured in
            # benchmarks/README.md, "The busy hour").
            thresholds = gc.get_threshold()
            tune_gc()
            stalls = LoopStalls()
            stalls.start()
            profile_to = os.environ.get("COMMONGROUND_BUSY_HOUR_PROFILE")
            profiler = cProfile.Profile() if profile_to else None
            if profiler is not None:  # the wave's CPU by function (the loop thread), for a closer look
                profiler.enable()
            t_base = time.monotonic()
            ticker = asyncio.create_task(follow_real_time(h, base, t_base, stop_clock))
            t_nine = t_base + 5.0
            down: set[int] = set()
            clicks = Clicks()
            clicking = asyncio.create_task(members_click(h, servers, down, clicks, stop_clicks, rng))
            try:
                # The outage starts a sixth of the way into the expected wave, among servers not yet posted.
                await asyncio.sleep(max(0.0, t_nine + outage_start(n_servers) - time.monotonic()))
                posted_now = set(await posts_of(h, "2026-03-03"))
                pending = sorted(g for g in servers if g not in posted_now)
                outage = rng.sample(pending, min(n_outage, len(pending)))
                down.update(outage)
                t_outage = time.monotonic()
                for gid in outage:
                    sb.start_outage(gid)
                await asyncio.sleep(max(0.0, t_outage + outage_seconds - time.monotonic()))
                t_back = time.monotonic()
                for gid in outage:
                    sb.end_outage(gid)
                down.clear()

                yesterday_polls = ",".join(str(p.poll_id) for p in yesterday.values())

                async def wave_done() -> bool:
                    today = await posts_of(h, "2026-03-03")
                    if any(g not in today for g in servers):
                        return False
                    ((publishing,),) = await driver_rows(h, "SELECT count(*) FROM jobs WHERE kind = 'poll-publish'")
                    ((still_open,),) = await driver_rows(
                        h, f"SELECT count(*) FROM polls WHERE status = 'open' AND id IN ({yesterday_polls})"
                    )
                    return publishing == 0 and still_open == 0

                await eventually(wave_done, timeout=3600, every=1.0)
                await asyncio.sleep(10)  # clicks keep coming on today's polls a little longer (live edits)
            finally:
                stop_clicks.set()
                await asyncio.wait_for(clicking, 120)
                stop_clock.set()
                await ticker
            t_end = time.monotonic()
            await stalls.stop()
            if profiler is not None and profile_to:
                profiler.disable()
                profiler.dump_stats(profile_to)

            # -- the bar ------------------------------------------------------------------------------------
            today = await posts_of(h, "2026-03-03")
            wave = sb.requests[requests_before:]
            results = await _check(h, sb, servers, revoked, yesterday, today, clicks, set(outage), wave)
            counted = [r.at for r in wave if not r.path.startswith(("/interactions/", "/webhooks/"))]
            drained = _drain_end(wave, servers, set(outage), yesterday, today)
            in_wave = [a for a in counted if t_nine <= a <= drained]
            back_delays = _outage_delays(wave, set(outage), today, t_back)
            n_refusals, repeats = refusal_repeats(sb)
            lat = [c.latency for c in clicks.sent if c.first_type is not None]
            drain_s = drained - t_nine
            figures: dict[str, object] = {
                "servers": n_servers,
                "posts": results["posts"],
                "duplicates": results["duplicates"],
                "missed": results["missed"],
                "closes": results["closes"],
                "closes_with_debate": results["closes_with_debate"],
                "clicks": len(clicks.sent),
                "native_votes": len(clicks.native),
                "answered_late": results["late"],
                "unanswered": results["unanswered"],
                "lost": results["lost"],
                "doubled": results["doubled"],
                "click_p99_ms": round(p99(lat) * 1000),
                "click_max_ms": round(max(lat, default=0) * 1000),
                "global_429": sb.limits.global_429s,
                "route_429": sb.limits.route_429s,
                "invalid": sb.limits.invalid_total,
                "refusals": n_refusals,
                "after_refusal": len(repeats),
                "outage_servers": len(outage),
                "outage_blocked": results["outage_blocked"],
                "outage_deleted": results["outage_deleted"],
                "outage_back_max_s": round(max(back_delays, default=0.0), 1),
                "wave_requests": len(in_wave),
                "drain_s": round(drain_s, 1),
                "rate": round(len(in_wave) / drain_s, 1) if drain_s > 0 else 0,
                "busiest_second": busiest_second(counted),
                "budget_granted": budget.granted - granted_before,
                "soak_s": round(t_end - t_base),
                "loop_stalls": len(stalls.stalls),
                "loop_stall_max_ms": round(max((s for _, s, _ in stalls.stalls), default=0.0) * 1000),
                "gc_full_s": round(stalls.gc_pauses[2], 1),
                "vote_wait_max_ms": round(h.bot.polls.writer.wait_max * 1000),
            }
            summary(f"busy hour: {n_servers} servers at 09:00", "load", **figures)
            print("busy hour:", ", ".join(f"{k}={v}" for k, v in figures.items()))
            print(stalls.summary())
            for c in clicks.sent:
                if c.first_type is None or (c.interaction is not None and c.interaction.rejected_callbacks):
                    near = [f"{s:.2f}s {w}" for at, s, w in stalls.stalls if at - 3 <= c.started <= at + s]
                    print(f"  click at {c.started - t_nine:.1f} s: {c.text[:60]!r}; stalls around it: {near}")
            dump = os.environ.get("COMMONGROUND_BUSY_HOUR_DUMP")
            if dump:  # the wave request by request, for a closer look: seconds after 09:00, method, path, status
                _dump(dump, wave, t_nine)

            assert results["missed"] == 0 and results["duplicates"] == 0 and results["posts"] == n_servers
            assert results["closes"] == len(world) and results["closes_with_debate"] == len(world)
            assert results["late"] == 0 and results["unanswered"] == 0
            assert results["lost"] == 0 and results["doubled"] == 0
            assert max(lat, default=0) <= DEADLINE
            assert sb.limits.global_429s == 0
            assert sb.limits.invalid_total < BAN_THRESHOLD // 100
            assert repeats == [], repeats[:10]
            assert n_refusals > 0, "the revoked servers met no refusal: the bar above proves nothing"
            assert results["outage_blocked"] == 0 and results["outage_deleted"] == 0
            assert len(back_delays) == len(outage)
            assert max(back_delays, default=0.0) <= 180 * 60  # the schedules' catch-up window
            assert results["revoked_blocked"] == len(revoked)
            assert mention_violations(sb) == []
            await check_database(h.db)
    finally:
        if thresholds is not None:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
        await sb.stop()


def _dump(path: str, wave: list, t_nine: float) -> None:
    with open(path, "w") as f:
        for r in wave:
            f.write(f"{r.at - t_nine:9.3f} {r.method} {r.path} {r.status} {r.fault or ''}\n")


def outage_start(n_servers: int) -> float:
    """Seconds after 09:00: a sixth of the expected wave (about five requests per server at 40/s)."""
    return n_servers * 5 / 40 / 6


async def _all_known(h: Harness, servers: dict[int, Server]) -> bool:
    return all(h.bot.get_guild(g) is not None for g in servers)


def _ids(path: str) -> tuple[int | None, int | None]:
    m = CHANNEL_PATH.match(path)
    if not m:
        return None, None
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None


def _drain_end(
    wave: list, servers: dict[int, Server], outage: set[int], yesterday: dict[int, Post], today: dict[int, Post]
) -> float:
    """When the last request of the 09:00 work of a server outside the outage reached Discord: its post
    (message, thread) and yesterday's close (native reads, the result edit, the thread summary)."""
    mine: set[int] = set()
    for gid in servers:
        if gid in outage:
            continue
        for post in (yesterday.get(gid), today.get(gid)):
            if post is not None:
                mine.update(x for x in (post.channel_id, post.thread_id) if x)
    today_msgs = {p.message_id for p in today.values()}
    end = 0.0
    for rec in wave:
        channel, message = _ids(rec.path)
        if channel not in mine:
            continue
        if rec.method == "PATCH" and message in today_msgs:
            continue  # a live-count edit of today's poll: clicks, not the wave
        end = max(end, rec.at)
    return end


def _outage_delays(wave: list, outage: set[int], today: dict[int, Post], t_back: float) -> list[float]:
    """Per outage server, seconds from its return to its post reaching Discord."""
    posted_at: dict[int, float] = {}
    by_channel = {today[g].channel_id: g for g in outage if g in today}
    for rec in wave:
        channel, message = _ids(rec.path)
        posting = rec.method == "POST" and message is None and rec.path.endswith("/messages")
        if posting and channel in by_channel and rec.status == 200:
            posted_at[by_channel[channel]] = rec.at
    return [max(0.0, at - t_back) for at in posted_at.values()]


async def _check(
    h: Harness,
    sb: Sandbox,
    servers: dict[int, Server],
    revoked: dict[int, Server],
    yesterday: dict[int, Post],
    today: dict[int, Post],
    clicks: Clicks,
    outage: set[int],
    wave: list,
) -> dict[str, int]:
    out: Counter[str] = Counter()
    me = sb.bot_user_id
    # Posts: exactly one new debate post per server today, none where the bot lost its channel.
    for gid, s in servers.items():
        bot_posts = [m for m in sb.messages(s.channel.id) if int(m["author"]["id"]) == me and m.get("embeds")]
        got = 1 if gid in today else 0
        out["posts"] += got
        out["missed"] += 1 - got
        out["duplicates"] += max(0, len(bot_posts) - 2)
    # Closes: yesterday's message shows the result after the debate's passage (Edit Message replaces the
    # whole embeds array, M1), every poll closed, none as deleted; the thread has its summary.
    async with h.db.read() as conn:
        status = dict((await conn.exec_driver_sql("SELECT id, status FROM polls")).all())
        blocked = dict((await conn.exec_driver_sql("SELECT guild_id, blocked_reason FROM schedules")).all())
    for gid, post in yesterday.items():
        if status.get(post.poll_id) == "closed":
            out["closes"] += 1
        message = sb.message(post.channel_id, post.message_id)
        embeds = message.get("embeds") or []
        reachable = gid not in revoked
        if (
            len(embeds) == 2
            and embeds[0].get("description") == post.passage
            and str(embeds[1].get("title", "")).startswith("Results")
        ) or not reachable:
            # A server whose channel the bot can no longer see keeps the post as it was; it is closed
            # from the stored votes (counted above) without a request sure to fail.
            out["closes_with_debate"] += 1
        if gid in outage:
            out["outage_deleted"] += status.get(post.poll_id) == "deleted"
            out["outage_blocked"] += blocked.get(gid) is not None
        if gid in revoked:
            out["revoked_blocked"] += blocked.get(gid) is not None
    # Clicks: every one answered within Discord's deadline; every acknowledged vote stored as clicked.
    stored: dict[tuple[int, int], int] = {}
    async with h.db.read() as conn:
        for p, u, i in (await conn.exec_driver_sql("SELECT poll_id, user_id, option_idx FROM votes")).all():
            stored[(p, u)] = i
        native_rows = {}
        for poll_id, _m, _u, _a in clicks.native:
            if poll_id not in native_rows:
                native_rows[poll_id] = await poll_store.get(conn, poll_id)
    for c in clicks.sent:
        ix = c.interaction
        if c.first_type is None:
            out["unanswered"] += 1
        if ix is not None and ix.rejected_callbacks:
            out["late"] += 1
        if ix is not None and (len(ix.callbacks) > 1 or len(ix.followups) > 1):
            out["doubled"] += 1
        if c.acked and stored.get((c.poll_id, c.user_id)) != c.idx:
            out["lost"] += 1
            print(
                f"  lost click: poll {c.poll_id} user {c.user_id} chose {c.idx}, stored "
                f"{stored.get((c.poll_id, c.user_id))}, answered {c.text[:60]!r}"
            )
    for poll_id, message_id, user_id, answer in clicks.native:
        row = native_rows[poll_id]
        want = row.idx_of_answer(answer)
        if stored.get((poll_id, user_id)) != want and user_id in sb.poll_voters(message_id).get(answer, []):
            out["lost"] += 1
            print(
                f"  lost native vote: poll {poll_id} ({row.status}, closed {row.closed_at}) user {user_id} "
                f"answer {answer} (option {want}), stored {stored.get((poll_id, user_id))}"
            )
    for key in ("posts", "missed", "duplicates", "closes", "closes_with_debate", "late", "unanswered", "lost"):
        out.setdefault(key, 0)
    for key in ("doubled", "outage_blocked", "outage_deleted", "revoked_blocked"):
        out.setdefault(key, 0)
    return dict(out)
