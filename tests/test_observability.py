"""/healthz and /metrics on the web app, over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import create_engine

from bot.app import App
from bot.web import make_web_app
from tests.support.console import Chat

METRICS_TOKEN = "scrape-token-of-sixteen-or-more"


async def _get(core: App, path: str) -> tuple[int, Any]:
    # /metrics exists only with a token, and answers only its bearer (tests/test_web_app.py).
    core = dataclasses.replace(
        core, settings=dataclasses.replace(core.settings, metrics_token=METRICS_TOKEN)
    )
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with (
        TestClient(TestServer(make_web_app(None, core=core))) as client,
        client.get(path, headers=bearer) as response,
    ):
        body = await (response.json() if path == "/healthz" else response.text())
        return response.status, body


def test_health_says_ok_when_database_and_disk_answer(app: App) -> None:
    status, body = asyncio.run(_get(app, "/healthz"))
    assert (status, body) == (200, {"status": "ok", "database": "ok", "disk": "ok"})


def test_health_says_unhealthy_when_the_database_is_gone(app: App) -> None:
    # A real server address where nothing listens.
    gone = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", pool_pre_ping=True)
    status, body = asyncio.run(_get(dataclasses.replace(app, engine=gone), "/healthz"))
    assert status == 503 and body["status"] == "unhealthy" and body["database"] != "ok"
    assert body["disk"] == "ok"


def test_metrics_count_updates_and_the_outbox(chat: Chat, app: App) -> None:
    chat.say("/start")
    status, text = asyncio.run(_get(app, "/metrics"))
    assert status == 200
    assert 'huizhen_updates_total{channel="console",outcome="handled"}' in text
    assert "huizhen_update_seconds_bucket" in text
    assert "huizhen_outbox_pending" in text
