"""``commonground db copy``: move a (live) database to another, typically SQLite to PostgreSQL.

The source is read in one read transaction (a consistent snapshot, even while the bot writes to it);
the target must be empty and receives everything in one transaction, checked before the commit:
every table's row count and every poll's tally (votes per option, and the stored final counts) must
equal the source's, or nothing is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bot.storage.database import Database
from bot.storage.tables import metadata, poll_options, votes

BATCH = 2000


class CopyError(Exception):
    """The copy cannot go on; the message names why and what to do. Nothing was committed."""


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]
    polls_verified: int

    @property
    def total(self) -> int:
        return sum(self.rows.values())


async def _nonempty_tables(url: str) -> list[str]:
    """Tables of ours in the target that already hold rows (the target must be empty)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            existing = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            full = []
            for table in metadata.sorted_tables:
                if table.name in existing:
                    n = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                    if n:
                        full.append(f"{table.name} ({n} rows)")
            return full
    finally:
        await engine.dispose()


async def _tallies(conn: AsyncConnection) -> dict[int, tuple[Any, ...]]:
    """Per poll: the votes per option and the stored final counts, to compare source and copy."""
    out: dict[int, dict[str, dict[int, int | None]]] = {}
    rows = await conn.execute(
        select(votes.c.poll_id, votes.c.option_idx, func.count()).group_by(votes.c.poll_id, votes.c.option_idx)
    )
    for poll_id, idx, n in rows:
        out.setdefault(poll_id, {"votes": {}, "final": {}})["votes"][idx] = n
    for poll_id, idx, final in await conn.execute(
        select(poll_options.c.poll_id, poll_options.c.idx, poll_options.c.final_count)
    ):
        out.setdefault(poll_id, {"votes": {}, "final": {}})["final"][idx] = final
    return {p: (tuple(sorted(v["votes"].items())), tuple(sorted(v["final"].items()))) for p, v in out.items()}


async def _reset_sequences(conn: AsyncConnection) -> None:
    """PostgreSQL: rows were inserted with their ids, so move each id sequence past the largest."""
    if conn.dialect.name != "postgresql":
        return
    for table in metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and isinstance(pk[0].type, Integer) and pk[0].autoincrement in (True, "auto"):
            await conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                    f"COALESCE((SELECT MAX({pk[0].name}) FROM {table.name}), 0) + 1, false)"
                )
            )


async def copy_database(
    source_url: str, target_url: str, *, progress: Callable[[str, int, int], None] | None = None
) -> CopyReport:
    """Copy every row of ``source_url`` into the empty ``target_url``; verify; commit once."""
    if source_url == target_url:
        raise CopyError("--from and --to name the same database")
    parsed = make_url(source_url)
    if parsed.drivername.startswith("sqlite"):
        found = False
        if parsed.database:
            found = await asyncio.to_thread(Path(parsed.database).is_file)
        if not found:
            raise CopyError(f"the source database file {parsed.database} does not exist; check --from")
    source = await Database.open(source_url, migrate=False)
    try:
        head = await _head_revision(source)
        if await source.current_revision() != head:
            raise CopyError(
                "the source database is not at the latest schema; run `commonground migrate` on it first "
                "(with DATABASE_URL set to the source)"
            )
        full = await _nonempty_tables(target_url)
        if full:
            raise CopyError(
                f"the target database is not empty ({', '.join(full[:3])}); copy only into a new, empty database"
            )
        target = await Database.open(target_url, migrate=True)
        try:
            target_rev = await target.current_revision()
            if target_rev != head:
                raise CopyError(f"the target's schema is at {target_rev}, expected {head}")
            async with source.read() as src:
                counts = {
                    t.name: (await src.execute(select(func.count()).select_from(t))).scalar_one()
                    for t in metadata.sorted_tables
                }
                source_tallies = await _tallies(src)
                async with target.write() as dst:
                    for table in metadata.sorted_tables:  # parents before children (foreign keys)
                        total = counts[table.name]
                        done = 0
                        order = list(table.primary_key.columns)
                        result = await src.stream(select(table).order_by(*order))
                        async for chunk in result.partitions(BATCH):
                            await dst.execute(table.insert(), [dict(r._mapping) for r in chunk])
                            done += len(chunk)
                            if progress:
                                progress(table.name, done, total)
                        if progress and total == 0:
                            progress(table.name, 0, 0)
                    await _reset_sequences(dst)
                    copied = {
                        t.name: (await dst.execute(select(func.count()).select_from(t))).scalar_one()
                        for t in metadata.sorted_tables
                    }
                    wrong = [f"{n}: {counts[n]} -> {copied[n]}" for n in counts if counts[n] != copied[n]]
                    if wrong:
                        raise CopyError(f"row counts differ after the copy ({'; '.join(wrong)}); nothing committed")
                    target_tallies = await _tallies(dst)
                    bad = sorted(p for p in source_tallies if source_tallies[p] != target_tallies.get(p))
                    if bad or set(target_tallies) != set(source_tallies):
                        raise CopyError(
                            f"the tallies of {len(bad)} poll(s) differ (first: {bad[:3]}); nothing committed"
                        )
        finally:
            await target.close()
    finally:
        await source.close()
    return CopyReport(counts, len(source_tallies))


async def _head_revision(db: Database) -> str | None:
    from alembic.script import ScriptDirectory

    from bot.storage.database import alembic_config

    return ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()
