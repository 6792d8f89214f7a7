"""The startup self-check: `commonground run` refuses a database that fails integrity_check, or runs
without the durability settings (WAL, synchronous=FULL, foreign keys), with a clear message."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.storage import guilds
from bot.storage.database import Database, DatabaseSettingsError
from tests.harness import START

COMMONGROUND = Path(sys.executable).with_name("commonground")


async def make_db(path: Path) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{path}")
    async with db.write() as conn:
        for gid in range(1, 3000):
            await guilds.ensure(conn, gid, now=START, name=f"server {gid} " + "x" * 60)
    await db.close()
    sqlite3.connect(path).close()  # checkpoint: the file alone holds the data


def corrupt(path: Path) -> None:
    """Overwrite the middle of a table's b-tree pages; the header stays valid, so the file opens."""
    data = bytearray(path.read_bytes())
    page = 4096
    for n in (len(data) // page // 2, len(data) // page // 2 + 1):
        data[n * page + 8 : n * page + 600] = b"\xa5" * 592
    path.write_bytes(bytes(data))


def run(path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DISCORD_TOKEN": "sandbox.not-used-the-check-comes-first",
        "DATABASE_URL": f"sqlite+aiosqlite:///{path}",
        "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",  # nothing listens: it must stop before connecting
        "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gateway",
    }
    return subprocess.run([str(COMMONGROUND), "run"], env=env, capture_output=True, text=True, timeout=60)


async def test_a_corrupt_database_is_refused_with_a_clear_message(tmp_path, summary):
    path = tmp_path / "corrupt.db"
    await make_db(path)
    corrupt(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    done = run(path)
    summary("self-check: corrupt database", "fault", exit=done.returncode, stderr_lines=len(done.stderr.splitlines()))
    assert done.returncode != 0
    assert "integrity_check" in done.stderr and "self-check failed" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


@pytest.mark.parametrize(
    ("pragma", "named"), [("synchronous=NORMAL", "synchronous=normal"), ("foreign_keys=OFF", "foreign_keys=off")]
)
async def test_durability_settings_are_checked(tmp_path, pragma, named):
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    try:
        await db.require_healthy()
        # The connect hook sets the pragmas on every connection, so a wrong setting is only reachable by
        # changing the live connection; the check must still see it.
        async with db.write_lock, db.writer.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(f"PRAGMA {pragma}")  # outside any transaction
        with pytest.raises(DatabaseSettingsError, match=named):
            await db.require_healthy()
    finally:
        await db.close()


async def test_a_database_left_in_rollback_journal_mode_is_put_back_in_wal(tmp_path):
    path = tmp_path / "delete.db"
    await make_db(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    db = await Database.open(f"sqlite+aiosqlite:///{path}")
    try:
        check = await db.require_healthy()
    finally:
        await db.close()
    assert check.value("journal_mode") == "wal"
