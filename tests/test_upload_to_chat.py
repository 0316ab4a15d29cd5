"""From the link in the chat, through the upload page, back to the chat: the files a patient
sends on the page are stored, checked and reported in their conversation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import App, build_app
from bot.channels.console import CHANNEL
from bot.config import Settings, load_settings
from bot.upload_page import UploadPage
from bot.web import make_web_app
from storage.uploads import UploadGrant, UploadState
from tests.dicom_factory import write_dicomdir, write_series
from tests.support.console import (
    documents,
    make_chat,
    to_imaging,
    upload_link_path,
)


def _app(settings: Settings) -> App:
    env = {"DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url}
    return build_app(load_settings({**env, "PUBLIC_BASE_URL": "https://huizhen.example"}))


def test_files_sent_on_the_upload_page_reach_the_case_and_the_chat(
    settings: Settings, tmp_path: Path
) -> None:
    app = _app(settings)
    try:
        chat = make_chat(app)
        to_imaging(chat)
        link, reply = upload_link_path(chat)
        assert "valid for 24 hours" in reply
        series = write_series(tmp_path / "CD" / "DICOM", count=5)
        asyncio.run(_upload(app, chat.channel, link, series, tmp_path / "CD"))
        screen = chat.transcript[-1] + chat.screen.getvalue()[-3000:]
        assert "Received 5 files." not in screen  # five files are listed by name
        assert "Received: IM00001" in screen
        assert "CT scan of the chest" in screen and "1 series, 5 images" in screen
        stored = [d for d in documents(app) if d.kind == "dicom"]
        assert sorted(d.path for d in stored) == [f"DICOM/IM{n:05d}" for n in range(1, 6)]
        # The page's spool is emptied once the files are in the encrypted store.
        assert list((app.settings.data_dir / "uploads").glob("*.part")) == []
    finally:
        app.close()


def test_files_whose_page_closed_before_done_reach_the_chat_after_a_quiet_while(
    settings: Settings, tmp_path: Path
) -> None:
    """The patient closed the page (or lost the connection) after the last file, without
    pressing Done: the sweep announces the files once nothing more arrived for a while."""
    app = _app(settings)
    try:
        chat = make_chat(app)
        to_imaging(chat)
        link, _ = upload_link_path(chat)
        series = write_series(tmp_path / "CD" / "DICOM", count=3)
        asyncio.run(_upload(app, chat.channel, link, series, tmp_path / "CD", done=False))
        assert not app.sweep_uploads(CHANNEL)  # still within the quiet period
        assert not any(d.kind == "dicom" for d in documents(app))
        later = datetime.now(UTC) + timedelta(minutes=11)
        app.pipeline.clock = lambda: later
        assert app.sweep_uploads(CHANNEL)
        assert not app.sweep_uploads(CHANNEL)  # announced once
        console = chat.channel
        asyncio.run(app.after_update({CHANNEL: console}, {CHANNEL: console}, console))
        screen = chat.screen.getvalue()[-3000:]
        assert "1 series, 3 images" in screen
        assert len([d for d in documents(app) if d.kind == "dicom"]) == 3
    finally:
        app.close()


async def _upload(
    app: App, console: Any, link: str, files: list[Path], root: Path, done: bool = True
) -> None:
    async def announce(grant: UploadGrant, uploads: list[UploadState]) -> None:
        await asyncio.to_thread(app.announce_uploads, grant, uploads)
        await app.after_update({CHANNEL: console}, {CHANNEL: console}, console)

    page = UploadPage(app.upload_tokens, app.uploads, announce)
    async with TestClient(TestServer(make_web_app(None, page))) as client:
        for file in files:
            data = file.read_bytes()
            path = file.relative_to(root).as_posix()
            body = {
                "name": file.name,
                "relative_path": path,
                "size": len(data),
                "fingerprint": path,
            }
            async with client.post(f"{link}/files", json=body) as response:
                upload_id = (await response.json())["id"]
            async with client.put(f"{link}/files/{upload_id}?offset=0", data=data) as response:
                assert (await response.json())["complete"]
        if done:
            async with client.post(f"{link}/done") as response:
                assert (await response.json())["announced"] == len(files)


def test_a_whole_disc_in_one_page_session_gives_one_report(
    settings: Settings, tmp_path: Path
) -> None:
    """A hospital disc of 120 images and its index, sent as one folder: one report when all
    of it is checked, not one per handful of files, and nothing said to be missing."""
    app = _app(settings)
    try:
        chat = make_chat(app)
        to_imaging(chat)
        link, _ = upload_link_path(chat)
        disc = tmp_path / "CD"
        series = write_series(disc / "DICOM", count=120)
        index = write_dicomdir(disc, series)
        before = len(chat.screen.getvalue())
        asyncio.run(_upload(app, chat.channel, link, [index, *series], disc))
        screen = chat.screen.getvalue()[before:]
        assert screen.count("I've checked what you sent") == 1, screen
        assert "1 series, 120 images" in screen
        assert "seems to be missing" not in screen
        assert "did not arrive" not in screen
        assert screen.count("Is this the scan you meant?") <= 1
        assert len([d for d in documents(app) if d.kind == "dicom"]) == 120
    finally:
        app.close()


def test_six_hundred_small_files_in_one_case_are_all_kept(
    settings: Settings, tmp_path: Path
) -> None:
    """More files than the old limit of 500: a case is limited by what it holds in bytes."""
    app = _app(settings)
    try:
        chat = make_chat(app)
        to_imaging(chat)
        link, _ = upload_link_path(chat)
        folder = tmp_path / "scans"
        folder.mkdir()
        pages = []
        for number in range(600):
            page = folder / f"page-{number:03d}.txt"
            page.write_text(f"Blood count, page {number}\n")
            pages.append(page)
        before = len(chat.screen.getvalue())
        asyncio.run(_upload(app, chat.channel, link, pages, tmp_path))
        screen = chat.screen.getvalue()[before:]
        assert "the most I can take here" not in screen
        assert screen.count("I've checked what you sent") == 1, screen
        assert len(documents(app)) == 600
    finally:
        app.close()
