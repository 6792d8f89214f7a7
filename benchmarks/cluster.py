"""Clusters on PostgreSQL: N servers, S shards, C `commonground run` processes against the sandbox.

    .venv/bin/python -m benchmarks.cluster --database-url postgresql+asyncpg://... \\
        [--servers 20000] [--shards 8] [--clusters 2] [--wave 5000] [--kill]

The sandbox runs in this process (Discord's side); every cluster is a real `commonground run --shards
a-b --shard-count S` child process. Printed:

- ready: seconds from starting the processes until every cluster logged READY of all its shards
  ("ready as") and until its server reconciliation finished; then RSS of each process, and per 1,000
  servers it holds. With --baseline-servers (default 1,000) a single process holding that many is
  measured first, so the figure per *additional* server is (RSS_cluster - RSS_baseline) / extra servers.
- wave: ``--wave`` servers get a schedule due 90 s after the clusters are ready (one slot, UTC); the
  posts are counted in the sandbox: duplicates and missed. With ``--kill`` the cluster holding shard 0
  is SIGKILLed once a third of its posts are out, restarted at once, and the wave must still end with
  0 duplicates and 0 missed.
- clicks (``--clicks RATE``): once every wave post is out and each process's idle CPU has been read,
  open-loop clicks on one wave poll per cluster through all clusters at once, then the same click plan
  answered by ``benchmarks/bare_bot.py`` processes on the same shards: clicks answered, reply p50/p99,
  vote rows = recount, and the CPU time per answered click of both (the bot's against discord.py's floor).
  ``BENCH_PY_SPY=dir`` samples every process with py-spy while the clicks run (``benchmarks/profile_top.py``).

A quick clicks run on 2 cores (about 2 minutes; no baseline process, a wave of 8 posts):

    .venv/bin/python -m benchmarks.cluster --database-url postgresql+asyncpg://... \
        --servers 400 --baseline-servers 0 --wave 8 --wave-delay 20 --clicks 200

The database must be PostgreSQL and is emptied first (its public schema is dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.domain.shards import format_shards, shard_of
from bot.runtime import run
from bot.sandbox.server import Sandbox
from bot.storage import guilds as guild_store
from bot.storage import schedules as schedule_store
from bot.storage.database import Database


def spread_id(k: int) -> int:
    """Server ids spread like Discord's (years of creation times), so shards get even shares."""
    return ((50_000_000 + k * 7919) << 22) | (k & 0xFFF)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/<pid>/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proc:
    """A cluster: `commonground run` on a range of shards, or (``bare``) the bare discord.py bot."""

    def __init__(self, name: str, shards: tuple[int, ...], count: int, *, bare: bool = False) -> None:
        self.name, self.shards, self.count, self.bare = name, shards, count, bare
        # The bare bot reconciles nothing: READY of all its shards is its start-up.
        self.marker = " ready as " if bare else "servers reconciled"
        self.proc: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self.ready_at: float | None = None
        self.reconciled_at: float | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self, env: dict[str, str]) -> None:
        module, command = ("benchmarks.bare_bot", []) if self.bare else ("bot", ["run"])
        args = [*command, "--shards", format_shards(self.shards), "--shard-count", str(self.count)]
        self.started = time.monotonic()
        self.ready_at = self.reconciled_at = None
        profile = []
        if env.get("BENCH_PROFILE"):  # a directory: each process runs under cProfile, written there at exit
            profile = ["-m", "cProfile", "-o", f"{env['BENCH_PROFILE']}/{self.name}.prof"]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *profile, "-m", module, *args, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            self._keep(line)
            if " ready as " in line and self.ready_at is None:
                self.ready_at = time.monotonic()
            if self.marker in line and self.reconciled_at is None:
                self.reconciled_at = time.monotonic()

    def _keep(self, line: str) -> None:
        if os.environ.get("BENCH_LOGS"):  # a directory: every process's log is kept there
            with open(f"{os.environ['BENCH_LOGS']}/{self.name}.log", "a") as f:
                print(line, file=f)

    async def wait_reconciled(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.reconciled_at is None:
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited: " + "\n".join(self.lines[-20:]))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not reconciled in {timeout}s: " + "\n".join(self.lines[-10:]))
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


@dataclass
class Target:
    """One posted poll in a server of one cluster, and the members who click it."""

    cluster: str
    guild_id: int
    channel_id: int
    message_id: int
    poll_id: int
    options: int
    members: list[int] = field(default_factory=list)


def _custom_ids(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["custom_id"]] if isinstance(node.get("custom_id"), str) else []
        return found + [c for v in node.values() for c in _custom_ids(v)]
    if isinstance(node, list):
        return [c for v in node for c in _custom_ids(v)]
    return []


def click_target(sb: Sandbox, proc: Proc, gid: int, channel_id: int, members: int) -> Target:
    """The wave's poll in server ``gid`` (its vote buttons), with ``members`` new members to click it."""
    for msg in sb.messages(channel_id):
        votes = [c for c in _custom_ids(msg.get("components") or []) if c.startswith("poll:vote:")]
        if votes:
            poll_id = int(votes[0].split(":")[2])
            t = Target(proc.name, gid, channel_id, int(msg["id"]), poll_id, len(votes))
            t.members = [sb.add_member(gid, f"clicker{i}").id for i in range(members)]
            return t
    raise LookupError(f"no poll posted in server {gid} of {proc.name}")


async def click(
    sb: Sandbox, targets: list[Target], procs: list[Proc], rate: float, seconds: float, seed: int
) -> dict[str, Any]:
    """Open-loop clicks at ``rate`` per second for ``seconds``, spread evenly over the targets (so over the
    clusters), members and options picked at random with ``seed``; the clusters' CPU time is read around it."""
    rng = random.Random(seed)
    total = int(rate * seconds)
    plan = []
    for i in range(total):
        t = targets[i % len(targets)]
        plan.append((t, rng.choice(t.members), rng.randrange(t.options)))
    sent: list[tuple[Target, int, int, Any]] = []
    loop = asyncio.get_running_loop()

    async def send(t: Target, user_id: int, idx: int) -> None:
        ix = await sb.click(t.channel_id, t.message_id, f"poll:vote:{t.poll_id}:{idx}", user_id)
        sent.append((t, user_id, idx, ix))
        first = await ix.response(timeout=30)
        if first["type"] == 5:  # deferred: the answer is the follow-up
            await sb.wait_for(lambda: ix.followups, timeout=30)

    spies = await start_py_spy(procs, seconds)
    # The sandbox stands in for Discord and keeps every record for the checks: its collector's pauses
    # (full collections over that heap) would count as the bot's reply time, so it is off while the
    # clicks run, as in benchmarks/e2e_votes.py's sandbox.
    gc.collect()
    gc.disable()
    cpu0 = {p.name: cpu_seconds(p.proc.pid) for p in procs if p.proc is not None}
    start = loop.time()
    tasks = []
    for i, (t, user_id, idx) in enumerate(plan):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # paces the open-loop sender; every click is awaited below
        tasks.append(asyncio.create_task(send(t, user_id, idx)))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = loop.time() - start
    gc.enable()
    await asyncio.sleep(1.0)  # replies answered at the deadline: their CPU is the clusters' too
    cpu = {p.name: cpu_seconds(p.proc.pid) - cpu0[p.name] for p in procs if p.proc is not None}
    for spy in spies:
        await spy.wait()
    answered = [ix for _, _, _, ix in sent if ix.callbacks]
    latencies = sorted(ix.callbacks[0]["at"] - ix.created_at for ix in answered)
    last: dict[tuple[int, int], int] = {}
    clicked: dict[tuple[int, int], set[int]] = {}
    for t, user_id, idx, ix in sorted(sent, key=lambda s: s[3].callbacks[0]["at"] if s[3].callbacks else 0):
        if not ix.callbacks:
            continue
        clicked.setdefault((t.poll_id, user_id), set()).add(idx)
        content = (ix.callbacks[0]["data"] or {}).get("content", "")
        if ix.callbacks[0]["type"] == 5 and ix.followups:
            content = ix.followups[0].get("content", "")  # deferred under load: the answer is the follow-up
        if content.startswith(("You chose", "You already chose")):
            last[(t.poll_id, user_id)] = idx
    return {
        "total": total,
        "elapsed": elapsed,
        "errors": sum(isinstance(r, BaseException) for r in results),
        "answered": len(answered),
        "per_cluster": {t.cluster: sum(1 for s in sent if s[0] is t and s[3].callbacks) for t in targets},
        "not_one_callback": sum(1 for *_, ix in sent if len(ix.callbacks) != 1),
        "latencies": latencies,
        "cpu": cpu,
        "last": last,
        "clicked": clicked,
    }


async def start_py_spy(procs: list[Proc], seconds: float) -> list[asyncio.subprocess.Process]:
    """With BENCH_PY_SPY=dir: sample each process with py-spy (a dev tool, not a dependency) while the
    clicks are sent, as collapsed stacks in dir/<name>.txt (``benchmarks/profile_top.py`` sums them)."""
    folder = os.environ.get("BENCH_PY_SPY")
    if not folder:
        return []
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    spies = []
    for p in procs:
        assert p.proc is not None
        args = ["record", "--pid", str(p.proc.pid), "--rate", "100", "--duration", str(int(seconds) + 1)]
        args += ["--format", "raw", "--nonblocking", "-o", f"{folder}/{p.name}.txt"]
        quiet = asyncio.subprocess.DEVNULL
        spies.append(await asyncio.create_subprocess_exec(spy, *args, stdout=quiet, stderr=quiet))
    await asyncio.sleep(0.5)  # attached before the first click
    return spies


async def idle_cpu(procs: list[Proc], seconds: float, *, settle: float = 60.0) -> dict[str, float]:
    """Each process's CPU per second while nothing happens (heartbeats, timers): the fixed cost that a
    higher click rate amortises. A process just started still works for a while after it logged its
    reconciliation (guilds arriving, closes re-armed): 1-second windows are read until every process
    stays under 20 ms of CPU in one (at most ``settle`` seconds), then the ``seconds`` window is read."""

    async def window(length: float) -> dict[str, float]:
        before = {p.name: cpu_seconds(p.proc.pid) for p in procs if p.proc is not None}
        await asyncio.sleep(length)  # a measuring window, not a wait for state
        return {p.name: (cpu_seconds(p.proc.pid) - before[p.name]) / length for p in procs if p.proc is not None}

    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    while loop.time() < deadline and max((await window(1.0)).values(), default=0.0) >= 0.02:
        pass
    return await window(seconds)


def print_clicks(label: str, stats: dict[str, Any], rate: float) -> float:
    lat = stats["latencies"]
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
    cpu = sum(stats["cpu"].values())
    per_click = cpu / max(stats["answered"], 1) * 1e6
    per = ", ".join(f"{name} {n:,}" for name, n in stats["per_cluster"].items())
    print(
        f"  {label}: {stats['total']:,} clicks sent at {rate:.0f}/s, answered {stats['answered']:,} ({per}); "
        f"errors {stats['errors']}, not exactly one callback {stats['not_one_callback']}; "
        f"{stats['answered'] / stats['elapsed']:,.0f} clicks/s answered over {stats['elapsed']:.1f} s; "
        f"reply p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms"
    )
    cpus = ", ".join(f"{name} {s:.2f} s" for name, s in stats["cpu"].items())
    print(f"  {label}: CPU of the clusters {cpu:.2f} s ({cpus}) = {per_click:,.0f} µs per answered click")
    return per_click


async def vote_rows_match(url: str, targets: list[Target], stats: dict[str, Any]) -> bool:
    """Per poll: the vote rows = the last vote event of each member (the recount), for exactly the members
    whose last answered click said it was stored, each row one of that member's clicks."""
    engine = create_async_engine(url)
    ok = True
    try:
        async with engine.connect() as conn:
            for t in targets:
                found = await conn.execute(
                    text("SELECT user_id, option_idx FROM votes WHERE poll_id = :p"), {"p": t.poll_id}
                )
                rows = {row[0]: row[1] for row in found}
                history = (
                    await conn.execute(
                        text("SELECT user_id, kind, option_idx FROM vote_events WHERE poll_id = :p ORDER BY id"),
                        {"p": t.poll_id},
                    )
                ).all()
                recount: dict[int, int] = {}
                for user_id, kind, idx in history:
                    if kind == "withdraw":
                        recount.pop(user_id, None)
                    else:
                        recount[user_id] = idx
                answered = {u for (p, u) in stats["last"] if p == t.poll_id}
                foreign = [u for u, idx in rows.items() if idx not in stats["clicked"].get((t.poll_id, u), ())]
                good = rows == recount and set(rows) == answered and not foreign
                print(
                    f"  {t.cluster}, poll {t.poll_id}: {len(rows):,} vote rows, recount {len(recount):,}, "
                    f"rows = recount {rows == recount}; members with a row {len(rows):,}, members told their vote "
                    f"is stored {len(answered):,}; rows not among the member's clicks {len(foreign)}"
                )
                ok = ok and good
    finally:
        await engine.dispose()
    return ok


async def fresh_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        await conn.exec_driver_sql("CREATE SCHEMA public")
    await engine.dispose()


def env_for(sb: Sandbox, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_URL", "COMMONGROUND_"))}
    env.update(
        DISCORD_TOKEN=sb.token,
        DISCORD_API_BASE=sb.api_base,
        DISCORD_GATEWAY_URL=sb.gateway_url,
        DATABASE_URL=url,
        LOG_LEVEL="INFO",
    )
    return env


def split(shards: int, clusters: int) -> list[tuple[int, ...]]:
    per = -(-shards // clusters)
    return [tuple(range(i, min(i + per, shards))) for i in range(0, shards, per)]


async def measure_ready(sb: Sandbox, url: str, procs: list[Proc], servers_of: dict[str, int]) -> None:
    env = env_for(sb, url)
    t0 = time.monotonic()
    await asyncio.gather(*(p.start(env) for p in procs))
    await asyncio.gather(*(p.wait_reconciled(900) for p in procs))
    ready = max(p.ready_at or 0 for p in procs) - t0
    reconciled = max(p.reconciled_at or 0 for p in procs) - t0
    print(f"  every shard ready after {ready:.1f} s; every cluster reconciled after {reconciled:.1f} s")
    for p in procs:
        assert p.proc is not None
        kb = rss_kb(p.proc.pid)
        n = servers_of[p.name]
        print(
            f"  {p.name} (shards {format_shards(p.shards)} of {p.count}): {n:,} servers, "
            f"ready {(p.ready_at or 0) - p.started:.1f} s, RSS {kb / 1024:.1f} MB, "
            f"{kb / max(n, 1) * 1000 / 1024:.1f} MB per 1,000 servers"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://… (emptied first)")
    parser.add_argument("--servers", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--baseline-servers", type=int, default=1_000)
    parser.add_argument("--wave", type=int, default=0, help="servers with a post due in one wave")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the cluster holding shard 0 mid-wave")
    parser.add_argument(
        "--clicks", type=float, default=0, help="after the wave: clicks/s in total through both clusters"
    )
    parser.add_argument("--click-seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1, help="clicks: alternating runs of the bot and the bare bot")
    parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="before the clicks: each process's CPU while idle"
    )
    parser.add_argument("--members", type=int, default=1000, help="members clicking, per cluster's poll")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--wave-delay",
        type=int,
        default=300,
        help="seconds from start to the wave's slot (after every cluster is ready)",
    )
    args = parser.parse_args()
    url = args.database_url
    if not url.startswith("postgresql"):
        sys.exit("benchmarks.cluster: --database-url must be PostgreSQL (clusters share one database)")
    if args.clicks and args.wave < 4 * args.clusters * args.repeat:
        # Servers fall on shards unevenly: 4 per cluster and run leaves every cluster a poll for each run.
        sys.exit("benchmarks.cluster: --clicks needs a wave poll per cluster and run: --wave 4 x clusters x repeat")

    # A large bot's max_concurrency (16): all 8 shards may identify at once; Discord's 5 s interval.
    sb = Sandbox(max_concurrency=16, identify_interval=5.0, heartbeat_interval=41250)
    await sb.start()
    print(f"cluster benchmark: {args.servers:,} servers, {args.shards} shards, {args.clusters} clusters, PostgreSQL")

    base_kb = 0
    if args.baseline_servers:  # 0: no baseline process (a quick clicks run)
        # Baseline: one process holding --baseline-servers servers (one shard).
        base_ids = [spread_id(k) for k in range(args.baseline_servers)]
        for gid in base_ids:
            sb.create_guild("b", guild_id=gid)
        await fresh_postgres(url)
        await (await Database.open(url)).close()  # migrated once, before the processes start
        base = Proc("baseline", (0,), 1)
        print(f"baseline: one process, {args.baseline_servers:,} servers")
        await measure_ready(sb, url, [base], {"baseline": args.baseline_servers})
        assert base.proc is not None
        base_kb = rss_kb(base.proc.pid)
        await base.stop()
        for gid in base_ids:
            sb.remove_guild(gid)
            del sb.guilds[gid]

    t = time.monotonic()
    ids = [spread_id(k) for k in range(args.baseline_servers, args.baseline_servers + args.servers)]
    channels: dict[int, int] = {}
    for i, gid in enumerate(ids):
        sb.create_guild(f"s{i}", guild_id=gid)
        if i < args.wave:
            channels[gid] = sb.create_channel(gid, "debates").id
    print(f"sandbox: {args.servers:,} servers built in {time.monotonic() - t:.1f} s")
    await fresh_postgres(url)
    db = await Database.open(url)
    now = datetime.now(UTC)
    if args.wave:
        slot = (now + timedelta(seconds=args.wave_delay + 60)).replace(second=0, microsecond=0)
        async with db.write() as conn:
            for gid in list(channels):
                await guild_store.ensure(conn, gid, now=now)
                await schedule_store.upsert(
                    conn, gid, now=now, channel_id=channels[gid], post_time=slot.strftime("%H:%M"), timezone="UTC",
                    weekdays=0b1111111, ping_role_id=None, thread=False, pin=False, poll_hours=24,
                    poll_style="buttons", review_channel_id=None,
                )  # fmt: skip
        print(f"wave: {args.wave:,} servers due at {slot:%H:%M} UTC (armed by each cluster's reconciliation)")
    groups = split(args.shards, args.clusters)
    procs = [Proc(f"cluster-{chr(97 + i)}", g, args.shards) for i, g in enumerate(groups)]
    servers_of = {p.name: sum(1 for gid in ids if shard_of(gid, args.shards) in p.shards) for p in procs}
    print(f"clusters: {args.clusters} processes")
    await measure_ready(sb, url, procs, servers_of)
    for p in procs:
        assert p.proc is not None
        n = servers_of[p.name]
        extra = n - args.baseline_servers
        if extra > 0 and args.baseline_servers:
            per = (rss_kb(p.proc.pid) - base_kb) / extra
            print(f"  {p.name}: {per:.1f} KB per additional server (over the {args.baseline_servers:,}-server process)")

    if args.wave:
        slot_at = time.monotonic() + (slot - datetime.now(UTC)).total_seconds()
        if any((p.reconciled_at or 0) > slot_at for p in procs):
            print(
                "  a cluster finished reconciling after the wave's slot, so it armed its schedules for the next "
                "day: those servers will show as missed; raise --wave-delay"
            )

    if args.wave:

        def posted() -> dict[int, int]:
            return {gid: sum(1 for m in sb.messages(ch) if m.get("embeds")) for gid, ch in channels.items()}

        first = procs[0]
        own = [gid for gid in channels if shard_of(gid, args.shards) in first.shards]
        wave_start = None
        killed = False
        # Until 30 minutes after the slot: 5,000 posts at each cluster's REST share take minutes.
        deadline = slot_at + 1800
        while time.monotonic() < deadline:
            counts = posted()
            done = sum(1 for n in counts.values() if n)
            if done and wave_start is None:
                wave_start = time.monotonic()
            if args.kill and not killed and sum(1 for g in own if counts[g]) >= len(own) // 3:
                first.kill()
                killed = True
                await asyncio.sleep(0.5)
                print(
                    f"  SIGKILLed {first.name} with {sum(1 for g in own if counts[g]):,} of its {len(own):,} posts out"
                )
                await first.start(env_for(sb, url))
            if done == len(channels):
                break
            await asyncio.sleep(0.5)
        counts = posted()
        duration = time.monotonic() - (wave_start or time.monotonic())
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        missed = sum(1 for n in counts.values() if n == 0)
        print(
            f"wave: {sum(counts.values()):,} posts for {len(channels):,} servers in {duration:.1f} s "
            f"({'with' if killed else 'without'} a SIGKILL): duplicates={duplicates}, missed={missed}"
        )

    if args.clicks:
        await clicks_phase(sb, url, args, procs, channels)

    for p in procs:
        await p.stop()
    await db.close()
    await sb.stop()


async def clicks_phase(
    sb: Sandbox, url: str, args: argparse.Namespace, procs: list[Proc], channels: dict[int, int]
) -> None:
    """Clicks on one wave poll per cluster, through every cluster at once; then the same clicks (same
    plan, same polls) answered by bare discord.py bots on the same shards: the CPU floor per click.

    With ``--repeat N`` the pair runs N times, alternating (clusters restarted, a new poll per cluster
    each time): CPU time per click moves by tens of percent with what else the machine runs, and the
    alternation exposes both sides to the same drift."""
    for p in procs:
        await p.wait_reconciled(900)  # a cluster restarted by --kill is serving again
    env = env_for(sb, url)
    polls_of = {p.name: [g for g in channels if shard_of(g, args.shards) in p.shards] for p in procs}
    bare = [Proc(f"bare-{p.name}", p.shards, p.count, bare=True) for p in procs]
    print(
        f"clicks: {args.clicks:.0f}/s for {args.click_seconds:.0f} s over {len(procs)} polls "
        f"(one per cluster, {args.members:,} members each), {args.repeat} time(s)"
    )
    if any(len(found) < args.repeat for found in polls_of.values()):
        sys.exit("benchmarks.cluster: a cluster has fewer wave polls than --repeat runs: raise --wave")
    pairs: list[tuple[float, float]] = []
    for rep in range(args.repeat):
        if rep:
            await asyncio.gather(*(p.start(env) for p in procs))
            await asyncio.gather(*(p.wait_reconciled(900) for p in procs))
        # The wave has posted everything (main waits for it); what a post does after (its thread, its
        # pin) is done within a couple of seconds, then the clusters are idle.
        idle = await idle_cpu(procs, args.idle_seconds)
        print("  idle before the clicks: " + ", ".join(f"{n} {s * 1000:.1f} ms CPU/s" for n, s in idle.items()))
        targets = []
        for p in procs:
            gid = polls_of[p.name][rep]
            targets.append(click_target(sb, p, gid, channels[gid], args.members))
        real = await click(sb, targets, procs, args.clicks, args.click_seconds, args.seed + rep)
        per_click = print_clicks("Common Ground", real, args.clicks)
        rows_ok = await vote_rows_match(url, targets, real)
        once = real["answered"] == real["total"] and real["not_one_callback"] == 0 and real["errors"] == 0
        print(f"  every click answered exactly once: {once}; vote rows = recount: {rows_ok}")
        for p in procs:
            await p.stop()

        await asyncio.gather(*(b.start(env) for b in bare))
        await asyncio.gather(*(b.wait_reconciled(900) for b in bare))
        for t, b in zip(targets, bare, strict=True):
            t.cluster = b.name
        idle = await idle_cpu(bare, args.idle_seconds)
        print("  idle before the clicks: " + ", ".join(f"{n} {s * 1000:.1f} ms CPU/s" for n, s in idle.items()))
        floor_stats = await click(sb, targets, bare, args.clicks, args.click_seconds, args.seed + rep)
        floor = print_clicks("bare discord.py", floor_stats, args.clicks)
        print(f"  bot CPU per click / bare discord.py floor: {per_click / max(floor, 1):.2f}x (goal: within 2x)")
        for b in bare:
            await b.stop()
        pairs.append((per_click, floor))
    if len(pairs) > 1:
        bot, floor = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        ratios = ", ".join(f"{a / max(b, 1):.2f}x" for a, b in pairs)
        print(
            f"clicks over {len(pairs)} alternating runs: CPU per answered click, median {bot:,.0f} µs (bot) and "
            f"{floor:,.0f} µs (bare discord.py): {bot / max(floor, 1):.2f}x; each run {ratios}"
        )


if __name__ == "__main__":
    run(main())  # uvloop, as the clusters and the bare bots run (and as benchmarks/e2e_votes.py's sandbox)
