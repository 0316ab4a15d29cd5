"""Log lines: one JSON object each, with the fields the code passes, scrubbed of secrets."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import configure_logging, scrub
from tests.support.logs import (
    restored_logging,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """configure_logging writing to a buffer."""
    out = io.StringIO()
    with restored_logging():
        configure_logging("INFO", stream=out)
        yield out


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_extra_fields(logged: io.StringIO) -> None:
    log = logging.getLogger("handlers.updates.delivery")
    log.info("message delivered", extra={"outbox_id": 42, "channel": "telegram"})
    log.debug("not at INFO")
    [entry] = lines(logged)
    assert entry["level"] == "INFO" and entry["logger"] == "handlers.updates.delivery"
    assert entry["message"] == "message delivered"
    assert (entry["outbox_id"], entry["channel"]) == (42, "telegram")
    assert isinstance(entry["time"], str) and entry["time"].endswith("+00:00")


def test_an_exception_is_named_with_its_frames_but_not_its_message(logged: io.StringIO) -> None:
    try:
        raise FileNotFoundError("/data/spool/Mrs-Example-liver-biopsy.pdf")
    except FileNotFoundError:
        logging.getLogger("handlers.ingest.ingestor").exception("reading failed")
    [entry] = lines(logged)
    assert entry["error"] == "FileNotFoundError"
    frames = entry["frames"]
    assert isinstance(frames, list) and any("test_logs.py" in frame for frame in frames)
    assert "Example" not in json.dumps(entry)


def test_tokens_secrets_openids_and_upload_links_are_scrubbed(logged: io.StringIO) -> None:
    token = "7741852963:AAHk3ExampleBotTokenZq8Rr5Vw2Xy9Lm4"
    logging.getLogger("somewhere").warning(
        "POST https://api.telegram.org/bot%s/sendMessage", token, extra={"token": token}
    )
    logging.getLogger("somewhere").warning(
        "GET /cgi-bin/user/info?access_token=AT-123&openid=o6_abc&lang=en then "
        "/cgi-bin/token?appid=wx1&secret=s3cr3t and https://h.example/u/AbCdEfGh12345678_-xyZ"
    )
    text = logged.getvalue()
    for secret in ("AAHk3Example", "AT-123", "o6_abc", "s3cr3t", "AbCdEfGh12345678"):
        assert secret not in text
    assert "appid=wx1" in text and "lang=en" in text  # the rest is left as it was
    assert all(isinstance(entry, dict) for entry in lines(logged))
    assert scrub("chat 12345 at 10:30") == "chat 12345 at 10:30"


def test_libraries_that_log_urls_stay_at_warning_whatever_the_level(logged: io.StringIO) -> None:
    configure_logging("DEBUG", stream=logged)  # again: replaces its handler, adds none
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot1:x/getMe")
    logging.getLogger("aiohttp.access").warning("GET /u/some-upload-token")
    logging.getLogger("bot.runner").debug("ours, at DEBUG")
    assert [entry["logger"] for entry in lines(logged)] == ["bot.runner"]


def test_log_level_is_a_setting_checked_at_start() -> None:
    assert load_settings({}).log_level == "WARNING"
    assert load_settings({"LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_settings({"LOG_LEVEL": "loud"})


def test_the_command_line_logs_json_lines_at_the_level_set(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "LOG_LEVEL": "INFO", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert "The database schema is up to date." in result.stdout
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert entries and all(entry["level"] == "INFO" for entry in entries)
    assert any(str(entry["logger"]).startswith("alembic") for entry in entries)
