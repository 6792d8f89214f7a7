"""How long the README's test command takes here: ``python -m pytest``, run N times one after another.

    .venv/bin/python -m benchmarks.suite_time [N] [-- extra pytest arguments]

For each run: the load average before it (the bar is for a quiet machine), the wall time, the CPU time of
the test processes it waited for (user + system: forked bots and browsers whose parents do not wait for
them are not in it), the share of both cores busy over the run (from ``/proc/stat``, every process on the
machine), pytest's own summary line and any FAILED or ERROR line. Issue 14's bar: ≤ 150 s wall on the
2-core reference machine.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _busy_idle() -> tuple[int, int] | None:
    """Busy and idle ticks of the whole machine so far (Linux), or None elsewhere."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq = fields[:7]
    return user + nice + system + irq + softirq, idle + iowait


def run_once(extra: list[str]) -> str:
    load = os.getloadavg()[0]
    before, ticks = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_idle()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", *extra], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after, ticks_after = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_idle()
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    busy = ""
    if ticks and ticks_after:
        b, i = ticks_after[0] - ticks[0], ticks_after[1] - ticks[1]
        busy = f", cores busy {100 * b / max(b + i, 1):.0f}%"
    lines = done.stdout.splitlines()
    summary = [line for line in lines if re.search(r"\d+ (passed|failed)", line)]
    failed = "".join(f"\n  {line}" for line in lines if line.startswith(("FAILED", "ERROR")))
    return (
        f"load {load:.2f} before; wall {wall:.1f} s; CPU user {user:.1f} s + sys {system:.1f} s{busy}; "
        f"exit {done.returncode}; {summary[-1].strip('= ') if summary else 'no summary'}{failed}"
    )


def main(argv: list[str]) -> None:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    runs = int(argv[0]) if argv and argv[0] != "--" else 1
    print(f"`python -m pytest {' '.join(extra)}`".replace(" `", "`"), f"x{runs}, {os.cpu_count()} cores")
    for i in range(runs):
        print(f"run {i + 1}: {run_once(extra)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
