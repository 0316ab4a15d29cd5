"""Settings: read in one place; a malformed value names its variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


def test_defaults_run_the_console_on_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    settings = load_settings({"DATA_DIR": str(tmp_path)})
    assert settings.channels == ("console",)
    assert settings.database_url == f"sqlite:///{tmp_path / 'huizhen.sqlite3'}"
    assert settings.default_locale == "en"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEB_PORT", "eighty"),
        ("WEB_PORT", "70000"),
        ("DEFAULT_LOCALE", "klingon"),
        ("TELEGRAM_LIBRARY", "telethon"),
        ("TELEGRAM_API_BASE_URL", "api.telegram.org"),
        ("COORDINATOR_IDS", "12, alice"),
        ("COORDINATOR_CHAT_ID", "coordinators"),
        ("DATABASE_URL", "mysql://localhost/x"),
    ],
)
def test_a_malformed_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_a_platform_token_selects_its_channel() -> None:
    assert load_settings({"TELEGRAM_BOT_TOKEN": "123:abc"}).channels == ("telegram",)


def test_the_cli_stops_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "queue", "list"],
        env={"DATA_DIR": str(tmp_path), "WEB_PORT": "eighty", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 2
    assert "WEB_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_setting_of_ours_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"TELEGRAM_TOKEN .*did you mean TELEGRAM_BOT_TOKEN"):
        load_settings({"TELEGRAM_TOKEN": "123:abc"})
