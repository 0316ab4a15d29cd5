"""Alembic migrations: they build exactly the models' schema, upgrade a database made before
migrations existed without losing its rows, and PostgreSQL workers refuse an old schema."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from bot.app import build_app
from bot.cli import main
from bot.config import Settings, load_settings
from storage.database import SchemaOutdated, _config, make_engine, migrate
from tests.support.postgres import fresh_postgres_database


def _schema_differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_models_schema(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    migrate(engine)  # on PostgreSQL the fixture migrated already: a second run changes nothing
    migrate(engine)
    engine.dispose()
    assert _schema_differences(settings.database_url) == []


def test_a_database_from_before_migrations_is_upgraded_with_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'huizhen.sqlite3'}"
    (tmp_path / "data").mkdir()
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(_config(connection), "0001")  # the tables as first released
        connection.execute(text("DROP TABLE alembic_version"))  # they had no version table
        connection.execute(
            text(
                "INSERT INTO document (file_id, case_id, item, sha256, size, original_name, "
                "stored_at) VALUES ('f1', 'c1', 'labs', 'ab', 12, 'labs.pdf', :at)"
            ),
            {"at": datetime.now(UTC)},
        )
    engine.dispose()
    app = build_app(load_settings({"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url}))
    try:
        [row] = app.documents.for_case("c1")
        assert (row.original_name, row.kind, row.problem, row.details_json) == (
            "labs.pdf",
            "",
            "",
            "",
        )
    finally:
        app.close()
    assert _schema_differences(url) == []


def test_postgresql_workers_refuse_an_old_schema_until_huizhen_migrate(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = fresh_postgres_database(request)
    engine = make_engine(url)
    with engine.begin() as connection:
        command.downgrade(_config(connection), "0001")
    engine.dispose()
    settings = load_settings({"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url})
    with pytest.raises(SchemaOutdated):
        build_app(settings)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["queue", "list"]) == 2
    assert "run huizhen migrate" in capsys.readouterr().err
    assert main(["migrate"]) == 0
    assert main(["queue", "list"]) == 0
    assert "The queue is empty." in capsys.readouterr().out


def test_the_head_revision_the_code_knows_is_alembics() -> None:
    """A start on a current schema compares with HEAD_REVISION instead of loading Alembic."""
    from alembic.script import ScriptDirectory

    from storage.database import HEAD_REVISION

    assert ScriptDirectory.from_config(_config()).get_heads() == [HEAD_REVISION]
