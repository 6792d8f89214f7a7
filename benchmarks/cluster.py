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

The database must be PostgreSQL and is emptied first (its public schema is dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import create_async_engine

from bot.domain.shards import format_shards, shard_of
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


class Proc:
    def __init__(self, name: str, shards: tuple[int, ...], count: int) -> None:
        self.name, self.shards, self.count = name, shards, count
        self.proc: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self.ready_at: float | None = None
        self.reconciled_at: float | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self, env: dict[str, str]) -> None:
        args = ["run", "--shards", format_shards(self.shards), "--shard-count", str(self.count)]
        self.started = time.monotonic()
        self.ready_at = self.reconciled_at = None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if " ready as " in line and self.ready_at is None:
                self.ready_at = time.monotonic()
            if "servers reconciled" in line and self.reconciled_at is None:
                self.reconciled_at = time.monotonic()

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
        "--wave-delay",
        type=int,
        default=300,
        help="seconds from start to the wave's slot (after every cluster is ready)",
    )
    args = parser.parse_args()
    url = args.database_url
    if not url.startswith("postgresql"):
        sys.exit("benchmarks.cluster: --database-url must be PostgreSQL (clusters share one database)")

    # A large bot's max_concurrency (16): all 8 shards may identify at once; Discord's 5 s interval.
    sb = Sandbox(max_concurrency=16, identify_interval=5.0, heartbeat_interval=41250)
    await sb.start()
    print(f"cluster benchmark: {args.servers:,} servers, {args.shards} shards, {args.clusters} clusters, PostgreSQL")

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
        if extra > 0:
            per = (rss_kb(p.proc.pid) - base_kb) / extra
            print(f"  {p.name}: {per:.1f} KB per additional server (over the {args.baseline_servers:,}-server process)")

    if args.wave:

        def posted() -> dict[int, int]:
            return {gid: sum(1 for m in sb.messages(ch) if m.get("embeds")) for gid, ch in channels.items()}

        first = procs[0]
        own = [gid for gid in channels if shard_of(gid, args.shards) in first.shards]
        wave_start = None
        killed = False
        deadline = time.monotonic() + 900
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

    for p in procs:
        await p.stop()
    await db.close()
    await sb.stop()


if __name__ == "__main__":
    asyncio.run(main())
