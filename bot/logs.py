"""Logging: one JSON object per line, and nothing private in it.

Our own log calls name ids, counts and kinds of error, never what a patient wrote or sent
(see `handlers/updates/delivery.py`). Libraries are another matter: HTTP clients log each request's
URL, and a Bot API URL holds the bot's token (a WeChat API URL the access token and a
follower's openid); SQLAlchemy logs every statement with its values once its logger is at
INFO; pydicom quotes values read from patients' files. Those loggers are held at WARNING or
switched off whatever the level, and the formatter scrubs anything shaped like a secret, as a
last line of defence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

# They log request URLs (tokens, openids) or statements with their values at INFO and DEBUG.
QUIET_LOGGERS = (
    "httpx",
    "httpcore",
    "aiogram",
    "telegram",
    "urllib3",
    "requests",
    "wechatpy",
    "sqlalchemy",
)
# Nothing of theirs is logged: pydicom's warnings quote values from patients' files, aiohttp's
# access log would show upload-page paths, which carry the upload token.
SILENT_LOGGERS = ("pydicom", "aiohttp.access")

REDACTED = "[redacted]"
_SECRETS = (
    # A Telegram bot token, alone or inside a Bot API URL (".../bot123456:AA.../getMe").
    (re.compile(r"\d+:[A-Za-z0-9_-]{30,}"), REDACTED),
    # WeChat API query values: the access token, the AppSecret, a follower's openid.
    (re.compile(r"(access_token|secret|openid)=[^&\s\"'\\]+"), rf"\1={REDACTED}"),
    # An upload-page link: the path carries the upload token.
    (re.compile(r"/u/[A-Za-z0-9_-]{16,}"), f"/u/{REDACTED}"),
)

# Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def scrub(text: str) -> str:
    """`text` with anything shaped like a token, secret or openid replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _frames(exc_info: Any) -> list[str]:
    """Where an exception went, without its message: messages can quote a file's name or a
    value a patient sent; the type and the code's path through it are what an operator needs."""
    _, _, tb = exc_info
    return [
        f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in traceback.extract_tb(tb)
    ]


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, then any `extra` fields; an exception as its type and
    frames only. The finished line is scrubbed of anything shaped like a secret."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["frames"] = _frames(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        return scrub(json.dumps(entry, ensure_ascii=False, default=str))


class JsonLinesHandler(logging.Handler):
    """One formatted line per record on `stream`, or on standard error as it is when the line
    is written (so a replaced sys.stderr is followed, as logging's last-resort handler does)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self._stream if self._stream is not None else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def configure_logging(level: str = "WARNING", stream: TextIO | None = None) -> None:
    """JSON lines on `stream` (standard error) at `level` for everything but the libraries
    above, which stay at WARNING (or silent) at any level. Called again, it replaces its
    handler rather than adding a second one."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, JsonLinesHandler)]:
        root.removeHandler(old)
    root.addHandler(JsonLinesHandler(stream))
    root.setLevel(level)
    quiet = max(logging.WARNING, root.level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    for name in SILENT_LOGGERS:
        logging.getLogger(name).disabled = True
