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


HEAVY = ("matplotlib", "numpy", "scipy", "sklearn", "threadpoolctl", "alembic")

STARTUP_SCRIPT = """
import asyncio, json, sys
from bot import runtime
from bot.config import load_settings
from bot.storage.database import Database

HEAVY = %r
after_import = sorted(m for m in HEAVY if m in sys.modules)

async def main():
    settings = load_settings({}, token="t0ken", database_url=sys.argv[1])
    db = await Database.open(settings.database_url)
    try:
        bot = runtime.build_bot(settings, db)
        async with bot:
            await bot.setup_hook()  # every extension loaded, every cog and view registered, the scheduler running
            loaded = sorted({type(cog).__module__ for cog in bot.cogs.values()})  # each extension adds its cog
    finally:
        await db.close()
    return loaded

loaded = asyncio.run(main())
print(json.dumps({
    "after_import": after_import,
    "after_setup": sorted(m for m in HEAVY if m in sys.modules),
    "extensions": loaded,
}))
"""


def test_startup_does_not_load_the_chart_and_statistics_stack(tmp_path):
    """matplotlib, numpy, scipy and scikit-learn cost ~40 MB of every process's memory; they are imported
    where a chart, a period leaning or opinion groups are computed, not by building and setting up the bot.
    Alembic (~11 MB) is imported only when a migration is due: here the database is already at the head."""
    import asyncio

    from bot.storage.database import Database

    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"

    async def migrated() -> None:
        await (await Database.open(url)).close()

    asyncio.run(migrated())
    out = subprocess.run(
        [sys.executable, "-c", STARTUP_SCRIPT % (HEAVY,), url], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    from bot.app import EXTENSIONS

    assert result["extensions"] == sorted(EXTENSIONS)  # the check covers every cog's imports
    assert result["after_import"] == []
    assert result["after_setup"] == []


CHART_SCRIPT = """
import json, sys
from bot.domain.leaning import Moments, combine
from bot.ui import leaning as ui

before = "matplotlib" in sys.modules or "scipy" in sys.modules
lean = combine([Moments.of([-1.0] * 9 + [1.0]), Moments.of([1.0] * 9 + [-1.0])])  # polls apart: Student t
png = ui.themes_chart([("theme", lean)], "title")
print(json.dumps({"before": before, "png": png[:8].hex(), "after": sorted(m for m in %r if m in sys.modules)}))
"""


def test_the_stack_is_imported_where_it_is_used():
    """The lazy imports are not lost ones: a period leaning and a chart still work in a fresh process."""
    out = subprocess.run([sys.executable, "-c", CHART_SCRIPT % (HEAVY,)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["before"] is False
    assert result["png"] == b"\x89PNG\r\n\x1a\n".hex()
    assert {"matplotlib", "numpy", "scipy"} <= set(result["after"])
    assert "alembic" not in result["after"]


PERIOD_SCRIPT = """
import asyncio, json, sys, threading
from bot.storage import leaning
from bot.storage.database import Database

where = []
def hook(event, args):
    if event == "import" and args[0] == "scipy.special" and not where:
        where.append(threading.current_thread() is threading.main_thread())
sys.addaudithook(hook)

async def main():
    db = await Database.open("sqlite+aiosqlite:///" + sys.argv[1])
    try:
        async with db.read() as conn:
            await leaning.period_leaning(conn, 1)
    finally:
        await db.close()

asyncio.run(main())
print(json.dumps({"loaded": "scipy.special" in sys.modules, "on_the_loop_thread": where}))
"""


def test_the_first_period_leaning_loads_scipy_off_the_event_loop(tmp_path):
    """scipy.special costs ~0.5 s to import: the first /leaning of a process imports it in a worker
    thread, not on the event loop where every click waits."""
    out = subprocess.run(
        [sys.executable, "-c", PERIOD_SCRIPT, str(tmp_path / "p.db")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout) == {"loaded": True, "on_the_loop_thread": [False]}
