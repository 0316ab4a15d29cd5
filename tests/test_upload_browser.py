"""The upload page in Debian's headless Chromium, against a real server on 127.0.0.1.

One browser for the module. Skipped (with the reason) where Chromium or its driver is missing;
in CI (CI set) that is a failure instead: CI installs them (`make browser`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom.data
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
    FINISHED,
    LINK_INVALID,
    LINK_INVALID_TITLE,
    PAGE_TITLE,
    UploadPage,
    add_upload_routes,
)
from conversations.i18n import translator
from storage.uploads import UploadGrant, UploadState, UploadStore, UploadTokens

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path("/tmp/upload_page.png")
MB = 1024 * 1024
WAIT_SECONDS = 30


def _require_browser() -> None:
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


def _in_loop(loop: asyncio.AbstractEventLoop, work: Awaitable[Any]) -> Any:
    future: Future[Any] = asyncio.run_coroutine_threadsafe(work, loop)  # type: ignore[arg-type]
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_browser()
    with serving(tmp_path_factory.mktemp("data")) as running:
        yield running


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


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    _require_browser()
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


def _state(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") or ""


def _wait(browser: webdriver.Chrome, done: Callable[[webdriver.Chrome], bool], what: str) -> None:
    try:
        WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.1).until(done)
    except TimeoutException:
        page = browser.find_element(By.TAG_NAME, "main").text
        pytest.fail(f"the page never showed {what}; it shows:\n{page}")


def _wait_finished(browser: webdriver.Chrome) -> None:
    _wait(browser, lambda b: _state(b) == "finished", "that everything arrived")


def _choose(browser: webdriver.Chrome, picker: str, paths: list[Path]) -> None:
    browser.find_element(By.ID, picker).send_keys("\n".join(str(path) for path in paths))


def _files(folder: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    contents = {}
    for name, size in sizes.items():
        contents[name] = os.urandom(size)
        (folder / name).write_bytes(contents[name])
    return contents


def test_three_files_arrive_whole_and_the_chat_is_told_once(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sent = _files(tmp_path, {"letter.pdf": 3_000, "blood tests.jpg": 300_000, "CT.zip": 20 * MB})
    browser.get(server.link("case-files"))
    _choose(browser, "pick-files", [tmp_path / name for name in sent])
    _wait_finished(browser)
    assert browser.find_element(By.ID, "status").text == translator("en")(FINISHED)
    rows = browser.find_elements(By.CSS_SELECTOR, "#files li")
    assert [row.get_attribute("data-state") for row in rows] == ["done"] * 3
    assert server.received("case-files") == sent
    [announced] = server.announcements("case-files")
    assert sorted(upload.name for upload in announced) == sorted(sent)


def test_a_folder_arrives_with_its_relative_paths(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    series = tmp_path / "CD" / "DICOM" / "ST1"
    series.mkdir(parents=True)
    dicom = Path(pydicom.data.get_testdata_file("CT_small.dcm") or "")
    shutil.copyfile(dicom, series / "IM0001")
    shutil.copyfile(dicom, series / "IM0002")
    (tmp_path / "CD" / "README.TXT").write_text("Hospital CD\n")
    browser.get(server.link("case-folder"))
    _choose(browser, "pick-folder", [tmp_path / "CD"])
    _wait_finished(browser)
    assert server.received("case-folder") == {
        "CD/DICOM/ST1/IM0001": dicom.read_bytes(),
        "CD/DICOM/ST1/IM0002": dicom.read_bytes(),
        "CD/README.TXT": b"Hospital CD\n",
    }
    assert len(server.announcements("case-folder")) == 1


@pytest.mark.parametrize(
    ("locale", "lang", "direction"), [("zh_Hans", "zh-Hans", "ltr"), ("ar", "ar", "rtl")]
)
def test_the_page_speaks_the_links_language(
    server: Server,
    browser: webdriver.Chrome,
    tmp_path: Path,
    locale: str,
    lang: str,
    direction: str,
) -> None:
    t = translator(locale)
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 report")
    browser.get(server.link(f"case-{locale}", locale=locale))
    html = browser.find_element(By.TAG_NAME, "html")
    assert (html.get_attribute("lang"), html.get_attribute("dir")) == (lang, direction)
    assert browser.find_element(By.ID, "title").text == t(PAGE_TITLE)
    _choose(browser, "pick-files", [tmp_path / "report.pdf"])
    _wait_finished(browser)
    # Written by the script, from the translated texts the page carries.
    assert browser.find_element(By.ID, "status").text == t(FINISHED)


def test_a_failed_chunk_is_retried_and_the_file_arrives_whole(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sent = _files(tmp_path, {"MRI brain.zip": 20 * MB})
    link = server.link("case-flaky")
    server.flaky.add(link.rsplit("/", 1)[1])
    browser.get(link)
    _choose(browser, "pick-files", [tmp_path / "MRI brain.zip"])
    _wait(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#files li").get_attribute("data-state") == "retrying"
        ),
        "that it is trying again",
    )
    browser.save_screenshot(str(SCREENSHOT))  # for the maintainer: the page mid-upload
    _wait_finished(browser)
    assert server.refused_chunks == 1
    assert server.received("case-flaky") == sent
    assert len(server.announcements("case-flaky")) == 1


def test_after_a_reload_the_same_file_continues_where_it_stopped(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    data = os.urandom(12 * MB)
    chosen = tmp_path / "PET-CT.zip"
    chosen.write_bytes(data)
    os.utime(chosen, (1_700_000_000, 1_700_000_000))  # the browser's lastModified, in ms
    link = server.link("case-reload")
    grant = server.tokens.resolve(link.rsplit("/", 1)[1], datetime.now(UTC))
    assert grant is not None
    # An earlier visit sent the first 5 MB, then the page was closed.
    fingerprint = f"|PET-CT.zip|{len(data)}|1700000000000"
    now = datetime.now(UTC)
    begun = server.store.begin(
        grant, name="PET-CT.zip", relative_path="", size=len(data), fingerprint=fingerprint, now=now
    )

    async def first_part() -> Any:
        yield data[: 5 * MB]

    asyncio.run(server.store.append(begun.id, grant, 0, first_part(), now))
    browser.get(link)
    _wait(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#files li").get_attribute("data-state") == "unfinished"
        ),
        "the file begun on the earlier visit",
    )
    _choose(browser, "pick-files", [chosen])
    _wait_finished(browser)
    [upload] = server.store.uploads_of("case-reload")
    assert upload.id == begun.id
    assert server.received("case-reload") == {"PET-CT.zip": data}


def test_an_expired_link_shows_the_friendly_page(server: Server, browser: webdriver.Chrome) -> None:
    browser.get(server.link("case-old", issued=datetime.now(UTC) - timedelta(hours=25)))
    assert browser.find_element(By.TAG_NAME, "h1").text == LINK_INVALID_TITLE
    assert browser.find_element(By.ID, "invalid").text == LINK_INVALID
