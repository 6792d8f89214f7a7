"""What differs between the two backends, in one place: the INSERT that knows ON CONFLICT."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection):
    """``insert(conn)(table)``: an INSERT with ``on_conflict_do_update/nothing`` for this connection's backend."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
