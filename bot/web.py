"""The one web app: the Telegram and WeChat webhooks, the upload page, patients' download
links for their copy, and health and metrics. A Telegram update is answered 200 only after it
is stored, so Telegram resends it if we fail before that; WeChat's webhook (/wechat) has its
own rules, in bot/channels/wechat_runtime.py."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.app import App
from bot.channels.telegram_base import UnreadableUpdate, read_update
from bot.channels.telegram_runtime import TelegramChannel
from bot.channels.wechat_runtime import WeChatChannel, add_wechat_routes
from bot.download_page import DownloadPage, add_download_routes
from bot.observability import add_observability_routes
from bot.upload_page import UploadPage, add_upload_routes

log = logging.getLogger(__name__)

TELEGRAM_WEBHOOK_PATH = "/telegram/webhook"
MAX_UPDATE_BYTES = 1024 * 1024
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

TELEGRAM_KEY: web.AppKey[TelegramChannel] = web.AppKey("telegram", TelegramChannel)


def make_web_app(
    telegram: TelegramChannel | None,
    uploads: UploadPage | None = None,
    core: App | None = None,
    wechat: WeChatChannel | None = None,
    downloads: DownloadPage | None = None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_UPDATE_BYTES)
    core = core or (telegram.app if telegram is not None else None)
    core = core or (wechat.app if wechat is not None else None)
    if core is not None:
        add_observability_routes(app, core)
    else:
        app.router.add_get("/healthz", _health)
    if telegram is not None:
        app[TELEGRAM_KEY] = telegram
        app.router.add_post(TELEGRAM_WEBHOOK_PATH, _telegram_update)
    if uploads is not None:
        add_upload_routes(app, uploads)
    if wechat is not None:
        add_wechat_routes(app, wechat)
    if downloads is not None:
        add_download_routes(app, downloads)
    return app


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _telegram_update(request: web.Request) -> web.Response:
    channel = request.app[TELEGRAM_KEY]
    expected = channel.settings.telegram_webhook_secret or ""
    given = request.headers.get(SECRET_HEADER, "")
    # Compared in constant time; a webhook without a configured secret accepts nothing.
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("refused a Telegram webhook call with a wrong secret")
        return web.Response(status=403, text="forbidden")
    try:
        incoming = read_update(channel.client, await request.read())
    except UnreadableUpdate as error:
        log.warning("unreadable Telegram update (%s)", error)  # the cause's type, no content
        return web.Response(status=400, text="bad update")
    await channel.receive([incoming])
    return web.Response(status=200, text="ok")
