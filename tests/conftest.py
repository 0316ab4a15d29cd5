"""Shared fixtures. `chat` drives the console channel like a person at a terminal."""

from __future__ import annotations

import io
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from bot.app import App, build_app
from bot.channels.console import ConsoleChannel
from bot.config import Settings, load_settings
from storage.database import make_engine, migrate


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


POSTGRES_ADMIN_URL = os.environ.get(
    "HUIZHEN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_database(request: pytest.FixtureRequest) -> str:
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


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The same tests on both databases Huizhen supports."""
    env = {"DATA_DIR": str(tmp_path / "data")}
    if request.param == "postgresql":
        env["DATABASE_URL"] = _postgres_database(request)
    return load_settings(env)


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    application = build_app(settings)
    yield application
    application.close()


@dataclass
class Chat:
    """A person at the console: say something, read what came back."""

    channel: ConsoleChannel
    screen: io.StringIO
    transcript: list[str] = field(default_factory=list)

    def say(self, line: str) -> str:
        start = self.screen.tell()
        self.channel.submit(line)
        self.screen.seek(start)
        reply = self.screen.read()
        self.transcript.append(f"> {line}\n{reply}")
        return reply

    def press(self, label: str) -> str:
        """Press the button whose visible label contains `label` (as a person would)."""
        options = self.channel._options
        matches = [i for i, option in enumerate(options, 1) if label in option.label]
        assert matches, f"no button {label!r} among {[o.label for o in options]}"
        return self.say(str(matches[0]))

    @property
    def buttons(self) -> list[str]:
        return [option.label for option in self.channel._options]


def make_chat(app: App, user: str = "alice", language_hint: str | None = None) -> Chat:
    screen = io.StringIO()
    return Chat(ConsoleChannel(app, screen, user_key=user, language_hint=language_hint), screen)


@pytest.fixture
def chat(app: App) -> Chat:
    return make_chat(app)
