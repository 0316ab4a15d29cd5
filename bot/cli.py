"""`huizhen run | chat | queue list` (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot.app import build_app
from bot.channels.console import ConsoleChannel, console_language_hint
from bot.config import ConfigError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="huizhen", description="Huizhen second-opinion intake")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run every configured channel (the console when none)")
    chat = commands.add_parser("chat", help="talk to Huizhen in this terminal")
    chat.add_argument("--user", default="local", help="who you are, to keep separate chats")
    queue = commands.add_parser("queue", help="the coordinator queue")
    queue_commands = queue.add_subparsers(dest="queue_command", required=True)
    listing = queue_commands.add_parser("list", help="cases in the queue, one line each")
    listing.add_argument("--status", help="only cases with this status")
    return parser


def _chat(settings: Settings, user: str) -> int:
    app = build_app(settings)
    print(f"Huizhen console: data in {settings.data_dir}. Type /quit to leave.\n")
    ConsoleChannel(app, sys.stdout, user_key=user, language_hint=console_language_hint()).run(
        sys.stdin
    )
    return 0


def _run(settings: Settings) -> int:
    if "wechat" in settings.channels:
        print(
            "The WeChat channel is configured but not part of this version yet. "
            "Unset the WECHAT_ settings.",
            file=sys.stderr,
        )
        return 2
    if "telegram" in settings.channels:
        from bot.runner import serve

        asyncio.run(serve(build_app(settings)))
        return 0
    return _chat(settings, "local")


def _queue_list(settings: Settings, status: str | None) -> int:
    app = build_app(settings)
    cases = app.queue.list(status)
    if not cases:
        print("The queue is empty." if not status else f"No cases with status {status}.")
    for case in cases:
        submitted = case.submitted_at.strftime("%Y-%m-%d %H:%M")
        print(
            f"{case.reference}  {case.status:<10} {submitted}  {case.locale:<7} "
            f"{case.area:<15} {case.verdict:<13} readiness {case.readiness}%"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # These libraries log each request's URL, and a Bot API URL contains the bot's token.
    for noisy in ("httpx", "httpcore", "aiogram", "telegram"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"Huizhen cannot start: {error}", file=sys.stderr)
        return 2
    if args.command == "chat":
        return _chat(settings, args.user)
    if args.command == "run":
        return _run(settings)
    return _queue_list(settings, args.status)


if __name__ == "__main__":
    sys.exit(main())
