"""The web app as the internet meets it, served for real on 127.0.0.1: slow clients are cut
off, malformed numbers and JSON are answered 400 (never 500), empty files are refused
kindly, /metrics is private, and no response names the server's software."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import App, build_app
from bot.config import load_settings
from bot.read_limits import ReadLimits
from bot.runner import public_web_app
from bot.upload_page import EMPTY_FILE
from bot.web import start_web_app
from conversations.i18n import translator
from storage.uploads import UploadGrant

# Short bounds, so a test waits seconds, not the minutes a real patient is given.
LIMITS = ReadLimits(header_seconds=1.0, body_seconds=1.0, piece_seconds=1.0, chunk_seconds=2.0)
METRICS_TOKEN = "a-long-random-scrape-token"


@pytest.fixture
def core(tmp_path: Path) -> Iterator[App]:
    env = {"DATA_DIR": str(tmp_path / "data"), "METRICS_TOKEN": METRICS_TOKEN}
    application = build_app(load_settings(env))
    yield application
    application.close()


@asynccontextmanager
async def served(core: App, limits: ReadLimits = LIMITS) -> AsyncIterator[str]:
    """The web app `huizhen run` serves, on a free loopback port; yields its base URL."""

    async def files_arrived(grant: UploadGrant) -> None:
        return None

    web_app = public_web_app(core, files_arrived, limits=limits)
    runner = await start_web_app(web_app, "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def link(core: App, locale: str = "en") -> str:
    token = core.upload_tokens.issue(
        case_id="case-1",
        channel="console",
        user_key="alice",
        chat_key="alice",
        locale=locale,
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
    )
    return f"/u/{token}"


def run(core: App, scenario: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        async with served(core) as base:
            await scenario(base)

    asyncio.run(main())


async def trickle(base: str, head: bytes, body: bytes, every: float = 0.25) -> tuple[bytes, float]:
    """Send `head` at once, then `body` a byte every `every` seconds; what the server answered
    (b"" when it just closed), and after how long: it must not wait for the last byte."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()

    async def send() -> None:
        with contextlib.suppress(OSError):
            writer.write(head)
            for byte in body:
                await asyncio.sleep(every)
                writer.write(bytes([byte]))
                await writer.drain()

    sender = asyncio.create_task(send())
    try:
        answer = await asyncio.wait_for(reader.read(4096), timeout=30)
    except ConnectionError:
        answer = b""
    seconds = time.monotonic() - started
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    writer.close()
    return answer, seconds


def test_a_client_sending_headers_a_byte_at_a_time_is_cut_off(core: App) -> None:
    async def scenario(base: str) -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: huizhen\r\nX-Slow: " + b"x" * 40 + b"\r\n\r\n"
        # Sixty-odd bytes at a quarter second each would take 15 s; the bound is 1 s.
        answer, seconds = await trickle(base, b"", head)
        assert seconds < 4, seconds
        assert answer == b"", answer[:80]

    run(core, scenario)


def test_a_body_sent_a_byte_at_a_time_is_cut_off(core: App) -> None:
    async def scenario(base: str) -> None:
        page = link(core)
        body = json.dumps({"name": "a.pdf", "size": 10, "fingerprint": "f"}).encode()
        head = (
            f"POST {page}/files HTTP/1.1\r\nHost: huizhen\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        answer, seconds = await trickle(base, head, body)
        assert seconds < 4, seconds
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert core.uploads.uploads_of("case-1") == []

    run(core, scenario)


def test_an_upload_chunk_that_trickles_is_cut_off_and_what_arrived_is_kept(core: App) -> None:
    async def scenario(base: str) -> None:
        page = link(core)
        async with aiohttp.ClientSession(base) as http:
            description = {"name": "scan.dcm", "size": 1000, "fingerprint": "f"}
            async with http.post(f"{page}/files", json=description) as response:
                upload_id = (await response.json())["id"]

            async def slowly() -> AsyncIterator[bytes]:
                yield b"x" * 100
                for _ in range(40):
                    await asyncio.sleep(0.2)
                    yield b"y"

            started = time.monotonic()
            with pytest.raises(aiohttp.ClientError):
                async with http.put(f"{page}/files/{upload_id}?offset=0", data=slowly()) as put:
                    # Answered before the body ends (it would take 8 s): cut off.
                    assert put.status == 400
                    raise aiohttp.ClientError("answered")
            assert time.monotonic() - started < 6
            async with http.get(f"{page}/files") as response:
                (state,) = (await response.json())["files"]
            assert 100 <= state["received"] < 140 and not state["complete"]

    run(core, scenario)


@pytest.mark.parametrize(
    "description",
    [
        {"name": "a.pdf", "size": 2**63, "fingerprint": "f"},
        {"name": "a.pdf", "size": 2**64 + 5, "fingerprint": "f"},
        {"name": "a.pdf", "size": -1, "fingerprint": "f"},
        {"name": "a.pdf", "size": 1e308, "fingerprint": "f"},
    ],
)
def test_numbers_out_of_range_are_a_bad_request(core: App, description: dict[str, Any]) -> None:
    async def scenario(base: str) -> None:
        async with (
            aiohttp.ClientSession(base) as http,
            http.post(f"{link(core)}/files", json=description) as response,
        ):
            assert response.status == 400, await response.text()
            assert (await response.json())["error"] == "bad_request"
        assert core.uploads.uploads_of("case-1") == []

    run(core, scenario)


def test_an_offset_out_of_range_is_a_bad_request(core: App) -> None:
    async def scenario(base: str) -> None:
        page = link(core)
        async with aiohttp.ClientSession(base) as http:
            description = {"name": "a.pdf", "size": 10, "fingerprint": "f"}
            async with http.post(f"{page}/files", json=description) as response:
                upload_id = (await response.json())["id"]
            for offset in (str(2**63), str(2**64), "9" * 400):
                url = f"{page}/files/{upload_id}?offset={offset}"
                async with http.put(url, data=b"0123456789") as response:
                    assert response.status == 400, (offset, await response.text())

    run(core, scenario)


def test_json_nested_a_hundred_thousand_deep_is_a_bad_request(core: App) -> None:
    async def scenario(base: str) -> None:
        deep = b"[" * 100_000 + b"]" * 100_000
        async with (
            aiohttp.ClientSession(base) as http,
            http.post(
                f"{link(core)}/files", data=deep, headers={"Content-Type": "application/json"}
            ) as response,
        ):
            assert response.status == 400, await response.text()

    run(core, scenario)


def test_an_empty_file_is_refused_kindly_in_the_links_language(core: App) -> None:
    async def scenario(base: str) -> None:
        page = link(core, locale="de")
        async with aiohttp.ClientSession(base) as http:
            for index in range(3):
                description = {"name": f"empty-{index}.txt", "size": 0, "fingerprint": str(index)}
                async with http.post(f"{page}/files", json=description) as response:
                    assert response.status == 400
                    body = await response.json()
                message = translator("de")(EMPTY_FILE, name=f"empty-{index}.txt")
                assert body == {"error": "empty", "message": message}
                assert "ist leer" in message
            async with http.post(f"{page}/done") as response:
                assert (await response.json())["announced"] == 0
        # Nothing was stored or told to the chat: no rows, no files.
        assert core.uploads.uploads_of("case-1") == []
        assert not any((core.settings.data_dir / "uploads").glob("*"))

    run(core, scenario)


def test_metrics_answer_only_the_bearer_of_the_token(core: App) -> None:
    async def scenario(base: str) -> None:
        async with aiohttp.ClientSession(base) as http:
            async with http.get("/metrics") as response:
                assert response.status == 401
            wrong = {"Authorization": "Bearer not-the-token-at-all"}
            async with http.get("/metrics", headers=wrong) as response:
                assert response.status == 401
            right = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            async with http.get("/metrics", headers=right) as response:
                assert response.status == 200
                assert "huizhen_outbox_pending" in await response.text()

    run(core, scenario)


def test_without_a_metrics_token_there_is_no_metrics_page(tmp_path: Path) -> None:
    application = build_app(load_settings({"DATA_DIR": str(tmp_path / "data")}))

    async def scenario(base: str) -> None:
        async with aiohttp.ClientSession(base) as http:
            async with http.get("/metrics") as response:
                assert response.status == 404
            async with http.get("/healthz") as response:
                assert response.status == 200

    try:
        run(application, scenario)
    finally:
        application.close()


def test_no_response_names_the_server_software(core: App) -> None:
    async def scenario(base: str) -> None:
        servers = []
        async with aiohttp.ClientSession(base) as http:
            for path in ("/healthz", link(core), "/u/not-a-token", "/nowhere", "/metrics"):
                async with http.get(path) as response:
                    servers.append(response.headers.get("Server", ""))
            async with http.delete("/healthz") as response:
                assert response.status == 405
                servers.append(response.headers.get("Server", ""))
        # aiohttp's own answer to a request it cannot parse, which no handler sees.
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /\x01 HTTP/1.1\r\nHost: huizhen\r\n\r\n")
        answer = (await asyncio.wait_for(reader.read(4096), timeout=5)).decode("latin-1")
        writer.close()
        assert answer.startswith("HTTP/1.") and " 400 " in answer.split("\r\n")[0]
        servers += [line for line in answer.split("\r\n") if line.lower().startswith("server:")]
        for value in servers:
            assert "aiohttp" not in value.lower() and "python" not in value.lower(), value
            assert not any(char.isdigit() for char in value), value

    run(core, scenario)
