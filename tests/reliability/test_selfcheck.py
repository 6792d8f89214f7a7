"""The startup self-check: `commonground run` refuses a database that fails integrity_check, or runs
without the durability settings (WAL, synchronous=FULL, foreign keys), with a clear message; and a
database it cannot open at all (not SQLite, truncated, damaged, read-only) with one line and exit 2,
the file left byte for byte as it was."""

from __future__ import annotations

import ctypes
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.storage import guilds
from bot.storage.database import Database, DatabaseSettingsError
from tests.harness import START
from tests.reliability import forked

COMMONGROUND = Path(sys.executable).with_name("commonground")


_made: list[bytes] = []  # the file make_db wrote first in this test process


async def make_db(path: Path) -> None:
    """A database of 2,999 servers (many pages, so damage lands inside a table). Built through the real
    storage code once per test process (about 2 s of CPU), then written byte for byte as a copy."""
    if _copied(path):
        return
    db = await Database.open(f"sqlite+aiosqlite:///{path}")
    async with db.write() as conn:
        for gid in range(1, 3000):
            await guilds.ensure(conn, gid, now=START, name=f"server {gid} " + "x" * 60)
    await db.close()
    sqlite3.connect(path).close()  # checkpoint: the file alone holds the data
    _keep(path)


def _keep(path: Path) -> None:
    _made.append(path.read_bytes())


def _copied(path: Path) -> bool:
    if _made:
        path.write_bytes(_made[0])
    return bool(_made)


def corrupt(path: Path) -> None:
    """Overwrite the middle of a table's b-tree pages; the header stays valid, so the file opens."""
    data = bytearray(path.read_bytes())
    page = 4096
    for n in (len(data) // page // 2, len(data) // page // 2 + 1):
        data[n * page + 8 : n * page + 600] = b"\xa5" * 592
    path.write_bytes(bytes(data))


def run(path: Path, *, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """``commonground run`` against ``path``. Forked from a process that imported the bot
    (tests/reliability/forked.py), unless ``preexec`` must act at exec: a fresh ``commonground``."""
    env = {
        **os.environ,
        "DISCORD_TOKEN": "sandbox.not-used-the-check-comes-first",
        "DATABASE_URL": f"sqlite+aiosqlite:///{path}",
        "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",  # nothing listens: it must stop before connecting
        "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gateway",
    }
    if preexec is None:
        return forked.run(["run"], env=env)
    return subprocess.run(
        [str(COMMONGROUND), "run"], env=env, capture_output=True, text=True, timeout=60, preexec_fn=preexec
    )


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


# -- a database the bot cannot open ---------------------------------------------------------------------


def without_root_override() -> None:
    """Run as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH: permission bits then bind root as they
    bind the unprivileged user a host runs the bot as (prctl PR_CAPBSET_DROP, applied at exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


@pytest.fixture
def folder(tmp_path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path
    for p in (path, *path.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def corrupt_most_pages(path: Path) -> None:
    """Random bytes over 80 % of the pages after the first (the header stays, so SQLite opens it)."""
    data = bytearray(path.read_bytes())
    page, rng = 4096, random.Random(11)
    pages = range(1, len(data) // page)
    for n in rng.sample(pages, k=len(pages) * 4 // 5):
        data[n * page : (n + 1) * page] = rng.randbytes(page)
    path.write_bytes(bytes(data))


def assert_one_clear_line(done: subprocess.CompletedProcess, path: Path, *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    line = lines[0]
    assert line.startswith("commonground: ") and str(path) in line, line
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda p: p.write_bytes(random.Random(3).randbytes(300_000)), "not an SQLite database"),
        (truncate, "truncated"),
        (corrupt_most_pages, "restore a backup"),
    ],
    ids=["random-bytes", "truncated", "most-pages-corrupt"],
)
async def test_a_database_that_cannot_be_read_is_refused_in_one_line(tmp_path, summary, damage, named):
    path = tmp_path / "damaged.db"
    await make_db(path)
    damage(path)
    before = path.read_bytes()
    done = run(path)
    line = assert_one_clear_line(done, path, named, "backup")
    summary(f"start: {named[:24]}", "fault", exit=done.returncode, stderr_lines=len(done.stderr.splitlines()))
    assert path.read_bytes() == before, "the refused file was changed"
    assert "Traceback" not in done.stderr, line


@pytest.mark.parametrize("read_only", ["file", "folder", "file and its folder"])
async def test_a_read_only_database_is_refused_in_one_line(folder, summary, read_only):
    path = folder / "readonly.db"
    await make_db(path)
    if "file" in read_only:
        path.chmod(0o444)
    if "folder" in read_only:
        folder.chmod(0o555)
    before = path.read_bytes()
    # Root writes through any permission bits: drop that override, as for the user a host runs the bot as.
    done = run(path, preexec=without_root_override if os.geteuid() == 0 else None)
    assert_one_clear_line(done, path, "read-only", f"its {read_only})", "write access")
    summary(f"start: read-only {read_only}", "fault", exit=done.returncode, stderr_lines=len(done.stderr.splitlines()))
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["readonly.db"], "a -wal or -shm file was left"
