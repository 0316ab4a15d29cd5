"""Database engines: SQLite (WAL, BEGIN IMMEDIATE, a long busy timeout) or PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine.url import make_url

from storage import models  # noqa: F401  (registers the tables)
from storage.private import FILE_MODE, create_private, open_private, private_dir

# Alembic takes a few tenths of a second to import: it loads only when a schema is to be
# changed (or checked against the migrations), not when the bot starts on a current one.
if TYPE_CHECKING:
    from alembic.config import Config

BUSY_TIMEOUT_MS = 15_000
READ_ONLY = "huizhen_read_only"


def reader(engine: Engine) -> Engine:
    """The same engine for reads: on SQLite its transactions do not take the write lock."""
    return engine.execution_options(**{READ_ONLY: True})


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        _private_database(Path(parsed.database))
    engine = create_engine(
        parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )
    _sqlite_transactions(engine)
    return engine


def _private_database(path: Path) -> None:
    """The database file is made owner-only before SQLite opens it: SQLite gives its -wal and
    -shm files the main file's permissions (ones an older version left are set too)."""
    if not path.parent.exists():
        private_dir(path.parent)
    create_private(path)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", FILE_MODE)


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
        # Deleted rows are overwritten with zeros, not left readable in free pages: an
        # erasure must leave no trace in the file (handlers/privacy/erasure.py).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        # Readers run in autocommit (each statement its own snapshot) and never take the
        # write lock; writers take it at BEGIN.
        if not connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def run_once(engine: Engine, name: str) -> Iterator[bool]:
    """Work that one worker at a time does (reminders, sweeps): yields whether this one got
    it. PostgreSQL: a session advisory lock, freed if the worker dies. SQLite serves a single
    process, which runs it."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:
        got = bool(
            connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        )
        connection.commit()
        try:
            yield got
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()


@contextmanager
def serving(engine: Engine, free_left_claims: Callable[[], None]) -> Iterator[None]:
    """Held by a process that serves the database (`huizhen run`) for as long as it runs.
    The first to start while no other serves it calls `free_left_claims` before anything
    else: every claim in the outbox and the job table was then left by a process that is
    gone (killed, or stopped in mid-round), so a restarted bot answers at once instead of
    after the leases (two minutes for messages, an hour for files).

    SQLite: a shared flock on a file beside the database; the kernel drops it when the
    process dies, SIGKILL included. A starting process that can take it exclusively is
    alone; it frees the claims before it shares the lock, so it holds none of its own yet.
    PostgreSQL workers may run on several machines: there the leases decide, as before."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    handle = open_private(Path(f"{database}-serving"), os.O_RDWR)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another process serves it: its claims are its own
        else:
            free_left_claims()
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield
    finally:
        os.close(handle)  # and the lock with it


MIGRATIONS = Path(__file__).with_name("migrations")
# The schema as first released (before migrations existed): a database holding those tables
# without Alembic's version table is taken to be at this revision.
BASELINE_REVISION = "0001"
# The newest migration (storage/migrations/versions); tests/test_migrations.py checks it is
# Alembic's head, so a start on a current schema need not load Alembic to know.
HEAD_REVISION = "0006"


class SchemaOutdated(RuntimeError):
    """The database is behind the code: run `huizhen migrate`."""


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, in one transaction (on SQLite the write lock
    taken at BEGIN also keeps two starting processes from migrating at once)."""
    with engine.begin() as connection:
        if _revisions(connection) == {HEAD_REVISION}:
            return
        from alembic import command

        config = _config(connection)
        tables = set(inspect(connection).get_table_names())
        if tables and "alembic_version" not in tables:
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, "head")


def schema_is_current(engine: Engine) -> bool:
    with engine.connect() as connection:
        return _revisions(connection) == {HEAD_REVISION}


def _revisions(connection: Connection) -> set[str]:
    """The revisions the database is at (Alembic's version table), as Alembic reads them."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def prepare_schema(engine: Engine) -> None:
    """On start: SQLite (one process, one file) is migrated at once; PostgreSQL, shared by
    several workers, is migrated by an operator with `huizhen migrate`, and a worker refuses
    to start on an older schema rather than fail later."""
    if engine.dialect.name == "sqlite":
        migrate(engine)
    elif not schema_is_current(engine):
        raise SchemaOutdated("the database schema is older than this version: run huizhen migrate")
