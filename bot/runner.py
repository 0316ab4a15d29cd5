"""Starting the configured platform channels (Telegram, WeChat) and keeping them running until
stopped, and the web app wherever something needs it: the platforms' webhooks, and the upload
and download links handed out whenever PUBLIC_BASE_URL is set (the console too)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from aiohttp import web

from bot.app import App
from bot.channels.console import CHANNEL as CONSOLE
from bot.channels.console import ConsoleChannel
from bot.channels.telegram_base import RateLimiter, TelegramClient
from bot.channels.telegram_runtime import TelegramChannel
from bot.channels.wechat_runtime import WEBHOOK_PATH as WECHAT_WEBHOOK_PATH
from bot.channels.wechat_runtime import WeChatChannel
from bot.config import Settings
from bot.download_page import DownloadPage
from bot.imaging import PushLoop
from bot.read_limits import ReadLimits
from bot.upload_page import UploadPage
from bot.viewer_web import add_viewer_routes
from bot.web import make_web_app, start_web_app
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

    async def files_arrived(grant: UploadGrant) -> None:
        app.pipeline.jobs_queued()  # whichever channel the patient is on checks them

    web_app = public_web_app(app, files_arrived, telegram=telegram, wechat=wechat)
    runner = await start_web_app(web_app, app.settings.web_host, app.settings.web_port)
    push = PushLoop(app.imaging) if app.imaging is not None else None
    if push is not None:
        push.start()
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
        if push is not None:
            await asyncio.to_thread(push.stop)
        await runner.cleanup()
        await running.stop()


FilesArrived = Callable[[UploadGrant], Awaitable[None]]


def public_web_app(
    app: App,
    files_arrived: FilesArrived,
    telegram: TelegramChannel | None = None,
    wechat: WeChatChannel | None = None,
    limits: ReadLimits | None = None,
) -> web.Application:
    """The web app for this process: the channels' webhooks, the upload page (files that
    arrive enter the conversation, then `files_arrived` has them checked) and downloads."""

    async def announce(grant: UploadGrant, uploads: list[UploadState]) -> None:
        await asyncio.to_thread(app.announce_uploads, grant, uploads)
        await files_arrived(grant)

    page = UploadPage(app.upload_tokens, app.uploads, announce)
    downloads = DownloadPage(app.export)
    web_app = make_web_app(telegram, page, app, wechat, downloads, limits)
    if app.imaging is not None:
        add_viewer_routes(web_app, app.imaging)
    return web_app


@contextlib.contextmanager
def console_web_app(app: App, console: ConsoleChannel) -> Iterator[None]:
    """The web app beside the console, when it hands out links (PUBLIC_BASE_URL), in a thread
    of its own: the console reads the terminal. Files sent on the upload page are checked and
    answered at once, in the terminal."""
    if app.settings.public_base_url is None:
        yield
        return
    loop = asyncio.new_event_loop()
    started: Future[web.AppRunner] = Future()

    async def files_arrived(grant: UploadGrant) -> None:
        if grant.channel == CONSOLE:
            await app.after_update({CONSOLE: console}, {CONSOLE: console}, console)

    async def start() -> web.AppRunner:
        web_app = public_web_app(app, files_arrived)
        return await start_web_app(web_app, app.settings.web_host, app.settings.web_port)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(start()))
        except Exception as error:
            started.set_exception(error)
            return
        loop.run_forever()

    thread = threading.Thread(target=run, name="web", daemon=True)
    thread.start()
    try:
        runner = started.result(timeout=60)
    except OSError as error:
        # Most often another `huizhen` on this machine serves it already (same database).
        log.warning("the web app could not start (%s)", type(error).__name__)
        thread.join()
        loop.close()
        yield
        return
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
