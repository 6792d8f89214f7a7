"""The long-running process's start-up: the garbage collector is tuned after set-up, before the gateway."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import asyncio, gc, json
from bot import runtime

seen = []

def collected(obj):  # in a generation the collector scans (frozen objects are in none of them)
    return any(o is obj for o in gc.get_objects())

class Bot:
    async def login(self, token):
        self.cogs = [[] for _ in range(10)]  # built by setup_hook: lives as long as the process
        seen.append(("login", token, gc.get_freeze_count(), gc.get_threshold(), collected(self.cogs)))

    async def connect(self):
        seen.append(("connect", None, gc.get_freeze_count(), gc.get_threshold(), collected(self.cogs)))

asyncio.run(runtime.serve(Bot(), "t0ken"))
print(json.dumps({"seen": seen, "wanted": runtime.GC_THRESHOLDS}))
"""


def test_serve_logs_in_then_tunes_the_collector_then_connects():
    # A child process: freezing the collector inside the test run would pin this process's garbage.
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60)
    result = json.loads(out.stdout)
    login, connect = result["seen"]
    assert login == ["login", "t0ken", 0, [700, 10, 10], True]  # nothing frozen, default thresholds
    # What setup_hook built (and the imported modules) is out of the collector's reach before the gateway.
    step, _, frozen, thresholds, scanned = connect
    assert step == "connect" and frozen > 1000 and not scanned
    assert thresholds == result["wanted"] == [20_000, 50, 100]
