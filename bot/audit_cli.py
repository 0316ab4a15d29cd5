"""`huizhen audit`: read the audit log, and check that no entry was changed or removed."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from sqlalchemy import Engine

from bot.config import Settings
from storage.audit import PSEUDONYM_KEY_FILE, AuditLog
from storage.database import make_engine, prepare_schema
from storage.files import load_key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--case", metavar="REF", help="only entries about this case")
    parser.add_argument(
        "--since", type=_date, metavar="YYYY-MM-DD", help="only entries from this day on"
    )
    parser.add_argument("--limit", type=int, default=200, help="the newest N entries (200)")
    parser.add_argument("--verify", action="store_true", help="check the hash chain of every entry")


def _date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as error:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from error


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    try:
        prepare_schema(engine)
        return _run(engine, settings, args)
    finally:
        engine.dispose()


def _run(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    log = AuditLog(engine, load_key(None, settings.data_dir, PSEUDONYM_KEY_FILE))
    if args.verify:
        checked, broken = log.verify()
        if broken is not None:
            print(f"The audit log was altered: entry {broken} does not follow the one before.")
            return 1
        print(f"The audit log is intact: {checked} entries, each following the one before.")
        return 0
    subject = args.case.upper() if args.case else None
    entries = log.entries(subject=subject, since=args.since, limit=max(1, args.limit))
    if not entries:
        print("No audit entries.")
    for entry in entries:
        details = json.dumps(entry.details, ensure_ascii=False) if entry.details else ""
        print(
            f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor:<18} {entry.action:<18} "
            f"{entry.subject:<27} {details}".rstrip()
        )
    return 0
