"""Backups of the SQLite file: timestamped copies in a folder, with a retention count."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.storage.database import Database

PATTERN = "commonground-*.db"


async def backup_to(db: Database, path: Path, *, keep: int | None, now: datetime | None) -> tuple[Path, str, int]:
    """Back up into ``path`` (a file, or a folder for a timestamped file); prune to ``keep`` in a folder.

    Returns the file written, its integrity_check result and how many old backups were removed.
    """
    if path.is_dir() or str(path).endswith(("/", "\\")) or keep is not None:
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
        target = path / f"commonground-{stamp}.db"
    else:
        target = path
    integrity = await db.backup(target)
    removed = 0
    if keep is not None and integrity == "ok":
        old = sorted(target.parent.glob(PATTERN), reverse=True)[keep:]
        for stale in old:
            stale.unlink(missing_ok=True)
            removed += 1
    return target, integrity, removed
