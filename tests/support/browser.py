"""The upload page served locally and driven by headless Chromium."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bot.app import build_app
from bot.config import load_settings
from bot.upload_page import (
    UploadPage,
    add_upload_routes,
)
from storage.uploads import UploadGrant, UploadState, UploadStore, UploadTokens

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 30


def require_browser() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        reason = f"the browser tests need {' and '.join(missing)} (`make browser` installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class Server:
    """The upload routes served from a thread with its own event loop, so the test drives the
    browser synchronously. `flaky` holds tokens whose first chunk after the start gets a 503
    from a wrapper in front of the real routes (a server answering, as a failing proxy does)."""

    tokens: UploadTokens
    store: UploadStore
    port: int = 0
    announced: list[tuple[UploadGrant, list[UploadState]]] = field(default_factory=list)
    flaky: set[str] = field(default_factory=set)
    refused_chunks: int = 0

    def link(self, case_id: str, locale: str = "en", issued: datetime | None = None) -> str:
        token = self.tokens.issue(
            case_id=case_id,
            channel="console",
            user_key="patient",
            chat_key="patient-chat",
            locale=locale,
            now=issued or datetime.now(UTC),
            ttl=timedelta(hours=24),
        )
        return f"http://127.0.0.1:{self.port}/u/{token}"

    def announcements(self, case_id: str) -> list[list[UploadState]]:
        return [uploads for grant, uploads in self.announced if grant.case_id == case_id]

    def received(self, case_id: str) -> dict[str, bytes]:
        """What arrived, by relative path (or name), read back from the server's spool."""
        found = {}
        for upload in self.store.uploads_of(case_id):
            assert upload.completed
            with self.store.open(f"upload:{upload.id}") as stored:
                found[upload.relative_path or upload.name] = stored.read()
        return found

    def web_app(self) -> web.Application:
        @web.middleware
        async def fail_once(request: web.Request, handler: Any) -> web.StreamResponse:
            token = request.match_info.get("token", "")
            later_chunk = request.query.get("offset", "0") != "0"
            if request.method == "PUT" and later_chunk and token in self.flaky:
                self.flaky.discard(token)
                self.refused_chunks += 1
                return web.json_response({"error": "unavailable"}, status=503)
            response: web.StreamResponse = await handler(request)
            return response

        async def announce(grant: UploadGrant, uploads: list[UploadState]) -> None:
            self.announced.append((grant, uploads))

        app = web.Application(middlewares=[fail_once])
        add_upload_routes(app, UploadPage(self.tokens, self.store, announce))
        return app


def _in_loop(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, Any]) -> Any:
    future: Future[Any] = asyncio.run_coroutine_threadsafe(work, loop)
    return future.result(timeout=10)


@contextmanager
def serving(data_dir: Path) -> Iterator[Server]:
    """The upload routes of an app on `data_dir`, served from a thread with its own loop."""
    settings = load_settings({"DATA_DIR": str(data_dir)})
    app = build_app(settings)
    running = Server(
        UploadTokens(app.engine),
        UploadStore(
            app.engine,
            settings.data_dir / "uploads",
            settings.case_quota_bytes,
            app.pipeline.files.sealer,
        ),
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(running.web_app())

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port: int = runner.addresses[0][1]
        return port

    running.port = _in_loop(loop, start())
    try:
        yield running
    finally:
        _in_loop(loop, runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        app.close()


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium through its own driver, with a fresh profile."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1000,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    # The driver's path is given, so Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _state(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") or ""


def wait_until(
    browser: webdriver.Chrome, done: Callable[[webdriver.Chrome], bool], what: str
) -> None:
    try:
        WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.1).until(done)
    except TimeoutException:
        page = browser.find_element(By.TAG_NAME, "main").text
        pytest.fail(f"the page never showed {what}; it shows:\n{page}")


def wait_finished(browser: webdriver.Chrome) -> None:
    wait_until(browser, lambda b: _state(b) == "finished", "that everything arrived")


def choose_files(browser: webdriver.Chrome, picker: str, paths: list[Path]) -> None:
    browser.find_element(By.ID, picker).send_keys("\n".join(str(path) for path in paths))
