"""Shared tools of the reliability suite: a world of servers, polls posted through the real service,
timed clicks, and the checks every case ends with (integrity_check, tally = recount, a dump of every
table, allowed_mentions on every bot message)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.domain.packs import Dilemma, Option
from bot.sandbox.server import Sandbox
from bot.storage import polls as poll_store
from bot.storage.database import Database
from tests.harness import TEST_IDENTIFY_INTERVAL, Harness

DILEMMA = Dilemma(
    "Who comes first when the two pull apart?",
    (Option("Me first", -1.0), Option("Both equally", 0.0), Option("Us first", 1.0)),
)
DEADLINE = 3.0  # Discord's window for the first answer to an interaction
EPHEMERAL = 64
SUCCESS = "You chose"  # the start of a committed vote's reply
STORE_FAILED = "couldn't record your vote"
DISABLED = "<button disabled>"


# -- the world -----------------------------------------------------------------------------------


def tiny_chart(*_args, **_kwargs) -> bytes:
    """Stands in for ``bot.ui.charts.tally_chart`` (about 0.14 s of CPU a chart) where a case closes many
    polls and asserts nothing about their images: the results still carry a PNG file; rendering is
    tests/unit/test_charts.py's job, and the e2e tests keep the real charts."""
    return b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Server:
    guild: Any
    channel: Any
    members: list[Any] = field(default_factory=list)


def build_servers(sb: Sandbox, count: int, members: int, *, prefix: str = "server") -> list[Server]:
    """``count`` servers with one #debates channel and ``members`` members each (before or after start)."""
    out = []
    for i in range(count):
        guild = sb.create_guild(f"{prefix}-{i}")
        channel = sb.create_channel(guild.id, "debates")
        out.append(Server(guild, channel, [sb.add_member(guild.id, f"{prefix}{i}-m{j}") for j in range(members)]))
    return out


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path, *, servers: int = 0, members: int = 0, sandbox_options: dict | None = None, **harness: Any
) -> AsyncIterator[tuple[Harness, list[Server]]]:
    """A harness whose sandbox already holds ``servers`` extra servers when the bot first connects."""
    sb = Sandbox(**{"identify_interval": TEST_IDENTIFY_INTERVAL, **(sandbox_options or {})})
    extra = build_servers(sb, servers, members)
    try:
        async with Harness(tmp_path, sandbox=sb, **harness) as h:
            if extra:
                await sb.wait_for(lambda: all(h.bot.get_guild(s.guild.id) for s in extra), timeout=20)
            yield h, extra
    finally:
        await sb.stop()


async def post_poll(
    h: Harness, channel=None, *, dilemma: Dilemma = DILEMMA, hours: int = 24, style: str = "buttons"
) -> tuple[int, int]:
    """Create and post a poll through the real PollService; returns ``(poll id, message id)``."""
    ch = channel or h.channel
    service = h.bot.polls
    target = h.bot.get_channel(ch.id) or await h.bot.fetch_channel(ch.id)
    poll_id = await service.post(
        target,
        guild_id=ch.guild_id,
        channel_id=ch.id,
        dilemma=dilemma,
        closes_at=h.clock.now() + timedelta(hours=hours),
        style=style,
    )
    async with h.db.read() as conn:
        row = await poll_store.get(conn, poll_id)
    assert row is not None and row.message_id is not None
    return poll_id, row.message_id


def vote_id(poll_id: int, idx: int) -> str:
    return f"poll:vote:{poll_id}:{idx}"


@dataclass
class Click:
    user_id: int
    poll_id: int
    idx: int
    latency: float = math.inf  # seconds from the click to the first callback
    first_type: int | None = None
    text: str = ""  # the final visible answer (the message, or the follow-up after a defer)
    ephemeral: bool = False
    interaction: Any = None
    started: float = 0.0  # time.monotonic() at the click

    @property
    def acked(self) -> bool:
        return self.text.startswith(SUCCESS)


async def click(
    sb: Sandbox, channel_id: int, message_id: int, poll_id: int, idx: int, user_id: int, *, timeout: float = 20
) -> Click:
    """A member clicks an option; waits for the first callback and, after a defer, the follow-up."""
    out = Click(user_id, poll_id, idx, started=time.monotonic())
    t0 = time.perf_counter()
    try:
        ix = await sb.click(channel_id, message_id, vote_id(poll_id, idx), user_id)
    except PermissionError:  # the button was disabled (the poll closed): a client cannot click it
        out.text = DISABLED
        return out
    out.interaction = ix
    try:
        first = await ix.response(timeout=timeout)
    except TimeoutError:
        out.text = f"<no answer; rejected callbacks: {ix.rejected_callbacks}>"
        return out
    out.latency = time.perf_counter() - t0
    out.first_type = first["type"]
    if first["type"] == 5:
        try:
            (message, *_rest) = await sb.wait_for(lambda: ix.followups, timeout=timeout)
        except TimeoutError:
            out.text = "<deferred, then no follow-up>"
            return out
        out.text = message.get("content") or ""
        out.ephemeral = bool((message.get("flags") or 0) & EPHEMERAL)
    else:
        data = first.get("data") or {}
        out.text = data.get("content") or ""
        out.ephemeral = bool((data.get("flags") or 0) & EPHEMERAL)
    return out


async def gather_limited(coros: Iterable, limit: int) -> list:
    """Run coroutines with at most ``limit`` in flight (as a burst of members would click)."""
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


# -- the checks every case ends with -------------------------------------------------------------


async def stored_votes(db: Database) -> dict[tuple[int, int], int]:
    async with db.read() as conn:
        rows = (await conn.exec_driver_sql("SELECT poll_id, user_id, option_idx FROM votes")).all()
    return {(p, u): i for p, u, i in rows}


async def check_database(db: Database, *, closed_recount: bool = True) -> dict[str, int]:
    """``PRAGMA integrity_check = ok``; every tally equals a recount of the vote rows; one row per
    (poll, member); no vote row names another server than its poll's. Returns a few counts."""
    async with db.read() as conn:
        integrity = (await conn.exec_driver_sql("PRAGMA integrity_check")).scalar_one()
        assert integrity == "ok", integrity
        fk = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
        assert fk == [], fk
        dupes = (
            await conn.exec_driver_sql(
                "SELECT count(*) FROM (SELECT poll_id, user_id FROM votes GROUP BY 1, 2 HAVING count(*) > 1)"
            )
        ).scalar_one()
        assert dupes == 0
        crossing = (
            await conn.exec_driver_sql(
                "SELECT count(*) FROM votes v JOIN polls p ON p.id = v.poll_id WHERE v.guild_id != p.guild_id"
            )
        ).scalar_one()
        assert crossing == 0
        poll_rows = (await conn.exec_driver_sql("SELECT id, status, style FROM polls")).all()
        recount: dict[int, dict[int, int]] = {}
        for pid, idx, n in (
            await conn.exec_driver_sql("SELECT poll_id, option_idx, count(*) FROM votes GROUP BY 1, 2")
        ).all():
            recount.setdefault(pid, {})[idx] = n
        for pid, status, style in poll_rows:
            tally = await poll_store.tally(conn, pid)
            assert tally == recount.get(pid, {}), (pid, tally, recount.get(pid))
            if status == "closed" and closed_recount and style == "buttons":
                finals = dict(
                    (
                        await conn.exec_driver_sql(
                            "SELECT idx, final_count FROM poll_options WHERE poll_id = ?", (pid,)
                        )
                    ).all()
                )
                assert {i: n for i, n in finals.items() if n} == recount.get(pid, {}), (pid, finals, recount.get(pid))
        n_votes = (await conn.exec_driver_sql("SELECT count(*) FROM votes")).scalar_one()
    return {"polls": len(poll_rows), "votes": n_votes}


def dump_file(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table (sorted), read with a separate sqlite3 connection."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


async def dump(db: Database) -> dict[str, list[tuple]]:
    async with db.read() as conn:
        tables = [
            r[0]
            for r in (
                await conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            ).all()
        ]
        out = {}
        for t in tables:
            rows = (await conn.exec_driver_sql(f'SELECT * FROM "{t}"')).all()
            out[t] = sorted((tuple(r) for r in rows), key=repr)
    return out


def diff(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> dict[str, tuple[int, int]]:
    """Tables whose rows changed: ``{table: (rows removed, rows added)}``."""
    out = {}
    for table in sorted(set(before) | set(after)):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            out[table] = (len(old - new), len(new - old))
    return out


def bot_message_payloads(sb: Sandbox) -> list[tuple[str, dict]]:
    """Every message body the bot sent: channel posts, edits, interaction answers, follow-ups."""
    out = []
    for rec in sb.requests:
        body = rec.json
        if not isinstance(body, dict) or rec.method not in ("POST", "PATCH"):
            continue
        if rec.route.endswith("/callback"):
            data = body.get("data")
            if body.get("type") in (4, 7) and isinstance(data, dict):
                out.append((f"{rec.method} {rec.route}", data))
        elif ("/messages" in rec.route or rec.route.startswith("/webhooks/")) and any(
            k in body for k in ("content", "embeds", "components", "poll")
        ):
            out.append((f"{rec.method} {rec.route}", body))
    return out


def mention_violations(sb: Sandbox, *, allowed_roles: Iterable[int] = ()) -> list[str]:
    """Bot messages whose allowed_mentions would ping anything but an explicitly chosen role."""
    allowed = {str(r) for r in allowed_roles}
    bad = []
    for where, body in bot_message_payloads(sb):
        am = body.get("allowed_mentions")
        if am is None and not body.get("content"):
            continue  # only content can ping: embeds, components and polls never do
        if am is None:
            bad.append(f"{where}: no allowed_mentions (Discord would parse everything)")
            continue
        if am.get("parse"):
            bad.append(f"{where}: parse={am['parse']}")
        if am.get("users"):
            bad.append(f"{where}: users={am['users']}")
        roles = {str(r) for r in am.get("roles") or []}
        if roles - allowed:
            bad.append(f"{where}: roles={sorted(roles - allowed)}")
        if am.get("replied_user"):
            bad.append(f"{where}: replied_user")
    for ch in sb.channels.values():
        for msg in ch.messages.values():
            if int(msg["author"]["id"]) != sb.bot_user_id:
                continue
            if msg.get("mention_everyone") or msg.get("mentions"):
                bad.append(f"message {msg['id']}: pings {msg.get('mentions')} everyone={msg.get('mention_everyone')}")
            if {str(r) for r in msg.get("mention_roles") or []} - allowed:
                bad.append(f"message {msg['id']}: pings roles {msg['mention_roles']}")
    return bad


class Collect(logging.Handler):
    """Every log line, formatted, at any level (attach to the root logger)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.lines.append(str(record.msg))


@contextlib.contextmanager
def capture_logs(level: str = "INFO"):
    from bot.config import configure_logging

    root = logging.getLogger()
    names = ("discord.http", "discord.gateway", "discord.webhook", "aiosqlite", "bot")
    saved = (root.level, {n: logging.getLogger(n).level for n in names})
    collect = Collect()
    root.addHandler(collect)
    try:
        configure_logging(level)
        yield collect
    finally:
        root.removeHandler(collect)
        root.setLevel(saved[0])
        for n, lvl in saved[1].items():
            logging.getLogger(n).setLevel(lvl)


async def reconciled_after(h: Harness, trigger, *, timeout: float = 30) -> None:
    """Run ``trigger()`` (a reconnect that ends in READY), then wait until every ``on_reconcile``
    listener of the new ``on_ready`` has returned and the jobs it armed have run."""
    seen = asyncio.Event()

    async def mark() -> None:
        seen.set()

    h.bot.add_listener(mark, "on_reconcile")
    try:
        await trigger()
        await asyncio.wait_for(seen.wait(), timeout)
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "discord.py: on_reconcile" and t is not me]
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)
        await h.wait_reconciled(timeout=timeout)
    finally:
        h.bot.remove_listener(mark, "on_reconcile")


async def eventually(check, *, timeout: float = 20, every: float = 0.02) -> None:
    """Re-check an async condition until it holds (work the bot does off the request path), or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def daily_schedule(
    service,
    guild_id: int,
    channel_id: int,
    *,
    post_time: str = "09:00",
    timezone: str = "UTC",
    thread: bool = True,
    poll_hours: int = 24,
    poll_style: str = "buttons",
) -> None:
    """An every-day schedule, saved through the debate service (the back end of /schedule setup)."""
    await service.setup(
        guild_id,
        channel_id=channel_id,
        post_time=post_time,
        timezone=timezone,
        weekdays=0b1111111,
        ping_role_id=None,
        thread=thread,
        pin=False,
        poll_hours=poll_hours,
        poll_style=poll_style,
        review_channel_id=None,
    )


# -- event-loop stalls ---------------------------------------------------------------------------


class LoopStalls:
    """A watchdog for the event loop that the bot, the sandbox and the test share: a loop task stamps a
    heartbeat every ``tick`` seconds; a thread that sees the stamp older than ``threshold`` samples the
    loop thread's stack once per stall, so the soak can say *which code* held the loop, and for how long.

    ``stalls``: (start on the monotonic clock, seconds held, where) per stall; ``where``: seconds held, by the
    innermost repository frame (``file:function``)."""

    def __init__(self, *, tick: float = 0.02, threshold: float = 0.25) -> None:
        self.tick = tick
        self.threshold = threshold
        self.stalls: list[tuple[float, float, str]] = []  # (monotonic start, seconds held, where)
        self.where: Counter[str] = Counter()
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop_thread = threading.get_ident()
        self.gc_pauses: Counter[int] = Counter()  # seconds spent in the collector, by generation
        self.gc_runs: Counter[int] = Counter()
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self._loop_thread:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses[info["generation"]] += time.perf_counter() - self._gc_started
            self.gc_runs[info["generation"]] += 1

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self.tick)

    def _watch(self) -> None:
        sampled_for = None
        while not self._stop.wait(self.tick):
            beat = self._beat
            lag = time.monotonic() - beat
            if lag < self.threshold:
                if sampled_for is not None and sampled_for != beat:
                    sampled_for = None
                continue
            if sampled_for == beat:
                continue  # one sample per stall: the frame that was running when it crossed the threshold
            sampled_for = beat
            frame = sys._current_frames().get(self._loop_thread)
            label = _repo_frames(frame)
            # The stall's length is known when the heartbeat moves again.
            while not self._stop.wait(self.tick) and self._beat == beat:
                pass
            held = (self._beat if self._beat != beat else time.monotonic()) - beat
            self.stalls.append((beat, held, label))
            self.where[" < ".join(label.split(" < ")[:2])] += held

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._task = asyncio.create_task(self._heartbeat(), name="loop-stall-heartbeat")
        self._thread = threading.Thread(target=self._watch, name="loop-stall-watch", daemon=True)
        self._thread.start()
        gc.callbacks.append(self._on_gc)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            self._thread.join(5)

    def summary(self, top: int = 8) -> str:
        held = sorted(s for _, s, _ in self.stalls)
        lines = [
            f"loop stalls >= {self.threshold * 1000:.0f} ms: {len(held)}, total {sum(held):.1f} s, "
            f"max {max(held, default=0) * 1000:.0f} ms"
        ]
        lines.append(
            "garbage collections: "
            + ", ".join(f"gen {g}: {self.gc_runs[g]} in {self.gc_pauses[g]:.2f} s" for g in sorted(self.gc_runs))
        )
        lines += [f"  {s:7.2f} s  {where}" for where, s in self.where.most_common(top)]
        return "\n".join(lines)


def _repo_frames(frame: Any, depth: int = 3) -> str:
    """The innermost frame of all (often a library's) in brackets, then the innermost ``depth`` frames of
    ours (bot/, tests/), innermost first."""
    out: list[str] = []
    innermost = None
    while frame is not None and len(out) < depth:
        code = frame.f_code
        name = code.co_filename
        if innermost is None:
            innermost = f"{Path(name).name}:{code.co_name}"
        for root in ("/bot/", "/tests/"):
            if root in name and "/.venv/" not in name:
                out.append(f"{name[name.rindex(root) + 1 :]}:{code.co_name}:{frame.f_lineno}")
                break
        frame = frame.f_back
    if innermost is not None:
        out.insert(0, f"[{innermost}]")
    return " < ".join(out) or "?"
