"""The one-year weekly leaning series: from the weekly aggregates against a scan of the raw vote rows.

    .venv/bin/python -m benchmarks.leaning [--small] [--db PATH] [--keep] [--runs 5]

Builds a database like a big host's (default: 10,000 servers, 200,000 closed polls over two years,
10,000,000 votes; ``--small`` is 1/100 of that) with our migrations applied (``Database.open``), then
bulk-inserts with the stdlib ``sqlite3`` ``executemany``, one transaction per chunk. ``leaning_weekly``
is filled as ``bot.storage.polls.close`` fills it (theme "" plus the poll's theme, week of closing).

Then, for the largest server, it times the one-year weekly series both ways, each in a **fresh process**
(a new connection, so SQLite's page cache is empty) after asking the OS to drop the database file from
its page cache (``posix_fadvise(DONTNEED)``; best effort: it evicts clean pages of our own file without
root and without touching the rest of the machine). It reports the median and max of ``--runs`` cold
runs and a warm run, checks that both paths give the same series, and prints the speed-up.

The bar (issue 5): aggregates <= 10 ms cold, and >= 20x faster than the raw scan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from bot.domain.packs import THEMES as PACK_THEMES

END = datetime(2026, 3, 2, tzinfo=UTC)  # "now" for the data set: two years of polls end here
DAYS = 730
THEMES = tuple(PACK_THEMES)
POSITIONS = (-1.0, 0.0, 1.0)
LABELS = ("The individual first", "Both equally", "The community first")
CHUNK = 500_000
FMT = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's DateTime storage format on SQLite


# --- building ------------------------------------------------------------------------------------


def plan(servers: int, total_polls: int, total_votes: int, rng: np.random.Generator):
    """Per server: polls and mean voters per poll. Server 0 is the largest: a poll a day, 800 voters."""
    big_polls = min(DAYS, total_polls // 4)
    big_votes = min(total_votes // 10, big_polls * 800)
    weights = rng.pareto(1.2, servers - 1) + 1.0
    polls = np.maximum(1, np.floor(weights / weights.sum() * (total_polls - big_polls))).astype(np.int64)
    polls = np.minimum(polls, big_polls - 1)
    deficit = total_polls - big_polls - int(polls.sum())
    while deficit > 0:  # hand out the rounding remainder to servers that still have room
        room = np.flatnonzero(polls < big_polls - 1)
        pick = rng.choice(room, size=min(deficit, room.size), replace=False)
        polls[pick] += 1
        deficit -= pick.size
    polls = np.concatenate([[big_polls], polls])
    # Voters per poll: larger servers (more polls) also have more members; lognormal spread.
    size = polls[1:] ** 0.5 * rng.lognormal(0, 0.5, servers - 1)
    mean_voters = size / (size * polls[1:]).sum() * (total_votes - big_votes)
    mean_voters = np.concatenate([[big_votes / big_polls], mean_voters])
    return polls, mean_voters


def build(path: Path, servers: int, total_polls: int, total_votes: int, seed: int = 1) -> dict[str, int]:
    from bot.storage.database import Database

    async def migrate() -> None:
        db = await Database.open(f"sqlite+aiosqlite:///{path}")
        await db.close()

    asyncio.run(migrate())
    rng = np.random.default_rng(seed)
    polls_per, mean_voters = plan(servers, total_polls, total_votes, rng)
    guild_ids = 10**17 + np.arange(servers, dtype=np.int64) * 7919

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE")  # one big load: no WAL file growing to gigabytes
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")
    con.execute("PRAGMA foreign_keys=OFF")
    # Secondary indexes are rebuilt once after the load (a sort) instead of per row (random writes).
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN ('votes', 'polls')"
    ).fetchall()
    for name, _ in indexes:
        con.execute(f'DROP INDEX "{name}"')

    joined = (END - timedelta(days=DAYS + 30)).strftime(FMT)
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO guilds (id, name, joined_at, builtin_pack_enabled, show_live_counts, vote_min_days) "
        "VALUES (?, ?, ?, 1, 0, 0)",
        [(int(g), f"server {i}", joined) for i, g in enumerate(guild_ids)],
    )
    con.execute("COMMIT")

    weekly: dict[tuple[int, str, str], list[float]] = {}
    poll_id = 0
    votes_written = 0
    pending_polls: list[tuple] = []
    pending_options: list[tuple] = []
    pending_votes: list[np.ndarray] = []
    pending_n = 0

    def flush() -> None:
        nonlocal pending_polls, pending_options, pending_votes, pending_n
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO polls (id, guild_id, channel_id, question, theme, prompt_key, style, status, live_counts, "
            "opened_at, closes_at, closed_at, final_voters, final_total, final_total_sq) "
            "VALUES (?, ?, 1, ?, ?, ?, 'buttons', 'closed', 0, ?, ?, ?, ?, ?, ?)",
            pending_polls,
        )
        con.executemany(
            "INSERT INTO poll_options (poll_id, idx, label, position, final_count) VALUES (?, ?, ?, ?, ?)",
            pending_options,
        )
        if pending_votes:
            block = np.concatenate(pending_votes)
            con.executemany(
                "INSERT INTO votes (poll_id, user_id, guild_id, option_idx, voted_at) VALUES (?, ?, ?, ?, ?)",
                ((p, u, g, o, stamps[p]) for p, u, g, o in block.tolist()),
            )
        con.execute("COMMIT")
        pending_polls, pending_options, pending_votes, pending_n = [], [], [], 0
        stamps.clear()

    stamps: dict[int, str] = {}
    t0 = time.perf_counter()
    for s in range(servers):
        gid = int(guild_ids[s])
        n_polls = int(polls_per[s])
        members = max(12, int(mean_voters[s] * 2.5))
        days = np.sort(rng.choice(DAYS, size=n_polls, replace=n_polls > DAYS))
        drift = rng.normal(0, 0.4)
        for k, day in enumerate(days):
            poll_id += 1
            closed = END - timedelta(days=int(DAYS - day), hours=int(rng.integers(0, 24)))
            n = min(members, int(rng.poisson(mean_voters[s])))
            lean = np.tanh(drift + 0.3 * np.sin(day / 60) + rng.normal(0, 0.5))
            probs = np.array([max(0.05, 0.35 - 0.3 * lean), 0.3, max(0.05, 0.35 + 0.3 * lean)])
            choice = rng.choice(3, size=n, p=probs / probs.sum())
            users = rng.choice(members, size=n, replace=False) + 10**15 + s * 10**5
            counts = np.bincount(choice, minlength=3)
            total = float(counts[2] - counts[0])
            total_sq = float(counts[2] + counts[0])
            theme = THEMES[(s + k) % len(THEMES)]
            stamp = closed.strftime(FMT)
            stamps[poll_id] = stamp
            pending_polls.append(
                (
                    poll_id,
                    gid,
                    f"Dilemma {k} of server {s}",
                    theme,
                    f"builtin/prompt-{k % 43}",
                    (closed - timedelta(days=1)).strftime(FMT),
                    stamp,
                    stamp,
                    int(n),
                    total,
                    total_sq,
                )
            )
            pending_options += [(poll_id, i, LABELS[i], POSITIONS[i], int(counts[i])) for i in range(3)]
            if n:
                block = np.empty((n, 4), dtype=np.int64)
                block[:, 0] = poll_id
                block[:, 1] = users
                block[:, 2] = gid
                block[:, 3] = choice
                pending_votes.append(block)
                pending_n += n
            week = (closed.date() - timedelta(days=closed.weekday())).isoformat()
            for key in ("", theme):
                agg = weekly.setdefault((gid, key, week), [0, 0, 0.0, 0.0])
                agg[0] += 1
                agg[1] += int(n)
                agg[2] += total
                agg[3] += total_sq
            votes_written += n
            if pending_n >= CHUNK:
                flush()
        if s == 0:
            largest_votes = votes_written
        if s % 1000 == 999:
            print(f"  built {s + 1} servers, {poll_id} polls, {votes_written} votes ({time.perf_counter() - t0:.0f} s)")
    flush()
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO leaning_weekly (guild_id, theme, week_start, polls, voters, total, total_sq) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(g, t, w, *agg) for (g, t, w), agg in weekly.items()],
    )
    con.execute("COMMIT")
    for _, sql in indexes:
        con.execute(sql)
    con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return {
        "servers": servers,
        "polls": poll_id,
        "votes": votes_written,
        "weekly_rows": len(weekly),
        "largest_guild": int(guild_ids[0]),
        "largest_votes": largest_votes,
    }


# --- measuring (in a fresh process per run) ----------------------------------------------------------


def drop_os_cache(path: Path) -> bool:
    """Ask the kernel to forget the cached pages of our database files (best effort)."""
    done = False
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if not f.exists() or not hasattr(os, "posix_fadvise"):
            continue
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)  # DONTNEED skips dirty pages; a freshly built file may still have some
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            done = True
        finally:
            os.close(fd)
    return done


async def measure(path: Path, which: str, guild: int, since: date, warm: bool) -> dict:
    from bot.storage import leaning as store
    from bot.storage.database import Database

    dropped = drop_os_cache(path)
    db = await Database.open(f"sqlite+aiosqlite:///{path}", migrate=False)
    query = store.weekly_series if which == "aggregates" else store.series_from_votes
    try:
        async with db.read() as conn:
            await conn.exec_driver_sql("SELECT 1")  # connection set up (pragmas) outside the timing
            if warm:
                await query(conn, guild, since=since)
            t0 = time.perf_counter()
            points = await query(conn, guild, since=since)
            elapsed = time.perf_counter() - t0
    finally:
        await db.close()
    summary = [
        (p.period_start.isoformat(), p.leaning.n, p.polls, None if p.leaning.mean is None else round(p.leaning.mean, 9))
        for p in points
    ]
    return {"ms": elapsed * 1000, "points": summary, "os_cache_dropped": dropped}


def run_measure(path: Path, which: str, guild: int, since: date, warm: bool = False) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.leaning", "--measure", which, "--db", str(path)]
    cmd += ["--guild", str(guild), "--since", since.isoformat()] + (["--warm"] if warm else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="1/100 of the data set, for a quick run")
    parser.add_argument("--db", type=Path, help="database file (default: a temporary file)")
    parser.add_argument("--keep", action="store_true", help="keep the database; reuse it if --db exists")
    parser.add_argument("--runs", type=int, default=5, help="cold runs per path")
    parser.add_argument("--measure", choices=("aggregates", "votes"), help=argparse.SUPPRESS)
    parser.add_argument("--guild", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--since", type=date.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.measure:
        print(json.dumps(asyncio.run(measure(args.db, args.measure, args.guild, args.since, args.warm))))
        return 0

    scale = 100 if args.small else 1
    servers, total_polls, total_votes = 10_000 // scale, 200_000 // scale, 10_000_000 // scale
    tmp = None
    if args.db is None:
        tmp = Path(tempfile.mkdtemp(prefix="cg-leaning-"))
        path = tmp / "leaning.db"
    else:
        path = args.db
    reuse = args.keep and path.exists() and Path(f"{path}.json").exists()
    try:
        if reuse:
            stats = json.loads(Path(f"{path}.json").read_text())
            print(f"reusing {path}")
        else:
            if path.exists():
                raise SystemExit(f"{path} exists; pass --keep to reuse it, or remove it")
            print(f"building {servers} servers, {total_polls} polls, {total_votes} votes in {path} ...")
            t0 = time.perf_counter()
            stats = build(path, servers, total_polls, total_votes)
            stats["build_s"] = round(time.perf_counter() - t0, 1)
            Path(f"{path}.json").write_text(json.dumps(stats))
        size_mb = path.stat().st_size / 2**20
        print(
            f"database: {stats['servers']} servers, {stats['polls']} polls, {stats['votes']} votes, "
            f"{stats['weekly_rows']} leaning_weekly rows, {size_mb:.0f} MiB (built in {stats.get('build_s', '?')} s)"
        )
        guild = stats["largest_guild"]
        since = (END - timedelta(days=365)).date()
        print(f"largest server {guild}: {stats['largest_votes']} votes; one-year weekly series since {since}")

        results: dict[str, list[dict]] = {"aggregates": [], "votes": []}
        for _ in range(args.runs):
            for which in ("aggregates", "votes"):  # interleaved, so machine noise hits both alike
                results[which].append(run_measure(path, which, guild, since))
        warm = {which: run_measure(path, which, guild, since, warm=True) for which in results}
        same = results["aggregates"][0]["points"] == results["votes"][0]["points"]
        weeks = len(results["aggregates"][0]["points"])
        dropped = all(r["os_cache_dropped"] for rs in results.values() for r in rs)
        print(f"\n{'path':<30}{'cold median':>14}{'cold max':>12}{'warm':>12}")
        med = {}
        for which, label in (("aggregates", "leaning_weekly (aggregates)"), ("votes", "raw vote rows (scan)")):
            ms = [r["ms"] for r in results[which]]
            med[which] = statistics.median(ms)
            print(f"{label:<30}{med[which]:>11.2f} ms{max(ms):>9.2f} ms{warm[which]['ms']:>9.2f} ms")
        print(
            f"\n{weeks} weekly points; both paths agree: {'yes' if same else 'NO'}; "
            f"OS page cache dropped before each cold run: {'yes' if dropped else 'no (posix_fadvise unavailable)'}"
        )
        speedup = med["votes"] / med["aggregates"]
        print(f"speed-up (cold medians): {speedup:.0f}x")
        ok = med["aggregates"] <= 10 and speedup >= 20 and same
        print(f"bar (<= 10 ms cold and >= 20x): {'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"kept {path}")


if __name__ == "__main__":
    sys.exit(main())
