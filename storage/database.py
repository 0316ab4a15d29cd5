"""Database engines: SQLite (WAL, BEGIN IMMEDIATE, a long busy timeout) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.url import make_url
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers the tables)

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
        # Readers run in autocommit (each statement its own snapshot) and never take the
        # write lock; writers take it at BEGIN.
        if not connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_schema(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)
