"""What differs between the two backends, in one place: the INSERT that knows ON CONFLICT."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection) -> Callable[..., Any]:
    """``insert(conn)(table)``: an INSERT with ``on_conflict_do_update/nothing`` for this connection's backend."""
    chosen: Callable[..., Any] = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
    return chosen
