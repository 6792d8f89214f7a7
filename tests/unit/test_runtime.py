"""The long-running process's start-up: the garbage collector is tuned after set-up, before the gateway."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import asyncio, gc, json
from bot import runtime

seen = []

class Bot:
    async def login(self, token):
        self.cogs = [object() for _ in range(1000)]  # built by setup_hook: lives as long as the process
        seen.append(("login", token, gc.get_freeze_count(), gc.get_threshold()))

    async def connect(self):
        seen.append(("connect", None, gc.get_freeze_count(), gc.get_threshold()))

asyncio.run(runtime.serve(Bot(), "t0ken"))
print(json.dumps({"seen": seen, "wanted": runtime.GC_THRESHOLDS}))
"""


def test_serve_logs_in_then_tunes_the_collector_then_connects():
    # A child process: freezing the collector inside the test run would pin this process's garbage.
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60)
    result = json.loads(out.stdout)
    (login, token, frozen_at_login, default), (connect, _, frozen_at_connect, tuned) = result["seen"]
    assert (login, token, connect) == ("login", "t0ken", "connect")
    assert frozen_at_login == 0 and default == [700, 10, 10]
    assert frozen_at_connect > 1000  # start-up objects, the bot's own included, are out of the collector's reach
    assert tuned == result["wanted"] == [20_000, 50, 100]
