"""`huizhen run | chat | queue …` (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from bot import audit_cli, queue_cli
from bot.app import build_app
from bot.channels.console import ConsoleChannel, console_language_hint
from bot.config import ConfigError, Settings, load_settings
from bot.logs import configure_logging
from bot.terminal import visible_output
from storage.database import SchemaOutdated, make_engine, migrate
from storage.files import CorruptFile


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="huizhen", description="Huizhen second-opinion intake")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run every configured channel (the console when none)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    commands.add_parser(
        "rotate-key",
        help="write every stored file again under FILE_ENCRYPTION_KEY "
        "(the previous key in FILE_ENCRYPTION_OLD_KEYS)",
    )
    chat = commands.add_parser("chat", help="talk to Huizhen in this terminal")
    chat.add_argument("--user", default="local", help="who you are, to keep separate chats")
    queue_cli.add_commands(commands.add_parser("queue", help="the coordinator queue"))
    audit_cli.add_arguments(
        commands.add_parser(
            "audit", help="the audit log: views, exports, status changes and data rights"
        )
    )
    return parser


def _chat(settings: Settings, user: str) -> int:
    from bot.imaging import pushing

    app = build_app(settings)
    app.sweep_leftovers()  # what a killed run left on disk
    console = ConsoleChannel(app, sys.stdout, user_key=user, language_hint=console_language_hint())
    # The links the console hands out (PUBLIC_BASE_URL) need the web app to answer them; the
    # web app (aiohttp and the platforms' adapters) loads only then.
    web: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if settings.public_base_url is not None:
        from bot.runner import console_web_app

        web = console_web_app(app, console)
    with web, pushing(app.imaging):
        print(f"Huizhen console: data in {settings.data_dir}. Type /quit to leave.\n")
        console.run(sys.stdin)
    return 0


def _run(settings: Settings) -> int:
    if "telegram" in settings.channels or "wechat" in settings.channels:
        from bot.runner import serve

        asyncio.run(serve(build_app(settings)))
        return 0
    return _chat(settings, "local")


def _rotate_key(settings: Settings) -> int:
    """Safe to run while workers serve (they read old and new keys) and to run again after
    an interruption: a file is replaced only once its new copy is complete."""
    app = build_app(settings)
    store = app.pipeline.files
    done = 0
    try:
        for sha256 in store.stored():
            if store.needs_new_key(sha256):
                store.reencrypt(sha256)
                done += 1
    except CorruptFile as error:
        print(f"Stopped: a stored file could not be read ({error}).", file=sys.stderr)
        return 1
    finally:
        app.close()
    print(f"{done} files written under the current key. The old keys can now be removed.")
    return 0


def _migrate(settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    print("The database schema is up to date.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"Huizhen cannot start: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "rotate-key":
        return _rotate_key(settings)
    try:
        if args.command == "chat":
            return _chat(settings, args.user)
        if args.command == "run":
            return _run(settings)
        # What a coordinator reads in a terminal holds patients' words: shown, never obeyed.
        with visible_output():
            if args.command == "audit":
                return audit_cli.run(settings, args)
            return queue_cli.run(settings, args)
    except SchemaOutdated as error:
        print(f"Huizhen cannot start: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
