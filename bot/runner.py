"""Starting the configured platform channels and keeping them running until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from bot.app import App
from bot.channels.telegram_base import TelegramClient
from bot.channels.telegram_runtime import TelegramChannel
from bot.config import Settings
from bot.web import make_web_app

log = logging.getLogger(__name__)


def telegram_client(settings: Settings) -> TelegramClient:
    """The adapter named by TELEGRAM_LIBRARY; its library is imported only when chosen."""
    assert settings.telegram_bot_token is not None
    if settings.telegram_library == "aiogram":
        from bot.channels.telegram_aiogram import AiogramClient

        return AiogramClient(settings.telegram_bot_token, settings.telegram_api_base_url)
    from bot.channels.telegram import PtbClient

    return PtbClient(settings.telegram_bot_token, settings.telegram_api_base_url)


async def serve(app: App, stop: asyncio.Event | None = None) -> None:
    """Run Telegram (polling, or the webhook behind the web app) until `stop` is set or a
    termination signal arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    channel = TelegramChannel(app, telegram_client(app.settings))
    webhook = app.settings.telegram_webhook_url is not None
    await channel.start(polling=not webhook)
    runner = web.AppRunner(make_web_app(channel))
    await runner.setup()
    site = web.TCPSite(runner, app.settings.web_host, app.settings.web_port)
    await site.start()
    log.warning(
        "Telegram channel running (%s, %s)",
        channel.client.library,
        "webhook" if webhook else "long polling",
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await channel.stop()
