"""`PUBLIC_BASE_URL/x/<token>`: a patient's copy of their data (/export), when it is too large
for the chat or the channel cannot send files (WeChat). The link is an upload-link token
bound to the patient's copy, not to a case: it expires, is stored hashed, and is erased with
the patient. The file is decrypted from the store as it streams, never held whole."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from bot.upload_page import render_invalid, secured
from handlers.privacy.export import Export
from handlers.privacy.person import EXPORT_PREFIX

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


class DownloadPage:
    def __init__(
        self, export: Export, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.export = export
        self.clock = clock

    async def download(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        tokens = self.export.tokens
        grant = await asyncio.to_thread(tokens.resolve, token, self.clock())
        copy = None
        if grant is not None and grant.case_id.startswith(EXPORT_PREFIX):
            copy = await asyncio.to_thread(self.export.latest_copy, grant.case_id)
        if grant is None or copy is None:
            locale = await asyncio.to_thread(tokens.locale_of, token)
            page = render_invalid(locale or "en")
            return secured(web.Response(status=404, text=page, content_type="text/html"))
        response = secured(
            web.StreamResponse(
                headers={
                    "Content-Type": "application/zip",
                    "Content-Disposition": f'attachment; filename="{copy.original_name}"',
                    "Content-Length": str(copy.size),
                    "Cache-Control": "no-store",
                }
            )
        )
        await response.prepare(request)
        stream = await asyncio.to_thread(self.export.files.open, copy.sha256)
        try:
            while chunk := await asyncio.to_thread(stream.read, CHUNK):
                await response.write(chunk)
        finally:
            stream.close()
        await asyncio.to_thread(self.export.downloaded, grant)
        log.info("a patient's copy was downloaded")
        await response.write_eof()
        return response


def add_download_routes(app: web.Application, page: DownloadPage) -> None:
    app.router.add_get("/x/{token}", page.download)
