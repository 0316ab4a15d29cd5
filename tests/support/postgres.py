"""A fresh PostgreSQL database per test, where the machine has PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from storage.database import make_engine, migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "HUIZHEN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def fresh_postgres_database(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL database for one test; skipped with a reason where there is none
    (but never in CI, where PostgreSQL is part of the machine)."""
    try:
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"huizhen_test_{uuid.uuid4().hex[:12]}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {error.orig}")

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    request.addfinalizer(drop)
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    migrate(engine)  # as `huizhen migrate` does before PostgreSQL workers start
    engine.dispose()
    return url
