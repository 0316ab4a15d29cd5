"""`PUBLIC_BASE_URL/x/<token>`: a patient's copy of their data (/export), when it is too large
for the chat or the channel cannot send files (WeChat). The link is an upload-link token
bound to the patient's copy, not to a case: it expires, is stored hashed, and is erased with
the patient. The file is decrypted from the store as it streams, never held whole.

A GET shows only a small page with a button; the file comes on the POST it makes. Link
previewers (Telegram's, a mail scanner's) fetch with GET or HEAD, so they never receive a
patient's copy, and the audit log records only downloads a person asked for."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from bot.upload_page import SECURITY_HEADERS, render_invalid, secured
from conversations.i18n import translator
from handlers.privacy.export import Export
from handlers.privacy.person import EXPORT_PREFIX
from records.markers import N_
from storage.documents import DocumentRow
from storage.uploads import UploadGrant

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
TITLE = N_("Your copy of your data")
EXPLAIN = N_("Your copy is ready as one zip file. Press the button to download it.")
BUTTON = N_("Download my copy")
# The same policy as every page here, except that this page's one form may post to itself.
PAGE_POLICY = SECURITY_HEADERS["Content-Security-Policy"].replace(
    "form-action 'none'", "form-action 'self'"
)


class DownloadPage:
    def __init__(
        self, export: Export, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.export = export
        self.clock = clock

    async def _copy(self, token: str) -> tuple[UploadGrant, DocumentRow] | None:
        grant = await asyncio.to_thread(self.export.tokens.resolve, token, self.clock())
        if grant is None or not grant.case_id.startswith(EXPORT_PREFIX):
            return None
        copy = await asyncio.to_thread(self.export.latest_copy, grant.case_id)
        return None if copy is None else (grant, copy)

    async def _invalid(self, token: str) -> web.StreamResponse:
        locale = await asyncio.to_thread(self.export.tokens.locale_of, token)
        page = render_invalid(locale or "en")
        return secured(web.Response(status=404, text=page, content_type="text/html"))

    async def show(self, request: web.Request) -> web.StreamResponse:
        """The click-through page (HEAD gets its headers only): nothing is served or audited."""
        token = request.match_info["token"]
        if await self._copy(token) is None:
            return await self._invalid(token)
        locale = await asyncio.to_thread(self.export.tokens.locale_of, token)
        response = secured(
            web.Response(text=render_download(locale or "en"), content_type="text/html")
        )
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    async def download(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        found = await self._copy(token)
        if found is None:
            return await self._invalid(token)
        grant, copy = found
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


def render_download(locale: str) -> str:
    t = translator(locale)
    return (
        f'<!doctype html><html lang="{t.locale.replace("_", "-")}" '
        f'dir="{"rtl" if t.rtl else "ltr"}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(t(TITLE))}</title>"
        '<link rel="stylesheet" href="../u/static/upload.css"></head>'
        f"<body><main><h1>{html.escape(t(TITLE))}</h1><p>{html.escape(t(EXPLAIN))}</p>"
        f'<form method="post"><button type="submit" id="download">'
        f"{html.escape(t(BUTTON))}</button></form></main></body></html>"
    )


def add_download_routes(app: web.Application, page: DownloadPage) -> None:
    app.router.add_get("/x/{token}", page.show)
    app.router.add_post("/x/{token}", page.download)
