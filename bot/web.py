"""The one web app: the Telegram and WeChat webhooks, the upload page, patients' download
links for their copy, and health and metrics. A Telegram update is answered 200 only after it
is stored, so Telegram resends it if we fail before that; WeChat's webhook (/wechat) has its
own rules, in bot/channels/wechat_runtime.py.

It faces the internet, so every read is bounded in time: a request's headers and its body
must arrive within the bounds of bot/read_limits.py (a client that sends them a byte a second
is cut off), and no response names the server's software."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web, web_response

from bot.app import App
from bot.channels.telegram_base import UnreadableUpdate, read_update
from bot.channels.telegram_runtime import TelegramChannel
from bot.channels.wechat_runtime import WeChatChannel, add_wechat_routes
from bot.download_page import DownloadPage, add_download_routes
from bot.observability import add_observability_routes
from bot.read_limits import LIMITS_KEY, ReadLimits, limits_of
from bot.upload_page import STREAMED_ROUTE, UploadPage, add_upload_routes

log = logging.getLogger(__name__)

TELEGRAM_WEBHOOK_PATH = "/telegram/webhook"
MAX_UPDATE_BYTES = 1024 * 1024
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Paths for the operator's own tools (health checks, scrapers), never for a public proxy;
# every other route is public (deploy/Caddyfile routes exactly those: tests/test_deploy.py).
PRIVATE_PATHS = frozenset({"/healthz", "/metrics"})

TELEGRAM_KEY: web.AppKey[TelegramChannel] = web.AppKey("telegram", TelegramChannel)

# aiohttp names itself and its version in a Server header on every response it makes, its own
# answers to malformed requests too (which no middleware or signal sees); this is the value
# it uses, read as each response is prepared.
web_response.SERVER_SOFTWARE = "huizhen"  # type: ignore[attr-defined]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _bounded_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the body within its time bound (ReadLimits) before the handler sees it (aiohttp
    keeps it, so the handler's own read returns it at once); a client too slow gets 408."""
    if request.can_read_body and request.match_info.route.name != STREAMED_ROUTE:
        try:
            async with asyncio.timeout(limits_of(request.app).body_seconds):
                await request.read()
        except TimeoutError:
            log.info("a request body did not arrive in time")
            response = web.Response(status=408, text="request timeout")
            response.force_close()
            return response
    return await handler(request)


def make_web_app(
    telegram: TelegramChannel | None,
    uploads: UploadPage | None = None,
    core: App | None = None,
    wechat: WeChatChannel | None = None,
    downloads: DownloadPage | None = None,
    limits: ReadLimits | None = None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_UPDATE_BYTES, middlewares=[_bounded_body])
    app[LIMITS_KEY] = limits or ReadLimits()
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


async def start_web_app(web_app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `web_app` on host:port until the returned runner is cleaned up."""
    # No access log: upload-page paths carry the secret token. aiohttp closes a connection
    # whose next request is not complete within keepalive_timeout, from its first byte on:
    # that is the bound on reading headers, and on idle connections.
    runner = web.AppRunner(
        web_app, access_log=None, keepalive_timeout=limits_of(web_app).header_seconds
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
