"""What the data folder holds of a patient: upload spools encrypted as they arrive and gone as
soon as nothing will read them, links that stop at /withdraw, copies that never lie decrypted
on disk, leftovers swept, and every file the owner's alone."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from bot.app import App, build_app
from bot.channels.console import CHANNEL
from bot.config import Settings, load_settings
from bot.upload_page import UploadPage
from bot.web import make_web_app
from conversations.state import ConversationKey, RecordFile
from conversations.steps.records import MAX_FILES_PER_CASE
from storage.uploads import UploadGrant, UploadState
from tests.dicom_factory import write_series
from tests.support.console import Chat, documents, make_chat, to_imaging, upload_link_path
from tests.support.data_rights import LETTER, LETTER_NAME, _submitted_case_with_a_letter
from tests.support.uploads import Site, serve

MARKER = b"UNIQUE-SCAN-CONTENT-90210 "


def _app(settings: Settings) -> App:
    env = {"DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url}
    return build_app(load_settings({**env, "PUBLIC_BASE_URL": "https://huizhen.example"}))


@pytest.fixture
def web_app(settings: Settings) -> Iterator[App]:
    application = _app(settings)
    yield application
    application.close()


class Page:
    """The upload page of a real app, over HTTP, as the patient's browser uses it."""

    def __init__(self, client: TestClient[Any, Any], link: str) -> None:
        self.client = client
        self.link = link

    async def begin(self, name: str, size: int) -> tuple[int, dict[str, Any]]:
        body = {"name": name, "relative_path": "", "size": size, "fingerprint": name}
        async with self.client.post(f"{self.link}/files", json=body) as response:
            return response.status, await response.json()

    async def put(self, upload_id: str, offset: int, data: bytes) -> tuple[int, dict[str, Any]]:
        url = f"{self.link}/files/{upload_id}?offset={offset}"
        async with self.client.put(url, data=data) as response:
            return response.status, await response.json()

    async def done(self) -> tuple[int, dict[str, Any]]:
        async with self.client.post(f"{self.link}/done") as response:
            return response.status, await response.json()


def _on_page(app: App, chat: Chat, link: str, scenario: Any) -> None:
    async def announce(grant: UploadGrant, uploads: list[UploadState]) -> None:
        await asyncio.to_thread(app.announce_uploads, grant, uploads)
        console = chat.channel
        await app.after_update({CHANNEL: console}, {CHANNEL: console}, console)

    async def main() -> None:
        page = UploadPage(app.upload_tokens, app.uploads, announce)
        async with TestClient(TestServer(make_web_app(None, page))) as client:
            await scenario(Page(client, link))

    asyncio.run(main())


def _spools(app: App) -> list[Path]:
    return sorted((app.settings.data_dir / "uploads").iterdir())


# --- the spool ----------------------------------------------------------------------------


def test_an_upload_is_encrypted_on_disk_as_it_arrives(app: App) -> None:
    data = (MARKER * 40_000)[: 3 * 1024 * 1024 + 123]

    async def scenario(site: Site) -> None:
        link = site.link()
        status, started = await site.begin(link, "scan.dcm", len(data))
        half = len(data) // 2
        status, result = await site.put(link, started["id"], 0, data[:half])
        assert (status, result["received"]) == (200, half)
        spool = site.store.spool_path(started["id"]).read_bytes()
        assert MARKER not in spool and len(spool) > half
        status, result = await site.put(link, started["id"], half, data[half:])
        assert result == {"received": len(data), "complete": True}
        assert MARKER not in site.store.spool_path(started["id"]).read_bytes()
        with site.store.open(f"upload:{started['id']}") as stored:
            assert stored.read() == data

    serve(app, scenario)


def test_an_altered_spool_does_not_read_as_the_file(app: App) -> None:
    async def scenario(site: Site) -> None:
        upload_id = await site.send(site.link(), "scan.dcm", MARKER * 100)
        path = site.store.spool_path(upload_id)
        spool = bytearray(path.read_bytes())
        spool[-1] ^= 1
        path.write_bytes(bytes(spool))
        with pytest.raises(OSError), site.store.open(f"upload:{upload_id}") as stored:
            stored.read()

    serve(app, scenario)


def test_files_the_chat_turns_away_leave_the_disk_at_once(web_app: App) -> None:
    app = web_app
    chat = make_chat(app)
    to_imaging(chat)
    link, _ = upload_link_path(chat)
    # The case already holds all the files it may.
    key = ConversationKey(CHANNEL, "alice")
    state = app.pipeline.state_of(key)
    assert state is not None
    state.draft.unsorted_files = [
        RecordFile(file_id=f"f{n}", name=f"page {n}.jpg") for n in range(MAX_FILES_PER_CASE)
    ]
    with app.engine.begin() as conn:
        conn.execute(
            text("UPDATE conversation SET state_json = :s"), {"s": state.model_dump_json()}
        )

    async def scenario(page: Page) -> None:
        _, started = await page.begin("one more.pdf", len(MARKER))
        await page.put(started["id"], 0, MARKER)
        assert len(_spools(app)) == 1
        status, body = await page.done()
        assert (status, body["announced"]) == (200, 1)

    _on_page(app, chat, link, scenario)
    assert "the most I can take here" in chat.screen.getvalue()
    assert _spools(app) == []
    assert documents(app) == []


# --- links stop at /withdraw ----------------------------------------------------------------


def test_after_withdraw_the_upload_link_is_refused_and_nothing_is_stored(web_app: App) -> None:
    app = web_app
    chat = make_chat(app)
    to_imaging(chat)
    link, _ = upload_link_path(chat)
    data = MARKER * 1000
    half = len(data) // 2

    async def scenario(page: Page) -> None:
        _, unfinished = await page.begin("CT chest.zip", len(data))
        await page.put(unfinished["id"], 0, data[:half])
        _, finished = await page.begin("letter.pdf", len(MARKER))
        await page.put(finished["id"], 0, MARKER)  # arrived, not yet announced
        assert len(_spools(app)) == 2

        await asyncio.to_thread(chat.say, "/withdraw")
        said = await asyncio.to_thread(chat.press, "Yes, withdraw my consent")
        assert "You have withdrawn your consent" in said

        status, body = await page.put(unfinished["id"], half, data[half:])
        assert (status, body["error"]) == (404, "link_invalid")
        status, body = await page.begin("another.pdf", 10)
        assert (status, body["error"]) == (404, "link_invalid")
        status, body = await page.done()
        assert (status, body["error"]) == (404, "link_invalid")

    _on_page(app, chat, link, scenario)
    assert _spools(app) == []
    later = datetime.now(UTC) + timedelta(hours=1)
    assert app.uploads.sweep(later, timedelta(minutes=10)) == []  # nothing to announce
    assert documents(app) == []
    assert "Received:" not in chat.screen.getvalue()


# --- copies ---------------------------------------------------------------------------------


def test_delete_removes_the_copies_the_console_showed(chat: Chat, app: App, tmp_path: Path) -> None:
    _submitted_case_with_a_letter(chat, tmp_path)
    chat.say("/export")
    assert "Here is your copy" in chat.press("Yes, send me a copy")
    shown = app.settings.data_dir / "console-files"
    assert [path.suffix for path in shown.iterdir()] == [".zip"]
    chat.say("/delete")
    assert "now erased" in chat.press("Yes, delete everything")
    assert list(shown.iterdir()) == []


_EXPORT_CHILD = """
import sys
from bot.app import build_app
from bot.config import load_settings
app = build_app(load_settings({"DATA_DIR": sys.argv[1]}))
print("ready", flush=True)
app.pipeline.data_rights.run_pending()
print("finished", flush=True)
"""


def test_a_copy_killed_midway_leaves_nothing_decrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while the zip is being made: what is left in the data folder is encrypted."""
    data_dir = tmp_path / "data"
    app = build_app(load_settings({"DATA_DIR": str(data_dir)}))
    try:
        chat = make_chat(app)
        big = tmp_path / LETTER_NAME
        # Large enough that making the zip takes a while; random, so it barely compresses.
        big.write_bytes(LETTER + os.urandom(60 * 1024 * 1024))
        monkeypatch.setattr("tests.test_data_rights.LETTER", big.read_bytes())
        _submitted_case_with_a_letter(chat, tmp_path)
        app.pipeline.data_rights, runner = None, app.pipeline.data_rights  # the job waits
        chat.say("/export")
        chat.press("Yes, send me a copy")
        app.pipeline.data_rights = runner
    finally:
        app.close()
    child = subprocess.Popen(
        [sys.executable, "-c", _EXPORT_CHILD, str(data_dir)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    before = {path for path in data_dir.rglob("*") if path.is_file()}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = [path for path in data_dir.rglob("*") if path.is_file() and path not in before]
        if any(path.stat().st_size > 8 * 1024 * 1024 for path in new):
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    for path in data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"conversation.json" not in content, path
            assert b"UNIQUE-LETTER-CONTENT" not in content, path


def test_leftovers_are_swept_and_writes_under_way_are_not(web_app: App) -> None:
    app = web_app
    data_dir = app.settings.data_dir
    long_ago = time.time() - 2 * 3600
    orphan_spool = data_dir / "uploads" / f"{'a' * 32}.part"
    orphan_spool.write_bytes(b"sealed bytes")
    half_written = data_dir / "files" / "incoming" / "tmp-killed"
    half_written.parent.mkdir(parents=True, exist_ok=True)
    half_written.write_bytes(b"HZE1 encrypted")
    old_copy = data_dir / "exports" / ".export-abc.zip"
    old_copy.parent.mkdir(parents=True, exist_ok=True)
    old_copy.write_bytes(b"PK\x03\x04 decrypted")
    for path in (orphan_spool, half_written, old_copy):
        os.utime(path, (long_ago, long_ago))
    writing = data_dir / "files" / "incoming" / "tmp-being-written"
    writing.write_bytes(b"HZE1 still growing")
    app.sweep_leftovers()
    assert not orphan_spool.exists() and not half_written.exists() and not old_copy.exists()
    assert writing.exists()


# --- modes ----------------------------------------------------------------------------------


def test_everything_in_the_data_folder_is_the_owners_alone_whatever_the_umask(
    tmp_path: Path,
) -> None:
    previous = os.umask(0o022)
    try:
        data_dir = tmp_path / "data"
        env = {"DATA_DIR": str(data_dir), "PUBLIC_BASE_URL": "https://huizhen.example"}
        app = build_app(load_settings(env))
        try:
            chat = make_chat(app)
            to_imaging(chat)
            link, _ = upload_link_path(chat)
            series = write_series(tmp_path / "CD" / "DICOM", count=3)
            for scan in series:
                chat.say(str(scan))

            async def scenario(page: Page) -> None:
                _, started = await page.begin("letter.pdf", len(LETTER))
                half = len(LETTER) // 2
                await page.put(started["id"], 0, LETTER[:half])  # a spool left half-sent
                _, other = await page.begin("report.pdf", len(MARKER))
                await page.put(other["id"], 0, MARKER)
                await page.done()

            _on_page(app, chat, link, scenario)
            assert any(d.kind == "preview" for d in documents(app))
            chat.say("/export")
            assert "Here is your copy" in chat.press("Yes, send me a copy")
            found = _modes(data_dir)
        finally:
            app.close()
    finally:
        os.umask(previous)
    assert found[data_dir] == 0o700
    assert any(path.name == "huizhen.sqlite3-wal" for path in found)
    assert any(path.parent.name == "uploads" for path in found)
    assert any(path.parent.name == "console-files" for path in found)
    wrong = {
        str(path.relative_to(tmp_path)): oct(mode)
        for path, mode in found.items()
        if mode != (0o700 if path.is_dir() else 0o600)
    }
    assert wrong == {}


def _modes(root: Path) -> dict[Path, int]:
    return {path: stat.S_IMODE(path.stat().st_mode) for path in [root, *root.rglob("*")]}
