"""The secure upload link and its page, over real HTTP on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import stat
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import SQLModel

from bot.app import App
from bot.upload_page import LINK_INVALID, NO_SPACE, PAGE_TITLE
from conversations.i18n import translator
from storage.uploads import UploadTokens
from tests.support.uploads import START, Site, serve

MB = 1024 * 1024


def test_link_tokens_are_long_random_and_only_their_hash_is_stored(app: App) -> None:
    site_tokens = UploadTokens(app.engine)
    raw = [
        site_tokens.issue(
            case_id="case-1",
            channel="console",
            user_key="alice",
            chat_key="alice",
            locale="en",
            now=START,
            ttl=timedelta(hours=24),
        )
        for _ in range(3)
    ]
    assert len(set(raw)) == 3
    for token in raw:
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128
    with app.engine.connect() as conn:
        everything = repr(
            [conn.execute(select(table)).all() for table in SQLModel.metadata.sorted_tables]
        )
    assert not any(token in everything for token in raw)
    assert all(hashlib.sha256(token.encode()).hexdigest() in everything for token in raw)
    grant = site_tokens.resolve(raw[0], START)
    assert grant is not None and grant.case_id == "case-1"


def test_the_page_is_served_safely_in_the_links_language(app: App) -> None:
    async def scenario(site: Site) -> None:
        async with site.client.get(site.link(locale="ar")) as response:
            assert response.status == 200
            page = await response.text()
            headers = response.headers
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert '<html lang="ar" dir="rtl">' in page
        assert translator("ar")(PAGE_TITLE) in page
        assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
        async with site.client.get(site.link(locale="zh_Hans")) as response:
            assert '<html lang="zh-Hans" dir="ltr">' in await response.text()
        async with site.client.get("/u/static/upload.js") as response:
            assert response.status == 200
            assert "javascript" in response.headers["Content-Type"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with site.client.get("/u/static/secrets.txt") as response:
            assert response.status == 404

    serve(app, scenario)


def test_a_wrong_expired_or_revoked_link_gets_the_friendly_answer(app: App) -> None:
    async def scenario(site: Site) -> None:
        fresh, chinese, revoked = site.link(), site.link(locale="zh_Hans"), site.link("case-2")
        assert site.tokens.revoke_case("case-2", START) == 1
        site.clock.now = START + timedelta(hours=23)
        async with site.client.get(fresh) as response:
            assert response.status == 200
        for wrong in ("/u/nonsense", "/u/" + "A" * 43, revoked):
            async with site.client.get(wrong) as response:
                assert response.status == 404
                assert response.headers["Cache-Control"] == "no-store"
                assert LINK_INVALID in await response.text()
            async with site.client.post(f"{wrong}/files", json={}) as response:
                assert response.status == 404
                assert (await response.json())["message"] == LINK_INVALID
        site.clock.now = START + timedelta(hours=24, seconds=1)
        async with site.client.get(fresh) as response:
            assert response.status == 404
        async with site.client.get(chinese) as response:
            assert translator("zh_Hans")(LINK_INVALID) in await response.text()
            assert 'lang="zh-Hans"' in await response.text()

    serve(app, scenario)


def test_an_interrupted_upload_resumes_from_what_arrived(app: App) -> None:
    data = os.urandom(3 * MB)

    async def scenario(site: Site) -> None:
        link = site.link()
        status, started = await site.begin(link, "CT chest.zip", len(data))
        assert (status, started["received"], started["chunk_size"]) == (200, 0, 8 * MB)
        # Send half of a chunk by hand, then drop the connection as a failing network would.
        _, writer = await asyncio.open_connection(site.client.host, site.client.port)
        writer.write(
            f"PUT {link}/files/{started['id']}?offset=0 HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[: len(data) // 2]
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        for _ in range(50):
            if (await site.listed(link))[0]["received"] == len(data) // 2:
                break
            await asyncio.sleep(0.05)
        # The page comes back: the same file is the same upload, at the offset that arrived.
        status, again = await site.begin(link, "CT chest.zip", len(data))
        assert (again["id"], again["received"]) == (started["id"], len(data) // 2)
        status, result = await site.put(
            link, again["id"], again["received"], data[len(data) // 2 :]
        )
        assert (status, result) == (200, {"received": len(data), "complete": True})
        with site.store.open(f"upload:{again['id']}") as stored:
            assert stored.read() == data
        spooled = site.store.spool_path(again["id"])
        assert spooled.name == f"{again['id']}.part"
        assert stat.S_IMODE(spooled.stat().st_mode) == 0o600

    serve(app, scenario)


def test_a_chunk_at_the_wrong_offset_is_refused_with_the_servers_offset(app: App) -> None:
    async def scenario(site: Site) -> None:
        link = site.link()
        _, started = await site.begin(link, "report.pdf", 3 * MB)
        assert await site.put(link, started["id"], 1000, b"x" * 10) == (
            409,
            {"error": "bad_offset", "received": 0, "complete": False},
        )
        status, result = await site.put(link, started["id"], 0, b"x" * MB)
        assert (status, result["received"]) == (200, MB)
        status, result = await site.put(link, started["id"], 0, b"x" * MB)
        assert (status, result["received"]) == (409, MB)

    serve(app, scenario)


def test_more_bytes_than_the_file_has_are_refused_and_cut_off(app: App) -> None:
    async def scenario(site: Site) -> None:
        link = site.link()
        _, started = await site.begin(link, "note.txt", 10)
        status, _ = await site.put(link, started["id"], 0, b"y" * 20)
        assert status == 400
        assert (await site.listed(link))[0]["received"] == 0
        assert site.store.spool_path(started["id"]).stat().st_size == 0
        async with site.client.put(
            f"{link}/files/{started['id']}?offset=0", data=b"z" * (16 * MB + 1)
        ) as response:
            assert response.status == 413

    serve(app, scenario)


def test_over_the_case_quota_is_refused_kindly(app: App) -> None:
    async def scenario(site: Site) -> None:
        link = site.link(locale="zh_Hans")
        status, first = await site.begin(link, "MRI.zip", 3 * MB)
        assert status == 200
        status, refused = await site.begin(link, "CT.zip", 3 * MB)
        assert status == 413
        assert refused["message"] == translator("zh_Hans")(NO_SPACE)
        # Starting the first file again is the same upload, not more space.
        status, again = await site.begin(link, "MRI.zip", 3 * MB)
        assert (status, again["id"]) == (200, first["id"])

    serve(app, scenario, quota=5 * MB)


def test_an_upload_of_another_case_cannot_be_touched(app: App) -> None:
    async def scenario(site: Site) -> None:
        theirs, mine = site.link("case-A"), site.link("case-B")
        _, started = await site.begin(theirs, "their scan.dcm", 100)
        for forged in (started["id"], "0" * 32, "not-an-id"):
            status, body = await site.put(mine, forged, 0, b"q" * 100)
            assert (status, body["error"]) == (404, "unknown_upload")
        assert await site.listed(mine) == []
        assert not site.store.spool_path("0" * 32).exists()
        assert (await site.listed(theirs))[0]["received"] == 0

    serve(app, scenario)


def test_done_tells_the_chat_once_about_what_arrived(app: App) -> None:
    async def scenario(site: Site) -> None:
        link = site.link()
        await site.send(link, "a.pdf", b"A" * 100)
        await site.send(link, "b.pdf", b"B" * 200)
        _, unfinished = await site.begin(link, "c.zip", 300)
        assert await site.done(link) == 2
        assert await site.done(link) == 0
        assert len(site.announced) == 1
        grant, uploads = site.announced[0]
        assert (grant.chat_key, grant.case_id) == ("alice-chat", "case-1")
        assert sorted(u.name for u in uploads) == ["a.pdf", "b.pdf"]
        await site.put(link, unfinished["id"], 0, b"C" * 300)
        assert await site.done(link) == 1
        assert [u.name for u in site.announced[1][1]] == ["c.zip"]

    serve(app, scenario)


def test_the_sweep_finds_files_whose_page_closed_before_done(app: App) -> None:
    async def scenario(site: Site) -> None:
        link = site.link()
        upload_id = await site.send(link, "scan.zip", b"S" * 1000)
        assert site.store.sweep(START, older_than=timedelta(minutes=10)) == []
        later = START + timedelta(minutes=11)
        [(grant, uploads)] = site.store.sweep(later, older_than=timedelta(minutes=10))
        assert (grant.chat_key, [u.id for u in uploads]) == ("alice-chat", [upload_id])
        site.store.mark_announced([upload_id], later)
        assert site.store.sweep(later, older_than=timedelta(minutes=10)) == []
        with site.store.open(f"upload:{upload_id}") as stored:
            assert stored.read() == b"S" * 1000
        site.store.discard(f"upload:{upload_id}")
        assert not site.store.spool_path(upload_id).exists()

    serve(app, scenario)


def test_a_file_of_several_gigabytes_can_begin(app: App) -> None:
    async def scenario(site: Site) -> None:
        status, started = await site.begin(site.link(), "whole CD.iso", 5 * 1024**3)
        assert (status, started["size"]) == (200, 5 * 1024**3)

    serve(app, scenario)


def test_an_upload_never_finished_is_removed_with_its_partial_file(app: App) -> None:
    async def scenario(site: Site) -> None:
        link = site.link()
        _, started = await site.begin(link, "half.dcm", 1000)
        await site.put(link, started["id"], 0, b"h" * 400)
        assert site.store.spool_path(started["id"]).exists()
        later = site.clock() + timedelta(days=2)
        assert site.store.remove_abandoned(later, older_than=timedelta(hours=48)) == 1
        assert not site.store.spool_path(started["id"]).exists()
        assert await site.listed(link) == []

    serve(app, scenario)
