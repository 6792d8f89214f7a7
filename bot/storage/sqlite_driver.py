"""aiosqlite with one trip to its thread per statement.

aiosqlite runs each SQLite connection on a thread of its own; every call from the event loop is a trip
there and back (the GIL handed over twice, the event loop woken through its self-pipe). SQLAlchemy's
aiosqlite adapter makes four trips for each statement (open a cursor, execute, fetch the rows, close the
cursor) and one for BEGIN. On a 2-core host a trip costs about 0.2 ms of CPU, far more than a short
indexed statement itself, so the trips were most of the cost of every read and write
(``benchmarks/sqlite_trips.py`` prints both).

This adapter does the four steps as one function on that thread, and sends a transaction's BEGIN with
its first statement, in the same trip (as SQLAlchemy's asyncpg adapter does). A commit or rollback with
no transaction open (none begun, or the pool's rollback after a commit) makes no trip. Same driver, same
connection and thread, same SQL, the same errors (raised on the thread, translated as SQLAlchemy's
adapter translates them): a BEGIN IMMEDIATE that finds the database locked raises at the transaction's
first statement. Server-side cursors (``stream()``) keep SQLAlchemy's own cursor. Plugged in through
``create_async_engine(module=...)``: SQLAlchemy's documented way to give a dialect another DBAPI module.
It subclasses SQLAlchemy 2.1's adapter and calls aiosqlite's private ``_execute`` and ``_conn``: both
versions are bounded in ``pyproject.toml``.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

T = TypeVar("T")

# What one statement leaves behind: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any], int, int | None]


_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE"})  # what database.py's "begin" hook sends


def _statement(db: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread (through :meth:`OneTripConnection.call`): the statement, all its rows,
    and what the cursor says about it."""
    cursor = db.cursor()
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

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_owner", "_rowcount")
    _awaitable_cursor_close = False  # nothing to close on the thread: the real cursor closed there

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # Not the base __init__: it opens a cursor on the thread (a trip) that this class never uses, so
        # there is no ``_cursor``; every member that would read it is overridden here.
        self._adapt_connection = adapt_connection
        self._owner = cast("OneTripConnection", adapt_connection)  # its cursor class is this one
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
        if operation in _BEGINS and not parameters:
            self._owner._begin = operation  # sent with the first statement (_call)
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = deque()
            return
        self._trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        self._trip(operation, seq_of_parameters, many=True)

    def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        try:
            outcome = await_(self._owner.call(_statement, operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)


def _call(driver: aiosqlite.Connection, begin: str | None, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """On the connection's thread: the transaction's BEGIN if still to send, then ``fn``."""
    db = driver._conn  # aiosqlite's sqlite3 connection; raises once closed, as aiosqlite does
    if begin is not None:
        db.execute(begin)
    return fn(db, *args)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """The adapted connection: its cursors are :class:`OneTripCursor`; it holds the BEGIN not yet sent."""

    __slots__ = ("_begin", "_open")
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None  # the transaction's BEGIN, until a statement takes it along
        self._open = False  # a BEGIN was sent and no commit or rollback since (or a trip failed after it)

    def _take_begin(self) -> str | None:
        begin, self._begin = self._begin, None
        if begin is not None:
            self._open = True  # from here on, even if the trip fails: its rollback must reach SQLite
        return begin

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(sqlite3_connection, *args)`` in one trip to the connection's thread, inside the current
        transaction (its BEGIN sent first if it has not been yet). Every statement of a cursor goes through
        it; so does a hot path that runs many statements and wants neither a trip nor SQLAlchemy's
        processing per statement (the vote writer's batches)."""
        async with self._execute_mutex:
            begin = self._take_begin()
            result: T = await self._connection._execute(_call, self._connection, begin, fn, args)
            return result

    # With isolation_level None (database.py) SQLite opens a transaction only on BEGIN, and every BEGIN
    # goes through this connection: with none open, there is nothing to commit or roll back.
    def commit(self) -> None:
        self._begin = None
        if self._open:
            super().commit()
            self._open = False  # not if it raised: SQLite may still hold the transaction, to roll back

    def rollback(self) -> None:
        self._begin = None
        if self._open:
            super().rollback()
            self._open = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy's adapter presents it, with :class:`OneTripCursor` as its cursor."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    """The module to pass as ``create_async_engine(url, module=dbapi())`` for a ``sqlite+aiosqlite`` URL."""
    return OneTripDBAPI(aiosqlite, sqlite3)
