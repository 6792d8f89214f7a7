"""Fixtures shared by every layer."""

from __future__ import annotations

import asyncio
import os

import discord.http
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from bot.runtime import tune_gc
from bot.storage.database import Database
from tests.sqlite_template import migrated_sqlite

# Set to a PostgreSQL URL (postgresql+asyncpg://…) to run the storage tests against PostgreSQL instead
# of SQLite; the database's public schema is dropped and recreated before each test.
POSTGRES_URL = os.environ.get("COMMONGROUND_TEST_POSTGRES_URL")


async def _fresh_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        await conn.exec_driver_sql("CREATE SCHEMA public")
    await engine.dispose()


@pytest.fixture
async def db(tmp_path):
    """A real database with every migration applied: a SQLite file (a copy of one migrated per test
    process, tests/sqlite_template.py), or PostgreSQL when configured."""
    if POSTGRES_URL:
        await _fresh_postgres(POSTGRES_URL)
        database = await Database.open(POSTGRES_URL)
    else:
        database = await Database.open(await migrated_sqlite(tmp_path / "test.db"))
    try:
        yield database
    finally:
        await database.close()


sqlite_only = pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite-specific (pragmas, file backups)")


class _ScaledSleep:
    """The asyncio module as discord.http sees it, with every ``sleep`` shortened by ``factor``."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __getattr__(self, name: str):
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result=None):
        return await asyncio.sleep(delay * self.factor, result)


@pytest.fixture
def quick_discord_retries(monkeypatch):
    """discord.py waits real time between retries: 1, 3, 5 and 7 s after a 5xx answer, retry_after after a
    429 (discord/http.py). A test that makes the sandbox fail on purpose, and asserts what happens once
    discord.py gives up, waits a hundredth of that; the number and order of the retries are unchanged."""
    monkeypatch.setattr(discord.http, "asyncio", _ScaledSleep(0.01))


# The order tests are collected in. pytest-xdist (``--dist worksteal``) hands each test process a third of
# this order, and an idle process takes the back half of the longest queue left. The heavy layers make up
# the first third, so one process starts on them and the others, done with the light thirds, work through
# that third from its end: the longest tests go first, where the process that owns them runs them early,
# and what is left when they meet is many short tests (the processes finish together, not one waiting on
# a late long test). First the longest modules, by their wall time measured on the 2-core reference
# machine; then the layers from the heaviest (real bots, subprocesses) to the lightest (unit tests).
LONGEST_FIRST = (
    "tests/reliability/test_schedule_load.py",  # L4, 38 fake days: ~40 s
    "tests/web/test_demo_web.py",  # `commonground demo --web` and its screenshots: ~15-25 s
    "tests/browser/",  # 5 tests sharing one Chromium: ~30-40 s together
    "tests/storage/test_votes_state.py",  # the poll state machine: ~15 s
)
HEAVY_FIRST = ("reliability", "browser", "web", "e2e", "storage", "contract", "unit")


def pytest_collection_modifyitems(config, items):
    def weight(item) -> tuple[int, int]:
        path = item.path.relative_to(config.rootpath).as_posix()
        for i, prefix in enumerate(LONGEST_FIRST):
            if path.startswith(prefix):
                return (0, i)
        parts = path.split("/")
        layer = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
        return (1, HEAVY_FIRST.index(layer) if layer in HEAVY_FIRST else len(HEAVY_FIRST))

    items.sort(key=weight)  # stable: the order within a layer (and a module) is kept


def pytest_collection_finish(session):
    """Tune the garbage collector as ``commonground run`` does once started (``bot.runtime.tune_gc``):
    freeze what collection built (modules, the test items: never garbage) and raise the thresholds. The
    e2e and reliability layers' test processes spent 16.5 s of CPU collecting garbage with Python's
    defaults, 9.4 s with these; and every test runs under the collector settings of production."""
    tune_gc()


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one and a half test processes per core. About a third of the
    suite's time is spent waiting (on sockets, subprocesses, the browser), which a third process fills:
    on the 2-core reference machine the suite took 225 s with 2 processes, 199 s with 3, 206 s with 4
    (and, after the fork server and the collector tuning, 175-181 s with 3, 194 s with 4)."""
    cores = os.cpu_count() or 1
    return max(1, cores + cores // 2)
