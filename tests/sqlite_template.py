"""A fresh SQLite database with every migration applied, as a copy of one migrated per test process.

Running the migrations costs about ten times the rest of opening a database; the storage, e2e and
reliability tests each want a fresh file, so each test process migrates one template (with the real
``Database.open``) and every test copies it. The migrations themselves are tested on real upgrades in
``storage/test_migrations.py`` (and every template is built by them).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from bot.storage.database import Database

_template: Path | None = None


async def _build() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="commonground-template-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "template.db"
    database = await Database.open(f"sqlite+aiosqlite:///{path}")
    # close() checkpoints: the .db file alone then holds the whole schema (no -wal left beside it).
    await database.close()
    return path


def _copy(template: Path, path: Path) -> None:
    if path.exists():
        raise FileExistsError(f"{path} exists: the template copy would overwrite a test's database")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)


async def migrated_sqlite(path: Path) -> str:
    """Write a migrated SQLite database at ``path`` (which must not exist yet); return its URL."""
    global _template
    if _template is None:
        _template = await _build()
    _copy(_template, path)
    return f"sqlite+aiosqlite:///{path}"
