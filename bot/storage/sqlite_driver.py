"""aiosqlite with one trip to its thread per statement.

aiosqlite runs each SQLite connection on a thread of its own; every call from the event loop is a trip
there and back (the GIL handed over twice, the event loop woken through its self-pipe). SQLAlchemy's
aiosqlite adapter makes four trips for each statement: open a cursor, execute, fetch the rows, close
the cursor. On a 2-core host a trip costs about 0.2 ms of CPU, far more than a short indexed statement
itself, so the trips were most of the cost of every read and write (``benchmarks/sqlite_trips.py``
prints both).

This adapter does the four steps as one function on that thread: same driver, same connection and
thread, same SQL, the same errors (raised on the thread, translated as SQLAlchemy's adapter translates
them). Commit and rollback were already one trip each. Server-side cursors (``stream()``) keep
SQLAlchemy's own cursor. Plugged in through ``create_async_engine(module=...)``: SQLAlchemy's documented
way to give a dialect another DBAPI module.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# What one statement leaves behind: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any], int, int | None]


def _run(driver: aiosqlite.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: the statement, all its rows, and what the cursor says about it."""
    cursor = driver._conn.cursor()  # aiosqlite's sqlite3 connection; raises once closed, as aiosqlite does
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement runs in one trip; its rows are then read from memory, as
    SQLAlchemy's adapter reads them once fetched."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False  # nothing to close on the thread: the real cursor closed there

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # Not the base __init__: it opens a cursor on the thread (a trip) that this class never uses, so
        # there is no ``_cursor``; every member that would read it is overridden here.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        # None only before a statement and after executemany, where SQLAlchemy does not read it.
        return cast(int, self._lastrowid)

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        self._trip(operation, seq_of_parameters, many=True)

    def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        try:
            outcome = await_(self._trip_async(operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)

    async def _trip_async(self, operation: Any, parameters: Any, many: bool) -> _Outcome:
        async with self._adapt_connection._execute_mutex:
            outcome: _Outcome = await self._connection._execute(_run, self._connection, operation, parameters, many)
            return outcome


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy's adapter presents it, with :class:`OneTripCursor` as its cursor."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    """The module to pass as ``create_async_engine(url, module=dbapi())`` for a ``sqlite+aiosqlite`` URL."""
    return OneTripDBAPI(aiosqlite, sqlite3)
