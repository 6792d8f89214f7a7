"""SQL for "the servers this process owns": Discord's sharding formula over a guild id column."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, and_, literal, or_, true
from sqlalchemy.sql.elements import ColumnElement

from bot.domain.shards import ShardScope


def shard_expr(column: ColumnElement[Any], count: int) -> ColumnElement[Any]:
    """``(column >> 22) % count``, the shard of the server in ``column`` (SQLite and PostgreSQL)."""
    # PostgreSQL has bigint >> integer (not bigint >> bigint).
    shifted: ColumnElement[Any] = column.op(">>")(literal(22, Integer))
    return shifted % literal(count, BigInteger)


def owned(column: ColumnElement[Any], scope: ShardScope | None, *, nullable: bool = False) -> ColumnElement[bool]:
    """Rows whose server belongs to ``scope``; with ``nullable``, rows of no server belong to the
    process that holds shard 0."""
    if scope is None or scope.everything:
        return true()
    assert scope.count is not None
    on_our_shards = shard_expr(column, scope.count).in_(scope.held)
    if not nullable:
        return on_our_shards
    if scope.owns_global_work:
        return or_(column.is_(None), on_our_shards)
    return and_(column.is_not(None), on_our_shards)
