"""Database engines: SQLite (WAL, BEGIN IMMEDIATE, a long busy timeout) or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, QueuePool, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor, Dialect
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers the tables)

BUSY_TIMEOUT_MS = 15_000


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )
    _sqlite_transactions(engine)
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    """Take the write lock at BEGIN: two writers then queue on the busy timeout instead of
    one failing with "database is locked" when it upgrades a read lock."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_schema(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


# --- the hot path: compiled statements on DBAPI connections ----------------------------------


class Prepared:
    """A Core statement compiled once for one dialect and run straight on a DBAPI cursor.

    Skips SQLAlchemy's per-execution work (compiled-cache lookup, events, result wrapping), but
    values still pass through the column types' bind processors, so a row written here (SQLite
    keeps datetimes as text in SQLAlchemy's format) reads back the same through the ORM.
    Database errors are raised as SQLAlchemy's wrapped exceptions, as `Connection.execute` would.
    """

    def __init__(
        self,
        statement: ClauseElement,
        dialect: Dialect,
        column_keys: Sequence[str] | None = None,
    ) -> None:
        compiled = statement.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None
        )
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        if "POSTCOMPILE" in self.sql:
            raise ValueError("statements with expanding parameters cannot be prepared")
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._dialect = dialect
        positional = compiled.positiontup
        self._positional = positional is not None
        names = list(positional) if positional is not None else list(compiled.binds)
        fields: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
        for name in names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            default = _REQUIRED if bind.required else bind.effective_value
            fields.append((name, processor, default))
        self._fields = tuple(fields)

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The DBAPI parameters for one set of named values."""
        out: list[Any] = []
        for name, processor, default in self._fields:
            value = values[name] if default is _REQUIRED else values.get(name, default)
            out.append(value if processor is None else processor(value))
        if self._positional:
            return out
        return dict(zip((field[0] for field in self._fields), out, strict=True))

    def execute(self, cursor: DBAPICursor, values: Mapping[str, Any]) -> DBAPICursor:
        params = self.params(values)
        try:
            cursor.execute(self.sql, params)
        except self._dbapi_error as error:
            raise self._wrap(error, params, many=False) from error
        return cursor

    def executemany(self, cursor: DBAPICursor, rows: Sequence[Mapping[str, Any]]) -> None:
        params = [self.params(values) for values in rows]
        try:
            cursor.executemany(self.sql, params)  # type: ignore[arg-type]
        except self._dbapi_error as error:
            raise self._wrap(error, params, many=True) from error

    def _wrap(self, error: Exception, params: Any, many: bool) -> BaseException:
        wrapped = DBAPIError.instance(
            self.sql, params, error, self._dbapi_error, dialect=self._dialect, ismulti=many
        )
        return wrapped if isinstance(wrapped, BaseException) else error


_REQUIRED = object()


class _Direct:
    """One DBAPI connection owned by one thread (not by the pool)."""

    __slots__ = ("__weakref__", "busy", "connection", "generation", "pid")

    def __init__(self, connection: DBAPIConnection, generation: int) -> None:
        self.connection = connection
        self.generation = generation
        self.pid = os.getpid()
        self.busy = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()


class HotConnections:
    """DBAPI connections for the per-message path, shared by the stores of one engine.

    On a SQLite file each thread keeps one connection of its own, taken from the pool once and
    detached from it, so a message does not pay for a pool checkout and return three times; the
    connection is set up by the same "connect" listener as every other (WAL, busy timeout), and
    closed when the engine is disposed. Elsewhere (PostgreSQL with its pre-ping, an in-memory
    SQLite whose pool hands each thread its single database) each use checks a connection out
    of the pool and returns it.

    A transaction on SQLite starts with BEGIN IMMEDIATE, like `Engine.begin()` here: the write
    lock is taken before the state is read.
    """

    def __init__(self, engine: Engine) -> None:
        # Held weakly: the registry below must not keep a disposed-of engine alive.
        self._engine = weakref.ref(engine)
        self.dialect = engine.dialect
        self._sqlite = engine.dialect.name == "sqlite"
        self._own = self._sqlite and isinstance(engine.pool, QueuePool)
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0
        self._open: weakref.WeakSet[_Direct] = weakref.WeakSet()
        event.listen(engine, "engine_disposed", self._on_dispose)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[DBAPICursor]:
        """A cursor inside one transaction: committed on success, rolled back on any error."""
        with self._connection() as connection:
            cursor = connection.cursor()
            if self._sqlite:
                self._run(cursor, "BEGIN IMMEDIATE")
            try:
                yield cursor
                try:
                    connection.commit()
                except self._dbapi_error as error:
                    raise self._wrap("COMMIT", error) from error
            except BaseException:
                connection.rollback()
                raise
            finally:
                cursor.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[DBAPICursor]:
        """A cursor for reads outside a transaction of ours."""
        with self._connection() as connection:
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
                if not self._sqlite:
                    connection.rollback()  # end the implicit read transaction

    @contextlib.contextmanager
    def _connection(self) -> Iterator[DBAPIConnection]:
        direct = self._thread_connection() if self._own else None
        if direct is None:  # not ours to keep, or already in use further up this thread
            pooled = self._engine_now().raw_connection()
            try:
                yield pooled.dbapi_connection  # type: ignore[misc]
            finally:
                pooled.close()
            return
        direct.busy = True
        try:
            yield direct.connection
        except BaseException:
            if not _idle(direct.connection):
                self._discard(direct)  # a failed rollback: never reuse it mid-transaction
            raise
        finally:
            direct.busy = False
            if direct.generation != self._generation:
                self._discard(direct)

    def _thread_connection(self) -> _Direct | None:
        direct: _Direct | None = getattr(self._local, "direct", None)
        if direct is not None:
            if direct.busy:
                return None
            if direct.generation == self._generation and direct.pid == os.getpid():
                return direct
            self._discard(direct)
        fairy = self._engine_now().raw_connection()
        fairy.detach()
        connection = fairy.dbapi_connection
        assert connection is not None
        direct = _Direct(connection, self._generation)
        self._local.direct = direct
        with self._lock:
            self._open.add(direct)
        return direct

    def _engine_now(self) -> Engine:
        engine = self._engine()
        if engine is None:
            raise RuntimeError("the engine these connections belong to is gone")
        return engine

    def _discard(self, direct: _Direct) -> None:
        if getattr(self._local, "direct", None) is direct:
            self._local.direct = None
        with self._lock:
            self._open.discard(direct)
        if direct.pid == os.getpid():  # never close a parent's connection after a fork
            direct.close()

    def _on_dispose(self, _engine: Engine) -> None:
        with self._lock:
            self._generation += 1
            idle = [direct for direct in self._open if not direct.busy]
            for direct in idle:
                self._open.discard(direct)
        for direct in idle:
            if direct.pid == os.getpid():
                direct.close()

    def _run(self, cursor: DBAPICursor, sql: str) -> None:
        try:
            cursor.execute(sql)
        except self._dbapi_error as error:
            raise self._wrap(sql, error) from error

    def _wrap(self, sql: str, error: Exception) -> BaseException:
        wrapped = DBAPIError.instance(sql, None, error, self._dbapi_error, dialect=self.dialect)
        return wrapped if isinstance(wrapped, BaseException) else error


def _idle(connection: DBAPIConnection) -> bool:
    """False when a SQLite connection is still inside a transaction."""
    return not bool(getattr(connection, "in_transaction", False))


_hot: weakref.WeakKeyDictionary[Engine, HotConnections] = weakref.WeakKeyDictionary()
_hot_lock = threading.Lock()


def hot_connections(engine: Engine) -> HotConnections:
    """The engine's hot-path connections, shared by every store built on it."""
    with _hot_lock:
        found = _hot.get(engine)
        if found is None:
            found = _hot[engine] = HotConnections(engine)
        return found
