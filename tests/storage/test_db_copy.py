"""`commonground db copy`: a SQLite database into an empty one (PostgreSQL under scripts/test-postgres,
another SQLite file otherwise): every row, in one transaction, checked before the commit."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.storage import jobs as job_store
from bot.storage.copy import CopyError, copy_database
from bot.storage.database import Database
from bot.storage.tables import guilds, metadata, poll_options, polls, vote_events, votes
from tests.conftest import POSTGRES_URL, _fresh_postgres

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
async def target_url(tmp_path):
    if POSTGRES_URL:
        await _fresh_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path}/target.db"


async def seed(db: Database, *, servers: int = 3, polls_each: int = 4, voters: int = 25) -> None:
    async with db.write() as conn:
        for g in range(1, servers + 1):
            gid = g << 30
            await conn.execute(guilds.insert().values(id=gid, name=f"s{g} 'quoted' ; --", joined_at=T0))
            for p in range(polls_each):
                pid = (
                    await conn.execute(
                        polls.insert()
                        .values(
                            guild_id=gid,
                            channel_id=gid + 1,
                            message_id=gid + 100 + p,
                            question=f"Q{p} ☃",
                            opened_at=T0,
                            closes_at=T0 + timedelta(hours=24),
                            status="closed" if p % 2 else "open",
                            final_voters=voters if p % 2 else None,
                        )
                        .returning(polls.c.id)
                    )
                ).scalar_one()
                for idx in range(3):
                    await conn.execute(
                        poll_options.insert().values(
                            poll_id=pid,
                            idx=idx,
                            label=f"o{idx}",
                            position=idx - 1.0,
                            final_count=(p + idx) if p % 2 else None,
                        )
                    )
                for u in range(voters):
                    idx = (u * (p + 1)) % 3
                    await conn.execute(
                        votes.insert().values(poll_id=pid, user_id=1000 + u, guild_id=gid, option_idx=idx, voted_at=T0)
                    )
                    await conn.execute(
                        vote_events.insert().values(
                            poll_id=pid, guild_id=gid, user_id=1000 + u, kind="cast", option_idx=idx, at=T0
                        )
                    )
            await job_store.upsert(conn, kind="guild-purge", key=f"purge:{gid}", due_at=T0, guild_id=gid, now=T0)


async def counts(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        return {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in metadata.sorted_tables
        }


async def test_copy_moves_every_row_and_the_copy_keeps_working(tmp_path, target_url):
    source_url = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    source = await Database.open(source_url)
    await seed(source)
    want = await counts(source)
    await source.close()
    seen: list[tuple[str, int, int]] = []
    report = await copy_database(source_url, target_url, progress=lambda t, d, n: seen.append((t, d, n)))
    assert report.rows == want and report.polls_verified == 12
    assert ("votes", 300, 300) in seen
    target = await Database.open(target_url)
    try:
        assert await counts(target) == want
        async with target.read() as conn:
            names = {r[0] for r in await conn.execute(select(guilds.c.name))}
        assert "s1 'quoted' ; --" in names
        # New rows get fresh ids (PostgreSQL's sequences were moved past the copied ids).
        async with target.write() as conn:
            await job_store.upsert(conn, kind="t", key="after-copy", due_at=T0, now=T0)
            new_id = (
                await conn.execute(
                    polls.insert()
                    .values(guild_id=1 << 30, channel_id=1, question="new", opened_at=T0, closes_at=T0)
                    .returning(polls.c.id)
                )
            ).scalar_one()
        assert new_id == 13
    finally:
        await target.close()


async def test_a_non_empty_target_is_refused_and_left_alone(tmp_path, target_url):
    source_url = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    source = await Database.open(source_url)
    await seed(source, servers=1)
    await source.close()
    target = await Database.open(target_url)
    async with target.write() as conn:
        await conn.execute(guilds.insert().values(id=42, name="already here", joined_at=T0))
    before = await counts(target)
    with pytest.raises(CopyError, match=r"not empty \(guilds \(1 rows\)\)"):
        await copy_database(source_url, target_url)
    assert await counts(target) == before
    await target.close()


async def test_a_missing_or_unmigrated_source_is_refused(tmp_path, target_url):
    with pytest.raises(CopyError, match="does not exist"):
        await copy_database(f"sqlite+aiosqlite:///{tmp_path}/nope.db", target_url)
    old = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    db = await Database.open(old, migrate=False)
    await db.migrate("0001")
    await db.close()
    with pytest.raises(CopyError, match="commonground migrate"):
        await copy_database(old, target_url)


async def test_a_failed_check_commits_nothing(tmp_path, target_url, monkeypatch):
    source_url = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    source = await Database.open(source_url)
    await seed(source, servers=1)
    await source.close()
    import bot.storage.copy as copy_module

    real = copy_module._tallies
    calls = []

    async def skewed(conn):
        tallies = await real(conn)
        calls.append(1)
        if len(calls) == 2:  # the copy's tallies: pretend one vote moved
            first = next(iter(tallies))
            tallies[first] = ((), tallies[first][1])
        return tallies

    monkeypatch.setattr(copy_module, "_tallies", skewed)
    with pytest.raises(CopyError, match=r"tallies of 1 poll\(s\) differ"):
        await copy_database(source_url, target_url)
    target = await Database.open(target_url)
    try:
        assert set((await counts(target)).values()) == {0}, "the transaction was rolled back"
    finally:
        await target.close()


async def test_the_command_prints_progress_and_a_summary(tmp_path, target_url):
    source_url = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    source = await Database.open(source_url)
    await seed(source, servers=2)
    await source.close()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DISCORD_TOKEN")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "db", "copy", "--from", source_url, "--to", target_url,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert "votes: 200/200" in err.decode()
    assert "verified every table's row count and the tallies of 8 polls" in out.decode()
    again = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "db", "copy", "--from", source_url, "--to", target_url,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(again.communicate(), 120)
    assert again.returncode == 2
    assert len(err.decode().strip().splitlines()) == 1 and "not empty" in err.decode()
