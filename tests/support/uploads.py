"""Shared by several test files (moved from test_uploads.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.upload_page import UploadPage
from bot.web import make_web_app
from storage.uploads import UploadGrant, UploadState, UploadStore, UploadTokens


@dataclass
class Site:
    """The upload page behind a real server, and what it told the chat."""

    client: TestClient[Any, Any]
    tokens: UploadTokens
    store: UploadStore
    clock: Clock
    announced: list[tuple[UploadGrant, list[UploadState]]] = field(default_factory=list)

    def link(self, case_id: str = "case-1", locale: str = "en") -> str:
        token = self.tokens.issue(
            case_id=case_id,
            channel="console",
            user_key="alice",
            chat_key="alice-chat",
            locale=locale,
            now=self.clock(),
            ttl=timedelta(hours=24),
        )
        return f"/u/{token}"

    async def begin(self, link: str, name: str, size: int, path: str = "") -> Any:
        body = {"name": name, "relative_path": path, "size": size, "fingerprint": f"{path}|{name}"}
        async with self.client.post(f"{link}/files", json=body) as response:
            return response.status, await response.json()

    async def put(self, link: str, upload_id: str, offset: int, data: bytes) -> Any:
        url = f"{link}/files/{upload_id}?offset={offset}"
        async with self.client.put(url, data=data) as response:
            return response.status, await response.json()

    async def listed(self, link: str) -> list[dict[str, Any]]:
        async with self.client.get(f"{link}/files") as response:
            files: list[dict[str, Any]] = (await response.json())["files"]
            return files

    async def done(self, link: str) -> int:
        async with self.client.post(f"{link}/done") as response:
            assert response.status == 200
            announced: int = (await response.json())["announced"]
            return announced

    async def send(self, link: str, name: str, data: bytes) -> str:
        status, started = await self.begin(link, name, len(data))
        assert status == 200
        status, result = await self.put(link, started["id"], 0, data)
        assert (status, result["complete"]) == (200, True)
        upload_id: str = started["id"]
        return upload_id


def serve(app: App, scenario: Callable[[Site], Awaitable[None]], quota: int | None = None) -> None:
    async def main() -> None:
        tokens = UploadTokens(app.engine)
        spool = app.settings.data_dir / "uploads"
        quota_bytes = quota or app.settings.case_quota_bytes
        store = UploadStore(app.engine, spool, quota_bytes, app.pipeline.files.sealer)
        clock = Clock()
        announced: list[tuple[UploadGrant, list[UploadState]]] = []

        async def announce(grant: UploadGrant, uploads: list[UploadState]) -> None:
            announced.append((grant, uploads))

        page = UploadPage(tokens, store, announce, clock=clock)
        async with TestClient(TestServer(make_web_app(None, page))) as client:
            await scenario(Site(client, tokens, store, clock, announced))

    asyncio.run(main())


START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now
