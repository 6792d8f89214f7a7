"""Fixtures shared by every layer."""

from __future__ import annotations

import pytest

from bot.storage.database import Database


@pytest.fixture
async def db(tmp_path):
    """A real SQLite file with every migration applied."""
    database = await Database.open(f"sqlite+aiosqlite:///{tmp_path}/test.db")
    try:
        yield database
    finally:
        await database.close()
