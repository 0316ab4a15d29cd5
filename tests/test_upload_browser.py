"""The upload page in Debian's headless Chromium, against a real server on 127.0.0.1.

One browser for the module. Skipped (with the reason) where Chromium or its driver is missing;
in CI (CI set) that is a failure instead: CI installs them (`make browser`)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from bot.upload_page import (
    FINISHED,
    LINK_INVALID,
    LINK_INVALID_TITLE,
    PAGE_TITLE,
)
from conversations.i18n import translator
from tests.support.browser import (
    Server,
    choose_files,
    chromium,
    require_browser,
    serving,
    wait_finished,
    wait_until,
)

SCREENSHOT = Path("/tmp/upload_page.png")
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_browser()
    with serving(tmp_path_factory.mktemp("data")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    require_browser()
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


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
    choose_files(browser, "pick-files", [tmp_path / name for name in sent])
    wait_finished(browser)
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
    choose_files(browser, "pick-folder", [tmp_path / "CD"])
    wait_finished(browser)
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
    choose_files(browser, "pick-files", [tmp_path / "report.pdf"])
    wait_finished(browser)
    # Written by the script, from the translated texts the page carries.
    assert browser.find_element(By.ID, "status").text == t(FINISHED)


def test_a_failed_chunk_is_retried_and_the_file_arrives_whole(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sent = _files(tmp_path, {"MRI brain.zip": 20 * MB})
    link = server.link("case-flaky")
    server.flaky.add(link.rsplit("/", 1)[1])
    browser.get(link)
    choose_files(browser, "pick-files", [tmp_path / "MRI brain.zip"])
    wait_until(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#files li").get_attribute("data-state") == "retrying"
        ),
        "that it is trying again",
    )
    browser.save_screenshot(str(SCREENSHOT))  # for the maintainer: the page mid-upload
    wait_finished(browser)
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
    wait_until(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#files li").get_attribute("data-state") == "unfinished"
        ),
        "the file begun on the earlier visit",
    )
    choose_files(browser, "pick-files", [chosen])
    wait_finished(browser)
    [upload] = server.store.uploads_of("case-reload")
    assert upload.id == begun.id
    assert server.received("case-reload") == {"PET-CT.zip": data}


def test_an_expired_link_shows_the_friendly_page(server: Server, browser: webdriver.Chrome) -> None:
    browser.get(server.link("case-old", issued=datetime.now(UTC) - timedelta(hours=25)))
    assert browser.find_element(By.TAG_NAME, "h1").text == LINK_INVALID_TITLE
    assert browser.find_element(By.ID, "invalid").text == LINK_INVALID
