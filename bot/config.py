"""Every setting Huizhen reads, from environment variables, in one place.

A malformed value stops start-up with a message that names the variable, never a traceback.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.logs import LEVELS
from conversations.i18n import SUPPORTED_LOCALES
from records.checklist import AREAS
from storage.files import BadEncryptionKey, decode_key

# Oncology decisions rest on current imaging; a slower disease tolerates older scans.
DEFAULT_STALE_IMAGING_DAYS = {"oncology": 90, "neurology": 180, "cardiovascular": 180}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    default_locale: str = "en"
    telegram_bot_token: str | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_library: str = "ptb"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None
    # Behind Telegram's own Bot API server started with --local: files up to 2 GB arrive
    # as paths on a folder the workers share with it.
    telegram_local_mode: bool = False
    # Telegram takes about 30 messages a second from one bot; each worker paces itself to
    # this share of it (30 divided by the number of workers).
    telegram_send_rate: int = 30
    coordinator_chat_id: str | None = None
    coordinator_ids: frozenset[str] = field(default_factory=frozenset)
    wechat_app_id: str | None = None
    wechat_app_secret: str | None = None
    wechat_token: str | None = None
    wechat_encoding_aes_key: str | None = None
    wechat_api_base_url: str = "https://api.weixin.qq.com"
    public_base_url: str | None = None
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # /metrics is served only to a scraper that sends this as a bearer token; unset, the web
    # app has no /metrics at all (it faces the internet).
    metrics_token: str | None = None
    file_encryption_key: str | None = None
    # Keys files may still be written with, during a rotation (read only).
    file_encryption_old_keys: tuple[str, ...] = ()
    # Everything one case may hold in the file store, archives unpacked.
    case_quota_bytes: int = 20 * 1024**3
    upload_link_hours: int = 24
    # Imaging older than this many days is flagged, per area (an area not listed: no rule).
    stale_imaging_days: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_STALE_IMAGING_DAYS)
    )
    # Limits of the worker process that opens files (archives, DICOM, previews).
    analysis_timeout_seconds: int = 300
    analysis_memory_mb: int = 1536
    # A patient asked for records is reminded every this many days, at most this many times.
    reminder_days: int = 3
    max_reminders: int = 2
    # Coordinators hear about a case left this many days in one status.
    idle_days: int = 3
    # Questions a patient may ask about the opinion they received.
    followup_questions: int = 3
    # An unfinished case untouched this many days is erased, after a warning this many days
    # before; a patient whose cases all closed this many days ago is erased.
    retention_draft_days: int = 90
    retention_warning_days: int = 14
    retention_closed_days: int = 730
    # Our own log lines at this level and above (libraries that would log tokens or values
    # stay at WARNING whatever it is).
    log_level: str = "WARNING"
    # Orthanc (the PACS behind the viewer): checked studies go there, with a de-identified
    # copy for specialists; unset, nothing is sent anywhere. Dates in that copy are shifted
    # per patient (intervals kept) unless kept as they are.
    orthanc_url: str | None = None
    orthanc_user: str | None = None
    orthanc_password: str | None = None
    orthanc_keep_dates: bool = False

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels `huizhen run` starts; the console when no platform is configured."""
        found = []
        if self.telegram_bot_token:
            found.append("telegram")
        if self.wechat_app_id and self.wechat_token:
            found.append("wechat")
        return tuple(found) or ("console",)


KNOWN_VARIABLES = frozenset(
    {
        "DATA_DIR",
        "DATABASE_URL",
        "DEFAULT_LOCALE",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_API_BASE_URL",
        "TELEGRAM_LIBRARY",
        "TELEGRAM_WEBHOOK_URL",
        "TELEGRAM_WEBHOOK_SECRET",
        "TELEGRAM_LOCAL_MODE",
        "TELEGRAM_SEND_RATE",
        "COORDINATOR_CHAT_ID",
        "COORDINATOR_IDS",
        "WECHAT_APP_ID",
        "WECHAT_APP_SECRET",
        "WECHAT_TOKEN",
        "WECHAT_ENCODING_AES_KEY",
        "WECHAT_API_BASE_URL",
        "PUBLIC_BASE_URL",
        "WEB_HOST",
        "WEB_PORT",
        "METRICS_TOKEN",
        "FILE_ENCRYPTION_KEY",
        "FILE_ENCRYPTION_OLD_KEYS",
        "CASE_QUOTA_MB",
        "UPLOAD_LINK_HOURS",
        "STALE_IMAGING_DAYS",
        "ANALYSIS_TIMEOUT_SECONDS",
        "ANALYSIS_MEMORY_MB",
        "REMINDER_DAYS",
        "MAX_REMINDERS",
        "IDLE_DAYS",
        "FOLLOWUP_QUESTIONS",
        "RETENTION_DRAFT_DAYS",
        "RETENTION_WARNING_DAYS",
        "RETENTION_CLOSED_DAYS",
        "LOG_LEVEL",
        "ORTHANC_URL",
        "ORTHANC_USER",
        "ORTHANC_PASSWORD",
        "ORTHANC_KEEP_DATES",
    }
)


# Variables with these prefixes are ours: an unknown one is almost always a typo.
_OWN_PREFIXES = (
    "TELEGRAM_",
    "WECHAT_",
    "COORDINATOR_",
    "UPLOAD_",
    "ANALYSIS_",
    "CASE_",
    "STALE_",
    "FILE_",
    "REMINDER_",
    "MAX_",
    "IDLE_",
    "FOLLOWUP_",
    "RETENTION_",
    "METRICS_",
    "ORTHANC_",
)


def _check_unknown(env: Mapping[str, str]) -> None:
    for name in sorted(env):
        if name.startswith(_OWN_PREFIXES) and name not in KNOWN_VARIABLES:
            close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{name} is not a Huizhen setting{hint}")


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _url(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = _text(env, name)
    if value is None:
        return default
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http:// or https:// address, got something else")
    return value.rstrip("/")


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _text(env, name)
    if value is None:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{name} must be a port number between 1 and 65535")
    return int(value)


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    value = _text(env, "DATABASE_URL")
    if value is None:
        return f"sqlite:///{data_dir / 'huizhen.sqlite3'}"
    if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        raise ConfigError("DATABASE_URL must start with sqlite:// or postgresql://")
    return value


def _locale(env: Mapping[str, str]) -> str:
    value = _text(env, "DEFAULT_LOCALE") or "en"
    if value not in SUPPORTED_LOCALES:
        raise ConfigError(
            f"DEFAULT_LOCALE must be one of {', '.join(SUPPORTED_LOCALES)}, got {value!r}"
        )
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = _text(env, name) or allowed[0]
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _ids(env: Mapping[str, str], name: str) -> frozenset[str]:
    value = _text(env, name)
    if value is None:
        return frozenset()
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not all(p.lstrip("-").isdigit() for p in parts):
        raise ConfigError(f"{name} must be a comma-separated list of numeric account ids")
    return frozenset(parts)


def _chat_id(env: Mapping[str, str], name: str) -> str | None:
    value = _text(env, name)
    if value is not None and not value.lstrip("-").isdigit():
        raise ConfigError(f"{name} must be a numeric chat id (groups start with -100)")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings; raise ConfigError naming the first malformed variable."""
    env = os.environ if env is None else env
    _check_unknown(env)
    data_dir = Path(_text(env, "DATA_DIR") or "./data").expanduser()
    if _text(env, "ORTHANC_USER") and not _text(env, "ORTHANC_PASSWORD"):
        raise ConfigError("ORTHANC_PASSWORD must be set when ORTHANC_USER is set")
    if _text(env, "TELEGRAM_WEBHOOK_URL") and not _text(env, "TELEGRAM_WEBHOOK_SECRET"):
        raise ConfigError("TELEGRAM_WEBHOOK_SECRET must be set when TELEGRAM_WEBHOOK_URL is set")
    return Settings(
        data_dir=data_dir,
        database_url=_database_url(env, data_dir),
        default_locale=_locale(env),
        telegram_bot_token=_text(env, "TELEGRAM_BOT_TOKEN"),
        telegram_api_base_url=_url(env, "TELEGRAM_API_BASE_URL", "https://api.telegram.org")
        or "https://api.telegram.org",
        telegram_library=_choice(env, "TELEGRAM_LIBRARY", ("ptb", "aiogram")),
        telegram_webhook_url=_url(env, "TELEGRAM_WEBHOOK_URL"),
        telegram_webhook_secret=_text(env, "TELEGRAM_WEBHOOK_SECRET"),
        telegram_local_mode=_flag(env, "TELEGRAM_LOCAL_MODE"),
        telegram_send_rate=_positive(env, "TELEGRAM_SEND_RATE", 30),
        coordinator_chat_id=_chat_id(env, "COORDINATOR_CHAT_ID"),
        coordinator_ids=_ids(env, "COORDINATOR_IDS"),
        wechat_app_id=_text(env, "WECHAT_APP_ID"),
        wechat_app_secret=_text(env, "WECHAT_APP_SECRET"),
        wechat_token=_text(env, "WECHAT_TOKEN"),
        wechat_encoding_aes_key=_text(env, "WECHAT_ENCODING_AES_KEY"),
        wechat_api_base_url=_url(env, "WECHAT_API_BASE_URL", "https://api.weixin.qq.com")
        or "https://api.weixin.qq.com",
        public_base_url=_url(env, "PUBLIC_BASE_URL"),
        web_host=_text(env, "WEB_HOST") or "127.0.0.1",
        web_port=_port(env, "WEB_PORT", 8080),
        metrics_token=_secret(env, "METRICS_TOKEN"),
        file_encryption_key=_encryption_key(env, "FILE_ENCRYPTION_KEY"),
        file_encryption_old_keys=_old_keys(env, "FILE_ENCRYPTION_OLD_KEYS"),
        case_quota_bytes=_positive(env, "CASE_QUOTA_MB", 20 * 1024) * 1024**2,
        upload_link_hours=_positive(env, "UPLOAD_LINK_HOURS", 24),
        stale_imaging_days=_days_by_area(env, "STALE_IMAGING_DAYS"),
        analysis_timeout_seconds=_positive(env, "ANALYSIS_TIMEOUT_SECONDS", 300),
        analysis_memory_mb=_positive(env, "ANALYSIS_MEMORY_MB", 1536),
        reminder_days=_positive(env, "REMINDER_DAYS", 3),
        max_reminders=_count(env, "MAX_REMINDERS", 2),
        idle_days=_positive(env, "IDLE_DAYS", 3),
        followup_questions=_count(env, "FOLLOWUP_QUESTIONS", 3),
        retention_draft_days=_positive(env, "RETENTION_DRAFT_DAYS", 90),
        retention_warning_days=_positive(env, "RETENTION_WARNING_DAYS", 14),
        retention_closed_days=_positive(env, "RETENTION_CLOSED_DAYS", 730),
        log_level=_log_level(env, "LOG_LEVEL"),
        orthanc_url=_url(env, "ORTHANC_URL"),
        orthanc_user=_text(env, "ORTHANC_USER"),
        orthanc_password=_text(env, "ORTHANC_PASSWORD"),
        orthanc_keep_dates=_flag(env, "ORTHANC_KEEP_DATES"),
    )


def _secret(env: Mapping[str, str], name: str) -> str | None:
    value = _text(env, name)
    if value is not None and (len(value) < 16 or not value.isascii() or not value.isprintable()):
        raise ConfigError(f"{name} must be at least 16 plain characters (a random secret)")
    return value


def _log_level(env: Mapping[str, str], name: str) -> str:
    value = (_text(env, name) or "WARNING").upper()
    if value not in LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(LEVELS)}, got {value!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = _text(env, name)
    if value is None:
        return default
    if not value.isdigit():
        raise ConfigError(f"{name} must be a whole number (0 or more)")
    return int(value)


def _encryption_key(env: Mapping[str, str], name: str) -> str | None:
    value = _text(env, name)
    if value is not None:
        try:
            decode_key(value)
        except BadEncryptionKey as error:
            raise ConfigError(str(error)) from None
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = (_text(env, name) or "no").lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigError(f"{name} must be yes or no")
    return value in ("1", "true", "yes")


def _old_keys(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    value = _text(env, name)
    if value is None:
        return ()
    keys = tuple(part.strip() for part in value.split(",") if part.strip())
    for key in keys:
        try:
            decode_key(key)
        except BadEncryptionKey:
            raise ConfigError(f"{name} must be a comma-separated list of 32-byte keys") from None
    return keys


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _text(env, name)
    if value is None:
        return default
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"{name} must be a whole number above zero")
    return int(value)


def _days_by_area(env: Mapping[str, str], name: str) -> Mapping[str, int]:
    """`oncology:90,neurology:180`: replaces the defaults; an area left out has no rule."""
    value = _text(env, name)
    if value is None:
        return dict(DEFAULT_STALE_IMAGING_DAYS)
    result: dict[str, int] = {}
    for part in value.split(","):
        area, _, days = part.strip().partition(":")
        if area not in AREAS or not days.strip().isdigit():
            raise ConfigError(
                f"{name} must look like oncology:90,neurology:180 with areas from: "
                + ", ".join(sorted(AREAS))
            )
        result[area] = int(days)
    return result
