"""A full disk during an upload: a clear message, nothing half-registered, recovery on its own.

The data folder is a real, small filesystem (a tmpfs), filled with a real file until the kernel
says ENOSPC, so every layer meets the genuine error: the libraries that download from Telegram,
the encrypted store, the worker process that unpacks archives, the upload page's spool, SQLite.
Root mounts it directly (as here and in CI); anyone else runs the test again inside a user and
mount namespace (`unshare --user --map-root-user --mount`), where they may mount one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from selenium import webdriver
from selenium.webdriver.common.by import By
from sqlmodel import Session, select

from bot.app import App, build_app
from bot.channels.console import CHANNEL
from bot.config import load_settings
from bot.upload_page import STORE_FULL, UploadPage
from bot.web import make_web_app
from conversations.i18n import translator
from conversations.state import ConversationKey
from storage.models import Document
from storage.uploads import UploadGrant, UploadState
from tests.support import run
from tests.support.browser import (
    choose_files,
    chromium,
    require_browser,
    serving,
    wait_finished,
    wait_until,
)
from tests.support.console import Chat, make_chat, to_imaging, upload_link_path
from tests.support.telegram import LIBRARIES, Patient, bot, consent, settle, telegram_settings
from tests.telegram_fake import FakeBotApi

ROOT = Path(__file__).resolve().parent.parent
DISK_BYTES = 16 * 1024 * 1024
NOT_STORED = "couldn't store {name} just now, so I didn't keep it"
APOLOGY = "Sorry, something went wrong on our side"


@dataclass
class SmallDisk:
    """A tmpfs of DISK_BYTES; `fill` takes its free space away with a real file."""

    path: Path
    fillers: list[Path] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self, leave: int = 0) -> None:
        """Write until the kernel refuses (ENOSPC), then give back `leave` bytes."""
        block = b"\xa5" * (256 * 1024)
        filler = self.path / f"filler-{len(self.fillers)}"
        self.fillers.append(filler)
        with filler.open("wb", buffering=0) as out:
            while True:
                try:
                    out.write(block)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    break
        assert self.free() < 64 * 1024
        if leave:
            os.truncate(filler, max(0, filler.stat().st_size - leave))

    def release(self) -> None:
        for filler in self.fillers:
            filler.unlink()
        self.fillers.clear()


def _in_namespace(nodeid: str) -> None:
    """Run this one test again as root of a new user and mount namespace."""
    unshare = shutil.which("unshare") or "unshare"
    namespace = [unshare, "--user", "--map-root-user", "--mount"]
    try:
        usable = subprocess.run([*namespace, "true"], capture_output=True).returncode == 0
    except OSError:  # no unshare at all
        usable = False
    if usable:
        _run_in(namespace, nodeid)
        return
    reason = "not root, and no user namespace (unshare) to mount a small tmpfs in"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _run_in(namespace: list[str], nodeid: str) -> None:
    command = [*namespace, sys.executable, "-m", "pytest"]
    result = subprocess.run(
        [*command, "-q", "-p", "no:cacheprovider", nodeid], cwd=ROOT, capture_output=True, text=True
    )
    # Passed there, not skipped: the namespace is where it may mount.
    ran = result.returncode == 0 and re.search(r"\b1 passed\b", result.stdout)
    assert ran and "skipped" not in result.stdout, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.fixture
def small_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmallDisk | None]:
    """The mounted disk, or None when the test already ran (and passed) in a namespace."""
    if os.geteuid() != 0:
        _in_namespace(request.node.nodeid)
        yield None
        return
    where = tmp_path / "disk"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(where)]
    mounted = subprocess.run(mount, capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield SmallDisk(where)
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(where)], check=True)


def documents(app: App) -> list[Document]:
    with Session(app.engine) as session:
        return list(session.exec(select(Document)).all())


def leftovers(data_dir: Path) -> list[Path]:
    """Files in the encrypted store, its incoming folder and the download spool."""
    found = []
    for folder in ("files", "spool"):
        found += [p for p in (data_dir / folder).rglob("*") if p.is_file()]
    return found


def database_bytes(disk: SmallDisk) -> int:
    """SQLite's file, its write-ahead log and shared memory index."""
    return sum(p.stat().st_size for p in disk.data_dir.glob("huizhen.sqlite3*"))


def zeros_zip(name: str, size: int) -> bytes:
    """A small archive that unpacks to `size` bytes (well under the ratio rule's grace)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, b"\0" * size)
    return buffer.getvalue()


# --- a file sent in the Telegram chat --------------------------------------------------------


def refused(patient: Patient, name: str) -> str | None:
    for sent in patient.fake.sent(patient.user_id):
        if NOT_STORED.format(name=name) in (sent.plain_text or ""):
            return sent.plain_text
    return None


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_chat_file_that_does_not_fit_is_refused_kindly_and_sent_again_later(
    small_disk: SmallDisk | None, library: str
) -> None:
    if small_disk is None:
        return  # it ran, and passed, in a user namespace
    disk = small_disk
    base = load_settings({"DATA_DIR": str(disk.data_dir)})

    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(base, fake, library)) as channel:
            app = channel.app
            patient = Patient(fake, 701)
            await consent(patient)
            disk.fill(leave=512 * 1024)
            # Three ways not to fit: the download itself; the encrypted copy (the download
            # fits, the store's copy next to it does not); an archive's contents, unpacked by
            # the worker process.
            free, database = disk.free(), database_bytes(disk)
            files = {
                "scan-report.pdf": b"%PDF-1.4 " + os.urandom(2 * free),
                "letter.pdf": b"%PDF-1.4 " + os.urandom(free * 7 // 10),
                "disc.zip": zeros_zip("report.txt", 2 * free),
            }
            for name, data in files.items():
                reply = await patient.upload(name, data)
                assert f"Received: {name}" in reply
                said = await fake.wait_for(functools.partial(refused, patient, name), timeout=20)
                assert said is not None
                assert "Please send it again a little later" in said
                assert documents(app) == []
                assert leftovers(disk.data_dir) == []
                # Nothing half-written holds on to space either (an open, deleted file would):
                # what the disk lost since is the database's log of these very messages.
                assert disk.free() + database_bytes(disk) - database > free - 64 * 1024
            # The conversation goes on meanwhile.
            reply = await patient.press("For me")
            assert reply and APOLOGY not in reply
            before = len(fake.sent(701))

            disk.release()
            for name, data in files.items():
                reply = await patient.upload(name, data)
                assert f"Received: {name}" in reply
            await fake.wait_for(lambda: len(documents(app)) == 4, timeout=20)  # zip + member
            await settle(fake)
            later = "\n".join(s.plain_text or "" for s in fake.sent(701)[before:])
            assert "just now" not in later
            assert "I've checked what you sent" in later
            stored = {d.original_name: d.sha256 for d in documents(app)}
            for name in ("scan-report.pdf", "letter.pdf", "disc.zip"):
                assert stored[name] == hashlib.sha256(files[name]).hexdigest()
            assert stored["report.txt"] == hashlib.sha256(b"\0" * (2 * free)).hexdigest()

    run(scenario)


# --- the database on the full disk -----------------------------------------------------------


def test_an_update_the_full_disk_cannot_store_is_apologised_for_and_nothing_is_corrupted(
    small_disk: SmallDisk | None,
) -> None:
    if small_disk is None:
        return
    disk = small_disk
    base = load_settings({"DATA_DIR": str(disk.data_dir)})
    database = disk.data_dir / "huizhen.sqlite3"

    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(base, fake, "ptb")) as channel:
            patient = Patient(fake, 702)
            await patient.command("/start")
            step = channel.app.pipeline.state_of(ConversationKey("telegram", "702"))
            assert step is not None
            # Not a byte left: SQLite appends each transaction to its write-ahead log, which
            # now has nowhere to grow.
            disk.fill()
            reply = await patient.press("No, not an emergency")
            assert APOLOGY in reply and "Please send your last message again" in reply
            state = channel.app.pipeline.state_of(ConversationKey("telegram", "702"))
            assert state is not None and state.step == step.step  # no half-taken step
            assert _intact(database)

            disk.release()
            reply = await patient.press("No, not an emergency")
            assert reply.startswith("Here is what I do")
            state = channel.app.pipeline.state_of(ConversationKey("telegram", "702"))
            assert state is not None and state.step == "about"

    run(scenario)
    assert _intact(database)


def _intact(database: Path) -> bool:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        verdict: tuple[str, ...] | None = connection.execute("PRAGMA integrity_check").fetchone()
        return verdict == ("ok",)


# --- the upload page --------------------------------------------------------------------------


def test_the_upload_page_says_why_a_chunk_was_not_stored_and_goes_on_once_there_is_room(
    small_disk: SmallDisk | None,
) -> None:
    if small_disk is None:
        return
    disk = small_disk
    app = build_app(
        load_settings(
            {"DATA_DIR": str(disk.data_dir), "PUBLIC_BASE_URL": "https://huizhen.example"}
        )
    )
    try:
        chat = make_chat(app)
        to_imaging(chat)
        link, _ = upload_link_path(chat)
        asyncio.run(_page_scenario(app, chat, link, disk))
    finally:
        app.close()


async def _page_scenario(app: App, chat: Chat, link: str, disk: SmallDisk) -> None:
    async def announce(grant: UploadGrant, uploads: list[UploadState]) -> None:
        await asyncio.to_thread(app.announce_uploads, grant, uploads)
        await app.after_update({CHANNEL: chat.channel}, {CHANNEL: chat.channel}, chat.channel)

    page = UploadPage(app.upload_tokens, app.uploads, announce)
    spool = disk.data_dir / "uploads"
    grant = app.upload_tokens.resolve(link.rsplit("/", 1)[1], datetime.now(UTC))
    assert grant is not None
    case_id = grant.case_id
    async with TestClient(TestServer(make_web_app(None, page))) as client:

        async def begin(name: str, size: int) -> str:
            body = {"name": name, "relative_path": "", "size": size, "fingerprint": name}
            async with client.post(f"{link}/files", json=body) as response:
                assert response.status == 200
                return str((await response.json())["id"])

        async def put(upload_id: str, data: bytes) -> tuple[int, dict[str, object]]:
            async with client.put(f"{link}/files/{upload_id}?offset=0", data=data) as response:
                return response.status, await response.json()

        disk.fill(leave=512 * 1024)
        # A chunk larger than the space left: refused with a reason, and cut back.
        big = os.urandom(2 * disk.free())
        big_id = await begin("ct-series.bin", len(big))
        status, body = await put(big_id, big)
        assert status == 507 and body["error"] == "no_space" and body["received"] == 0
        assert "We couldn't store this file just now" in str(body["message"])
        assert "sending continues by itself" in str(body["message"])
        assert [p.stat().st_size for p in spool.glob("*.part")] == [0]
        assert [(u.id, u.received) for u in app.uploads.uploads_of(case_id)] == [(big_id, 0)]
        reply = await asyncio.to_thread(chat.say, "/status")  # the conversation goes on
        assert reply and APOLOGY not in reply

        # A file the spool takes, but the encrypted store then cannot: it waits in the spool.
        letter = b"%PDF-1.4 " + os.urandom(disk.free() * 7 // 10)
        letter_id = await begin("letter.pdf", len(letter))
        status, body = await put(letter_id, letter)
        assert status == 200 and body["complete"] is True
        async with client.post(f"{link}/done") as response:
            assert (await response.json())["announced"] == 1
        assert documents(app) == []
        with app.uploads.open(f"upload:{letter_id}") as held:
            assert held.read() == letter
        screen = chat.screen.getvalue()
        assert "Received: letter.pdf" in screen
        assert "just now" not in screen  # nothing for the patient to redo
        assert "I've checked what you sent" not in screen

        disk.release()
        status, body = await put(big_id, big)
        assert status == 200 and body["complete"] is True
        async with client.post(f"{link}/done") as response:
            assert (await response.json())["announced"] == 1
    # The letter was taken from the spool on the next round of work, as the big file was.
    stored = {d.original_name: d.sha256 for d in documents(app)}
    assert stored == {
        "ct-series.bin": hashlib.sha256(big).hexdigest(),
        "letter.pdf": hashlib.sha256(letter).hexdigest(),
    }
    assert list(spool.glob("*.part")) == []
    assert "I've checked what you sent" in chat.screen.getvalue()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    require_browser()
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


def test_in_the_browser_the_page_says_so_and_finishes_by_itself_once_there_is_room(
    small_disk: SmallDisk | None, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    if small_disk is None:
        return
    disk = small_disk
    with serving(disk.data_dir) as server:
        disk.fill(leave=512 * 1024)
        data = os.urandom(2 * disk.free())
        (tmp_path / "CT chest.zip").write_bytes(data)
        browser.get(server.link("case-full-disk"))
        choose_files(browser, "pick-files", [tmp_path / "CT chest.zip"])

        def item(b: webdriver.Chrome) -> tuple[str, str]:
            row = b.find_element(By.CSS_SELECTOR, "#files li")
            note = row.find_element(By.CSS_SELECTOR, ".note").text
            return row.get_attribute("data-state") or "", note

        said = translator("en")(STORE_FULL)
        wait_until(browser, lambda b: item(b) == ("retrying", said), "that the disk is full")
        disk.release()
        wait_finished(browser)
        assert server.received("case-full-disk") == {"CT chest.zip": data}
        assert item(browser)[1] == "Arrived"
