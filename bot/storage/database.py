"""The database: engines, SQLite pragmas, migrations at start, backups and self-checks.

SQLite (the embedded default) gets one writer connection whose transactions start with
``BEGIN IMMEDIATE`` (so two writers never deadlock upgrading a read lock) and a small pool of readers.
On PostgreSQL both roles share one pooled engine.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import logging
import os
import sqlite3
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.storage import sqlite_driver
from bot.storage.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 5000
# pg_advisory_xact_lock's key for running migrations: one process at a time on a shared PostgreSQL.
MIGRATION_LOCK_KEY = 0x43474D49  # "CGMI"


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer Common Ground than this one."""


class DatabaseSettingsError(RuntimeError):
    """The database does not run with the settings our durability commitments need."""


class DatabaseUnusableError(RuntimeError):
    """The database file cannot be opened as it is (not SQLite, truncated, damaged, read-only).

    The message is one line naming the file, what is wrong and what to do; the file is left as it was."""


SQLITE_MAGIC = b"SQLite format 3\x00"
RESTORE = "restore a backup (made with `commonground backup`) or point DATABASE_URL at the right file"


def check_sqlite_file(path: Path) -> None:
    """Refuse, before SQLite touches it, a file the bot could not use without damage or a traceback.

    Reads only: the 100-byte header (https://www.sqlite.org/fileformat.html#the_database_header), the
    file's size and the permissions. A damaged b-tree is found later, by the first query or by
    ``integrity_check`` in the self-check.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if not path.exists():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise DatabaseUnusableError(
                f"cannot create the database {path}: the folder {folder} is not writable by this user; "
                "make it writable, or point DATABASE_URL at a folder that is"
            )
        return
    if not path.is_file():
        raise DatabaseUnusableError(f"the database {path} is not a regular file; point DATABASE_URL at a file")
    if not os.access(path, os.R_OK):
        raise DatabaseUnusableError(
            f"the database {path} is not readable by this user; give the user running the bot read and write access"
        )
    size = path.stat().st_size
    if size:
        with path.open("rb") as fh:
            header = fh.read(100)
        if not header.startswith(SQLITE_MAGIC):
            raise DatabaseUnusableError(
                f"the database {path} is not an SQLite database (it does not start with the SQLite header); {RESTORE}"
            )
        if len(header) < 100:
            raise DatabaseUnusableError(
                f"the database {path} is truncated ({size} bytes, shorter than its header); {RESTORE}"
            )
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        # The in-header size is valid only when the change counter equals "version-valid-for".
        # A non-empty -wal may hold pages a crash kept from the file itself (it is replayed on open).
        wal = path.with_name(path.name + "-wal")
        size_valid = pages and header[24:28] == header[92:96] and not (wal.exists() and wal.stat().st_size)
        if (
            page_size < 512
            or page_size & (page_size - 1)
            or size % page_size
            or (size_valid and size < pages * page_size)
        ):
            expected = (
                f"its header says {pages * page_size}"
                if size_valid
                else f"not a whole number of {page_size}-byte pages"
            )
            raise DatabaseUnusableError(f"the database {path} is truncated ({size} bytes, {expected}); {RESTORE}")
    # WAL mode writes the -wal and -shm files beside the database: the folder must be writable too.
    if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK | os.X_OK):
        what = "file" if not os.access(path, os.W_OK) else "folder"
        if what == "file" and not os.access(folder, os.W_OK | os.X_OK):
            what = "file and its folder"
        raise DatabaseUnusableError(
            f"the database {path} is read-only for this user (its {what}); give the user running the bot write "
            "access to the file and its folder (SQLite keeps its -wal and -shm files beside the database)"
        )


@dataclass(frozen=True)
class Setting:
    """One database setting our durability commitments depend on: the value in force, the values we accept."""

    name: str
    value: str
    accepted: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.value in self.accepted

    def __str__(self) -> str:
        return f"{self.name}={self.value} (want {' or '.join(self.accepted)})"


@dataclass(frozen=True)
class SelfCheck:
    """What the database reports, read from it at the time of the check; nothing is assumed."""

    settings: tuple[Setting, ...]
    integrity: str  # "ok", or what SQLite's integrity_check or the canary read found

    def value(self, name: str) -> str:
        return next(s.value for s in self.settings if s.name == name)

    @property
    def problems(self) -> list[str]:
        found = [str(s) for s in self.settings if not s.ok]
        if self.integrity != "ok":
            found.append(f"integrity_check={self.integrity!r} (want 'ok')")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems


_SYNCHRONOUS = {0: "off", 1: "normal", 2: "full", 3: "extra"}

# PostgreSQL: what an acknowledged vote needs to survive a crash or a power cut, and the server being one
# we can write to. synchronous_commit=local/remote_* also wait for the local WAL flush; only off does not.
_POSTGRES_SETTINGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("fsync", "SHOW fsync", ("on",)),
    ("synchronous_commit", "SHOW synchronous_commit", ("on", "local", "remote_write", "remote_apply")),
    ("full_page_writes", "SHOW full_page_writes", ("on",)),  # else a torn page after a crash
    ("server_encoding", "SHOW server_encoding", ("UTF8",)),  # the essay, names and packs are Unicode
    ("default_transaction_read_only", "SHOW default_transaction_read_only", ("off",)),
    ("in_recovery", "SELECT CASE WHEN pg_is_in_recovery() THEN 'yes' ELSE 'no' END", ("no",)),  # a standby
)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


@functools.cache
def shipped_revisions() -> dict[str, str | None]:
    """Every migration this code ships, ``revision -> down_revision``, read from the files' own
    ``revision``/``down_revision`` lines. Alembic (with Mako and Pygments, ~11 MB that would stay in every
    process's memory) is imported only when a migration is actually run, not to find out that none is due."""
    found: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("[0-9]*.py")):
        values: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.Assign) or len(node.targets) != 1:
                continue
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(node.value)
        found[values["revision"]] = values.get("down_revision")
    return found


def shipped_head() -> str:
    """The newest migration this code ships (the one no other revises): migrations are one line."""
    revisions = shipped_revisions()
    heads = set(revisions) - set(revisions.values())
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must form one line; heads found: {sorted(heads)}")
    return heads.pop()


def _install_sqlite_hooks(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (so it can be BEGIN IMMEDIATE; sqlite_driver.py sends it
        # with the transaction's first statement).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: NORMAL can lose the last committed transactions on power loss; votes are acknowledged
        # only after commit, so commit must mean durable.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class WriteLock:
    """The one in-process writer's turn. First come, first served, except that an urgent writer (the vote
    writer: members wait for their answer, and Discord gives the first one 3 s) goes before the ordinary
    writers waiting (scheduled posts, closes: minutes of slack). Ordinary writers still get every other turn,
    so a continuous stream of votes cannot starve them: a vote group waits at most for the transaction in
    progress and one more, not for every job queued before it (in the busy hour, up to 1.3 s)."""

    def __init__(self) -> None:
        self._held = False
        self._urgent_holds = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()

    def locked(self) -> bool:
        return self._held

    async def acquire(self, *, urgent: bool = False) -> None:
        if not self._held and not self._urgent and not self._ordinary:
            self._held, self._urgent_holds = True, urgent
            return
        lane = self._urgent if urgent else self._ordinary
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed the turn just as we were cancelled: pass it on
            else:
                with suppress(ValueError):
                    lane.remove(turn)
            raise
        self._urgent_holds = urgent

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("the write lock is not held")
        lanes = (self._ordinary, self._urgent) if self._urgent_holds else (self._urgent, self._ordinary)
        for lane in lanes:
            while lane:
                turn = lane.popleft()
                if not turn.done():
                    turn.set_result(None)  # the lock passes straight to this waiter: still held
                    return
        self._held = False

    @asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """Hold the lock for a block; ``async with lock`` is an ordinary turn."""
        await self.acquire(urgent=urgent)
        try:
            yield
        finally:
            self.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Database:
    """Engines for one database URL. Build with :meth:`open`; close with :meth:`close`."""

    def __init__(self, url: str, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self.url = url
        self.writer = writer
        self.reader = reader
        self.is_sqlite = url.startswith("sqlite")
        self.on_asyncpg = make_url(url).get_driver_name() == "asyncpg"
        # One in-process writer at a time: SQLite has one write lock anyway, and queuing here is
        # cheaper and fairer than spinning on busy_timeout.
        self.write_lock = WriteLock()
        # PostgreSQL: the connection write transactions run on, kept from one to the next (see write()).
        self._write_conn: AsyncConnection | None = None
        self._write_driver: Any = None  # its driver's connection (asyncpg's), for write_asyncpg()

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Database:
        parsed = make_url(url)
        if parsed.drivername.startswith("sqlite"):
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                check_sqlite_file(Path(database))
            driver: dict[str, Any] = {}
            if parsed.get_driver_name() == "aiosqlite":  # one trip to its thread per statement, not four
                driver["module"] = sqlite_driver.dbapi()
            writer = create_async_engine(url, pool_size=1, max_overflow=0, **driver)
            reader = create_async_engine(url, pool_size=4, max_overflow=4, **driver)
            _install_sqlite_hooks(writer, immediate=True)
            _install_sqlite_hooks(reader, immediate=False)
        else:
            writer = reader = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        db = cls(url, writer, reader)
        try:
            await db.check_schema_version()
            if migrate:
                await db.migrate()
        except DBAPIError as exc:
            await db.close(checkpoint=False)
            if not db.is_sqlite or not isinstance(exc.orig, sqlite3.DatabaseError):
                raise
            # A file with a valid header whose pages are damaged fails at the first read (journal_mode,
            # the schema, alembic_version): nothing was written, say so in one line.
            raise DatabaseUnusableError(
                f"the database {parsed.database} cannot be read (SQLite says: {exc.orig}); {RESTORE}"
            ) from None
        except BaseException:
            await db.close(checkpoint=False)
            raise
        return db

    async def close(self, *, checkpoint: bool = True) -> None:
        """Checkpoint (SQLite: every committed page into the database file, the -wal emptied, so a copy
        of the .db file alone after a stop holds everything), then close every pooled connection; the
        last connection to close removes the -wal file."""
        if self.is_sqlite and checkpoint:
            try:
                async with self.write_lock, self.writer.connect() as conn:
                    # On the driver's connection: SQLAlchemy would open a transaction (BEGIN IMMEDIATE),
                    # inside which SQLite refuses to checkpoint.
                    raw = await conn.get_raw_connection()
                    driver = raw.driver_connection
                    assert driver is not None  # an open connection has its driver's connection
                    await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except (DBAPIError, sqlite3.Error) as exc:  # a damaged or busy file: closing must still go on
                log.warning("checkpoint at close failed: %s", getattr(exc, "orig", exc))
        async with self.write_lock:
            await self._drop_write_connection()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()

    @asynccontextmanager
    async def write(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed when the block exits cleanly.
        ``urgent``: ahead of the ordinary writers waiting (see :class:`WriteLock`); for votes only.

        On PostgreSQL write transactions (one at a time, like SQLite's) share one connection, kept
        between them: a checkout from the pool pings the server first (``pool_pre_ping``; with asyncpg
        BEGIN, a ping and ROLLBACK), three round trips more than a vote group's own four. A kept
        connection the server has closed is noticed without a round trip (asyncpg sees its socket close)
        and replaced from the pool, pinged; one that broke during a transaction is dropped with it."""
        if self.is_sqlite:
            async with self.write_lock.turn(urgent=urgent), self.writer.begin() as conn:
                yield conn
            return
        async with self._write_turn(urgent=urgent) as pg, pg.begin():
            yield pg

    @asynccontextmanager
    async def write_asyncpg(self, *, urgent: bool = False) -> AsyncIterator[Any]:
        """PostgreSQL on asyncpg: a write transaction like :meth:`write`'s, on the same kept connection,
        driven by asyncpg itself (``asyncpg.Connection.transaction()``) for the vote writer's hot path:
        SQLAlchemy's begin and commit cost more CPU per vote group than the group's own statements."""
        if not self.on_asyncpg:
            raise RuntimeError("write_asyncpg needs a postgresql+asyncpg database")
        async with self._write_turn(urgent=urgent):
            driver = self._write_driver
            async with driver.transaction():
                yield driver

    @asynccontextmanager
    async def _write_turn(self, *, urgent: bool) -> AsyncIterator[AsyncConnection]:
        """PostgreSQL: the writer's turn on the kept write connection; a connection that broke during the
        turn is dropped with it (the next turn takes a fresh one from the pool)."""
        async with self.write_lock.turn(urgent=urgent):
            pg = await self._kept_write_connection()
            try:
                yield pg
            except BaseException:
                if await _unusable(pg):
                    await self._drop_write_connection()
                raise

    async def _kept_write_connection(self) -> AsyncConnection:
        """The kept write connection (PostgreSQL), replaced if it is known to be broken. Under write_lock."""
        kept = self._write_conn
        # The driver's connection kept beside it: asking SQLAlchemy for it again costs a greenlet switch.
        driver = self._write_driver
        if kept is not None and (kept.invalidated or kept.closed or driver is None or _driver_closed(driver)):
            await self._drop_write_connection()
            kept = None
        if kept is None:
            kept = await self.writer.connect()
            self._write_driver = (await kept.get_raw_connection()).driver_connection
            self._write_conn = kept
        return kept

    async def _drop_write_connection(self) -> None:
        conn, self._write_conn, self._write_driver = self._write_conn, None, None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:  # a broken connection: the pool discards it
                log.info("closing the write connection failed: %r", exc)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        async with self.reader.connect() as conn:
            yield conn

    # -- migrations -------------------------------------------------------------------------------

    async def current_revision(self) -> str | None:
        """The revision recorded in ``alembic_version`` (what alembic's ``get_current_revision`` reads),
        or None on a database never migrated."""

        def _read(c: Connection) -> str | None:
            if not inspect(c).has_table("alembic_version"):
                return None
            rows = c.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            if len(rows) > 1:
                raise RuntimeError(f"the database records several schema revisions: {sorted(rows)}")
            return rows[0] if rows else None

        async with self.writer.connect() as conn:
            return await conn.run_sync(_read)

    async def check_schema_version(self) -> None:
        """Refuse a database whose schema is newer than the migrations this code ships."""
        current = await self.current_revision()
        if current is None:
            return
        if current not in shipped_revisions():
            raise SchemaTooNewError(
                f"the database schema is at revision {current}, which this version of Common Ground "
                "does not know: it was written by a newer version. Upgrade Common Ground, or restore a backup."
            )

    async def migrate(self, revision: str = "head") -> None:
        if revision == "head" and await self.current_revision() == shipped_head():
            return  # nothing to run: alembic is not even imported
        from alembic import command

        cfg = alembic_config(self.url)

        def _upgrade(sync_conn: Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        async with self.write_lock, self.writer.begin() as conn:
            # Processes starting together take turns: the next one's alembic reads the version the first
            # committed and has nothing to do. On PostgreSQL an advisory lock; on SQLite the write lock of
            # BEGIN IMMEDIATE, which goes with the transaction's first statement (sqlite_driver.py): this one,
            # before alembic starts.
            if self.is_sqlite:
                await conn.exec_driver_sql("SELECT 1")
            else:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.run_sync(_upgrade)

    # -- checks and backups -----------------------------------------------------------------------

    async def self_check(self) -> SelfCheck:
        """The durability settings in force on a writer connection, SQLite's ``integrity_check``, and a
        canary read: the schema at the revision this code ships, every table readable."""
        async with self.writer.connect() as conn:
            if self.is_sqlite:
                settings, integrity = await self._sqlite_settings(conn)
            else:
                settings, integrity = await self._postgres_settings(conn), "ok"
            await conn.rollback()
        if integrity == "ok":
            integrity = await self._canary_read()
        return SelfCheck(settings, integrity)

    @staticmethod
    async def _sqlite_settings(conn: AsyncConnection) -> tuple[tuple[Setting, ...], str]:
        journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
        sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one()
        fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
        settings = (
            Setting("journal_mode", str(journal).lower(), ("wal",)),
            Setting("synchronous", _SYNCHRONOUS.get(int(sync), str(sync)), ("full",)),  # NORMAL can lose commits
            Setting("foreign_keys", "on" if fks else "off", ("on",)),
        )
        # A damaged file answers one row per problem (up to 100), or fails outright, not "ok".
        try:
            problems = [str(r[0]) for r in (await conn.exec_driver_sql("PRAGMA integrity_check")).all()]
        except DBAPIError as exc:
            problems = [str(exc.orig)]
        integrity = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        return settings, integrity

    @staticmethod
    async def _postgres_settings(conn: AsyncConnection) -> tuple[Setting, ...]:
        found = []
        for name, sql, accepted in _POSTGRES_SETTINGS:
            found.append(Setting(name, str((await conn.exec_driver_sql(sql)).scalar_one()), accepted))
        return tuple(found)

    async def _canary_read(self) -> str:
        """ "ok" when a reader sees the schema at this code's head revision and can read every table."""
        head = shipped_head()
        try:
            async with self.read() as conn:
                revision = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
                if revision != head:
                    return f"schema at revision {revision}, this version needs {head}: run `commonground migrate`"
                for table in metadata.sorted_tables:
                    await conn.execute(table.select().limit(1))
        except DBAPIError as exc:
            return f"canary read failed: {exc.orig}"
        return "ok"

    async def require_healthy(self) -> SelfCheck:
        check = await self.self_check()
        if not check.ok:
            raise DatabaseSettingsError(f"database self-check failed: {'; '.join(check.problems)}")
        return check

    async def backup(self, target: Path) -> str:
        """Copy a live SQLite database with the online backup API; return the copy's integrity_check."""
        if not self.is_sqlite:
            raise RuntimeError("backup copies SQLite databases; use pg_dump for PostgreSQL")
        source = make_url(self.url).database
        if not source or source == ":memory:":
            raise RuntimeError("an in-memory database has nothing to back up")
        return await asyncio.to_thread(sqlite_backup, Path(source), target)


async def _unusable(conn: AsyncConnection) -> bool:
    """Whether a kept connection is known to be broken: invalidated by SQLAlchemy (a disconnect error), or
    its driver's connection closed (asyncpg's is_closed(), set when the socket closes). No round trip."""
    if conn.invalidated or conn.closed:
        return True
    try:
        raw = await conn.get_raw_connection()
    except Exception:
        return True
    return _driver_closed(raw.driver_connection)


def _driver_closed(driver: Any) -> bool:
    """asyncpg's is_closed() (set when its socket closes); other drivers are trusted until they fail."""
    is_closed = getattr(driver, "is_closed", None)
    return bool(is_closed()) if callable(is_closed) else False


def sqlite_backup(source: Path, target: Path) -> str:
    """Online backup of ``source`` into ``target`` (written beside it, then renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=1024)
            dst.execute("PRAGMA journal_mode=DELETE")
            result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    partial.replace(target)
    return str(result)


async def scalar(conn: AsyncConnection, sql: str, **params: Any) -> Any:
    """One value from a textual query (for checks and tests)."""
    return (await conn.execute(text(sql), params)).scalar()
