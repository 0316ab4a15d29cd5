"""Shared fixtures. `settings` runs a test on each database Huizhen supports (or on those a
`databases` mark names); `chat` drives the console channel like a person at a terminal;
`library` runs a Telegram test with each adapter."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import App, build_app
from bot.config import Settings, load_settings
from tests.support.console import Chat, make_chat
from tests.support.orthanc import orthanc  # noqa: F401  (the imaging tests' real Orthanc)
from tests.support.postgres import fresh_postgres_database
from tests.support.telegram import LIBRARIES

DATABASES = ("sqlite", "postgresql")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests refuse the network; anything that needs HTTP talks to a local server."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "::1", "localhost")
            and not (self.family == socket.AF_UNIX)
        ):
            raise RuntimeError(f"test tried to reach the network: {host}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that needs `settings` runs once per database; a module or test marked
    `@pytest.mark.databases("sqlite")` (where the channel is what varies, not the database)
    runs on the ones it names."""
    if "settings" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("databases")
        databases = marker.args if marker is not None else DATABASES
        metafunc.parametrize("settings", databases, indirect=True)


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A fresh data folder on the database `pytest_generate_tests` chose."""
    assert request.param in DATABASES, request.param
    env = {"DATA_DIR": str(tmp_path / "data")}
    if request.param == "postgresql":
        env["DATABASE_URL"] = fresh_postgres_database(request)
    return load_settings(env)


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    application = build_app(settings)
    yield application
    application.close()


@pytest.fixture(params=LIBRARIES)
def library(request: pytest.FixtureRequest) -> str:
    """The Telegram adapter under test: python-telegram-bot or aiogram."""
    return str(request.param)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """SQLite only, for tests about a channel or a file rather than the database."""
    return load_settings({"DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def chat(app: App) -> Chat:
    return make_chat(app)
