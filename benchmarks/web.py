"""The website's heaviest pages on a server with two years of daily debates: server time per render.

Builds a SQLite file (every migration applied) with one server holding DAYS daily debates, each with a
closed 4-option poll of 30-90 voters (their vote rows, the final counts and the weekly aggregates, as
closing leaves them), the public page published. Then times, N times each, what the handlers do after
the permission check: the archive page's data (``bot.web.pages.archive_data``: one page of 30 debates
with their final counts) and the public leaning page's (``public_data``: a year of weekly leaning,
every theme, the recent debates), each rendered to HTML by the site's own templates.

    .venv/bin/python -m benchmarks.web [N] [DAYS]

Bar: ≤ 200 ms server time per page (median) for 730 days.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bot.domain.clock import FakeClock
from bot.domain.leaning import Moments, week_start
from bot.domain.packs import THEMES, load_builtin_pack
from bot.storage import guilds as guild_store
from bot.storage import web as web_store
from bot.storage.database import Database
from bot.storage.polls import add_to_weekly
from bot.storage.tables import debates, poll_options, polls, votes
from bot.web.pages import archive_data, public_data
from bot.web.server import make_templates

GUILD = 900_000_000_000_000_777
POSITIONS = (-1.0, -0.33, 0.33, 1.0)


async def build(db: Database, days: int, start: date, seed: int = 1) -> int:
    rng = random.Random(seed)
    prompts = load_builtin_pack().prompts
    themes = list(THEMES)
    members = list(range(10_000, 10_120))
    n_votes = 0
    async with db.write() as conn:
        await guild_store.ensure(conn, GUILD, now=datetime.combine(start, datetime.min.time(), tzinfo=UTC))
        await web_store.set_published(conn, GUILD, True, now=datetime.now(UTC))
        for day in range(days):
            prompt = prompts[day % len(prompts)]
            theme = themes[day % len(themes)]
            posted = datetime.combine(start + timedelta(days=day), datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
            closed = posted + timedelta(hours=24)
            debate_id = (
                await conn.execute(
                    insert(debates).values(
                        guild_id=GUILD,
                        kind="scheduled",
                        slot_date=posted.date().isoformat(),
                        due_at=posted,
                        prompt_key=f"builtin/{prompt.id}",
                        paragraph=prompt.paragraph,
                        excerpt=prompt.excerpt,
                        question=prompt.question,
                        theme=theme,
                        channel_id=1,
                        message_id=10**17 + day,
                        nonce=f"n{day:023d}",
                        status="posted",
                        created_at=posted,
                        posted_at=posted,
                    )
                )
            ).inserted_primary_key[0]
            voters = rng.sample(members, rng.randint(30, 90))
            lean = rng.gauss(0.1 * ((day // 90) % 3 - 1), 0.3)
            ballots = {}
            for u in voters:
                target = lean + rng.gauss(0, 0.7)
                ballots[u] = min(range(4), key=lambda i, target=target: abs(POSITIONS[i] - target))
            counts = [0] * 4
            for idx in ballots.values():
                counts[idx] += 1
            m = Moments.from_counts([(POSITIONS[i], counts[i]) for i in range(4)])
            poll_id = (
                await conn.execute(
                    insert(polls).values(
                        guild_id=GUILD,
                        debate_id=debate_id,
                        channel_id=1,
                        question=prompt.dilemma.question,
                        theme=theme,
                        prompt_key=f"builtin/{prompt.id}",
                        status="closed",
                        opened_at=posted,
                        closes_at=closed,
                        closed_at=closed,
                        final_voters=m.n,
                        final_total=m.total,
                        final_total_sq=m.total_sq,
                    )
                )
            ).inserted_primary_key[0]
            labels = [o.label for o in prompt.dilemma.options][:4] + ["Option"] * 4
            await conn.execute(
                insert(poll_options),
                [
                    {
                        "poll_id": poll_id,
                        "idx": i,
                        "label": labels[i],
                        "position": POSITIONS[i],
                        "final_count": counts[i],
                    }
                    for i in range(4)
                ],
            )
            await conn.execute(
                insert(votes),
                [
                    {"poll_id": poll_id, "user_id": u, "guild_id": GUILD, "option_idx": i, "voted_at": posted}
                    for u, i in ballots.items()
                ],
            )
            n_votes += len(ballots)
            await add_to_weekly(conn, GUILD, theme, week_start(closed), m)  # the theme's row and the all-themes row
    return n_votes


async def measure(db: Database, clock: FakeClock, n: int) -> dict[str, list[float]]:
    templates = make_templates()
    archive = templates.get_template("archive.html")
    public = templates.get_template("public.html")

    class Guild:
        id = GUILD
        name = "Two Years"

    class Access:
        guild = Guild()
        manage = True

    labels = ("archive page 1", "archive page 20", "public leaning page")
    out: dict[str, list[float]] = {k: [] for k in labels} | {f"{k} cpu": [] for k in labels}

    def took(label: str, t0: float, c0: float) -> None:
        out[label].append((time.perf_counter() - t0) * 1000)
        out[f"{label} cpu"].append((time.process_time() - c0) * 1000)  # every thread of the process

    for _ in range(n):
        for label, page in (("archive page 1", 1), ("archive page 20", 20)):
            t0, c0 = time.perf_counter(), time.process_time()
            data = await archive_data(db, GUILD, page)
            html = archive.render(a=Access(), title="Archive", session=None, csrf="", path="/", **data)
            took(label, t0, c0)
            assert "<article" in html
        t0, c0 = time.perf_counter(), time.process_time()
        data = await public_data(db, clock, GUILD, "Two Years")
        assert data is not None
        html = public.render(session=None, csrf="", path="/", **data)
        took("public leaning page", t0, c0)
        assert "<svg" in html
    return out


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    days = int(sys.argv[2]) if len(sys.argv) > 2 else 730
    start = date(2024, 11, 29)
    clock = FakeClock(datetime.combine(start + timedelta(days=days), datetime.min.time(), tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(f"sqlite+aiosqlite:///{Path(tmp) / 'web.db'}")
        try:
            t0 = time.perf_counter()
            n_votes = await build(db, days, start)
            print(f"built {days} daily debates, {n_votes} votes in {time.perf_counter() - t0:.1f} s")
            await measure(db, clock, 2)  # warm-up: templates compiled, SQLite pages cached
            results = await measure(db, clock, n)
        finally:
            await db.close()
    print(f"{n} renders each (data + HTML, after the permission check), ms:")
    print(f"{'page':<24}{'median':>9}{'p90':>9}{'max':>9}{'cpu median':>12}")
    for label in ("archive page 1", "archive page 20", "public leaning page"):
        values = sorted(results[label])
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        cpu = statistics.median(results[f"{label} cpu"])
        print(f"{label:<24}{statistics.median(values):>9.1f}{p90:>9.1f}{values[-1]:>9.1f}{cpu:>12.1f}")


if __name__ == "__main__":
    asyncio.run(main())
