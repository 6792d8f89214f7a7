"""`commonground run`, with two differences: a FakeClock fixed at ``RELIABILITY_NOW`` (ISO 8601), and
discord.py's wait for more servers after READY shortened to the sandbox's (it sends them all at once).

F1b starts the real bot as a subprocess "just before" and "after" a scheduled slot without waiting
for the wall clock to get there. Everything else is what ``bot.__main__.cmd_run`` does: settings from
the environment, migrations, ``require_healthy()``, the same ``run_bot``; SIGTERM stops it cleanly.

    RELIABILITY_NOW=2026-03-02T09:30:00+00:00 python -m tests.reliability.botproc
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime

from bot.config import configure_logging, load_settings
from bot.demo import SANDBOX_GUILD_READY_TIMEOUT
from bot.domain.clock import FakeClock
from bot.runtime import run_bot
from bot.storage.database import Database


async def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    clock = FakeClock(datetime.fromisoformat(os.environ["RELIABILITY_NOW"]))
    db = await Database.open(settings.database_url)
    try:
        await db.require_healthy()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_bot(settings, db, stop=stop, clock=clock, guild_ready_timeout=SANDBOX_GUILD_READY_TIMEOUT)
    finally:
        await db.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
