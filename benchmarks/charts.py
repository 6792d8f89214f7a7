"""Render each chart type with realistic data N times and print ms per chart (median and max).

Run from the repository root:  .venv/bin/python -m benchmarks.charts [N]
The bar: <= 300 ms per chart on a 2-core machine. The first render of each type is a warm-up
(font cache, imports) and is reported separately.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import date, timedelta

import numpy as np

from bot.domain.groups import opinion_groups
from bot.domain.leaning import Moments, poll_leaning, series
from bot.ui import charts


def data():
    rng = np.random.default_rng(42)
    options = [
        ("Put my own goals first, always", -1.0, 31),
        ("Mostly my own path, but help when asked", -0.5, 58),
        ("Both equally — it depends on the day", 0.0, 77),
        ("Mostly what the community needs", 0.5, 40),
        ("The community comes first", 1.0, 19),
    ]
    tally_leaning = poll_leaning({p: c for _, p, c in options})

    start = date(2023, 1, 2)
    weeks = {}
    for w in range(104):
        if w in (30, 31):
            continue  # two silent weeks
        mu = 0.3 * np.sin(w / 15)
        weeks[start + timedelta(weeks=w)] = [
            Moments.of(np.clip(np.round((mu + rng.normal(0, 0.6, int(rng.integers(5, 60)))) * 2) / 2, -1, 1))
            for _ in range(int(rng.integers(3, 8)))
        ]
    points = series(weeks)
    marks = [(start + timedelta(weeks=w), t) for w, t in ((12, "Should wealth be shared?"), (60, "The keeper"))]

    themes = ["freedom", "duty", "family", "work", "wealth", "solitude", "tradition", "the state", "friendship"]
    rows = [
        (t, poll_leaning({-1: int(rng.integers(0, 40)), 0: int(rng.integers(0, 40)), 1: int(rng.integers(0, 40))}))
        for t in themes
    ]

    centres = rng.choice([-0.7, 0.0, 0.7], size=(3, 30))
    labels = rng.integers(0, 3, 300)
    votes = np.clip(np.round((centres[labels] + rng.normal(0, 0.45, (300, 30))) * 2) / 2, -1, 1)
    votes[rng.random(votes.shape) < 0.4] = np.nan
    t0 = time.perf_counter()
    groups = opinion_groups(votes, seed=0)
    groups_ms = (time.perf_counter() - t0) * 1000
    return {
        "tally (5 options)": lambda: charts.tally_chart(
            "If your town asked for a weekend a month?", options, tally_leaning
        ),
        "leaning (104 weeks)": lambda: charts.leaning_chart(points, "Where this server leans", marks),
        "themes (9)": lambda: charts.themes_chart(rows),
        "groups (300 members)": lambda: charts.groups_chart(groups),
        "groups maths (300x30, warm)": lambda: opinion_groups(votes, seed=0),
    }, groups_ms


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    jobs, first_groups_ms = data()
    print(f"{n} renders each, 800x450 PNG at 100 dpi; opinion_groups first call {first_groups_ms:.0f} ms")
    # Wall time is what a member waits for; CPU time shows our own cost when the machine is busy.
    print(f"{'':30} {'wall ms':>26} {'cpu ms':>9}")
    print(f"{'chart':30} {'first':>8} {'median':>8} {'max':>8} {'median':>9}  bytes")
    for name, job in jobs.items():
        t0 = time.perf_counter()
        out = job()
        first = (time.perf_counter() - t0) * 1000
        wall, cpu = [], []
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.thread_time()
            job()
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
        size = len(out) if isinstance(out, bytes) else 0
        print(
            f"{name:30} {first:8.1f} {statistics.median(wall):8.1f} {max(wall):8.1f} "
            f"{statistics.median(cpu):9.1f}  {size}"
        )


if __name__ == "__main__":
    main()
