"""Starting the configured platform channels (Telegram, WeChat) and keeping them running until
stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from bot.app import App
from bot.channels.telegram_base import RateLimiter, TelegramClient
from bot.channels.telegram_runtime import TelegramChannel
from bot.channels.wechat_runtime import WEBHOOK_PATH as WECHAT_WEBHOOK_PATH
from bot.channels.wechat_runtime import WeChatChannel
from bot.config import Settings
from bot.download_page import DownloadPage
from bot.upload_page import UploadPage
from bot.web import make_web_app
from conversations.channels import TELEGRAM, WECHAT
from storage.database import serving
from storage.uploads import UploadGrant, UploadState

log = logging.getLogger(__name__)


def telegram_client(settings: Settings) -> TelegramClient:
    """The adapter named by TELEGRAM_LIBRARY; its library is imported only when chosen."""
    assert settings.telegram_bot_token is not None
    if settings.telegram_library == "aiogram":
        from bot.channels.telegram_aiogram import AiogramClient

        return AiogramClient(
            settings.telegram_bot_token,
            settings.telegram_api_base_url,
            local_mode=settings.telegram_local_mode,
        )
    from bot.channels.telegram import PtbClient

    return PtbClient(
        settings.telegram_bot_token,
        settings.telegram_api_base_url,
        local_mode=settings.telegram_local_mode,
    )


async def serve(app: App, stop: asyncio.Event | None = None) -> None:
    """Run the configured channels (Telegram by polling or webhook, WeChat by its webhook) and
    the one web app they share, until `stop` is set or a termination signal arrives."""

    def free_left_claims() -> None:
        # Messages and files a killed (or stopped) run had taken: nobody else holds them.
        app.outbox.free_claims()
        app.pipeline.jobs.free_claims()

    with serving(app.engine, free_left_claims):
        # Before anything else runs: what a killed run left on disk goes.
        await asyncio.to_thread(app.sweep_leftovers)
        await _serve(app, stop)


@dataclass
class RunningChannels:
    """The platform channels `huizhen run` started, each subscribed to the pipeline's hooks."""

    telegram: TelegramChannel | None
    wechat: WeChatChannel | None

    async def stop(self) -> None:
        if self.wechat is not None:
            await self.wechat.stop()
        if self.telegram is not None:
            await self.telegram.stop()


async def start_channels(app: App, telegram_limiter: RateLimiter | None = None) -> RunningChannels:
    """Start the configured channels (Telegram by polling unless a webhook is set)."""
    channels = app.settings.channels
    telegram = (
        TelegramChannel(app, telegram_client(app.settings), telegram_limiter)
        if TELEGRAM.name in channels
        else None
    )
    # Coordinators' cards go to the Telegram group; Telegram runs the scheduled work when
    # both channels run in this process.
    wechat = (
        WeChatChannel(app, coordinators=telegram, run_schedule=telegram is None)
        if WECHAT.name in channels
        else None
    )
    if telegram is not None:
        await telegram.start(polling=app.settings.telegram_webhook_url is None)
    if wechat is not None:
        await wechat.start()
    return RunningChannels(telegram, wechat)


async def _serve(app: App, stop: asyncio.Event | None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    running = await start_channels(app)
    telegram, wechat = running.telegram, running.wechat
    webhook = app.settings.telegram_webhook_url is not None

    async def announce(grant: UploadGrant, uploads: list[UploadState]) -> None:
        await asyncio.to_thread(app.announce_uploads, grant, uploads)
        app.pipeline.jobs_queued()  # whichever channel the patient is on checks them

    page = UploadPage(app.upload_tokens, app.uploads, announce)
    # No access log: upload-page paths carry the secret token.
    web_app = make_web_app(telegram, page, wechat=wechat, downloads=DownloadPage(app.export))
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, app.settings.web_host, app.settings.web_port)
    await site.start()
    if telegram is not None:
        log.warning(
            "Telegram channel running (%s, %s)",
            telegram.client.library,
            "webhook" if webhook else "long polling",
        )
    if wechat is not None:
        log.warning("WeChat channel running (webhook at %s)", WECHAT_WEBHOOK_PATH)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await running.stop()
