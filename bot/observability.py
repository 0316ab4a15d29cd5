"""Health and metrics for the web app: `/healthz` says whether this worker can reach its
database and write to its data folder (load balancers and orchestrators ask it), `/metrics`
serves Prometheus text (the core's counters, plus the outbox depth read at scrape time).

The web app faces the internet, so /metrics exists only when METRICS_TOKEN is set, and answers
only a scraper sending it as `Authorization: Bearer <token>`."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import shutil
import tempfile

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from bot.app import App
from handlers.updates.metrics import OUTBOX_PENDING, REGISTRY
from storage.models import Outbox

CORE_KEY: web.AppKey[App] = web.AppKey("core", App)
# Below this, uploads and the database would soon fail: report unhealthy before they do.
MIN_FREE_BYTES = 512 * 1024 * 1024


def add_observability_routes(web_app: web.Application, core: App) -> None:
    web_app[CORE_KEY] = core
    web_app.router.add_get("/healthz", _health)
    if core.settings.metrics_token:
        web_app.router.add_get("/metrics", _metrics)


def _count_outbox(core: App) -> None:
    """Read at scrape time: how many messages wait, per channel."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    query = (
        select(table.c.channel, func.count())
        .where(table.c.sent_at.is_(None))
        .group_by(table.c.channel)
    )
    with core.engine.connect() as connection:
        for channel, count in connection.execute(query).all():
            OUTBOX_PENDING.labels(channel).set(count)


def _check(core: App) -> dict[str, str]:
    checks = {}
    try:
        with core.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = type(error).__name__
    folder = core.settings.data_dir
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".health-") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
        free = shutil.disk_usage(folder).free
        checks["disk"] = "ok" if free >= MIN_FREE_BYTES else "low on space"
    except OSError as error:
        checks["disk"] = type(error).__name__
    return checks


async def _health(request: web.Request) -> web.Response:
    checks = await asyncio.to_thread(_check, request.app[CORE_KEY])
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "unhealthy", **checks}
    return web.json_response(body, status=200 if healthy else 503)


async def _metrics(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    expected = f"Bearer {core.settings.metrics_token}".encode()
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, expected):  # constant time
        return web.Response(status=401, text="unauthorized", headers={"WWW-Authenticate": "Bearer"})
    with contextlib.suppress(Exception):  # a scrape still answers when the database is down
        await asyncio.to_thread(_count_outbox, core)
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
