"""The secure upload page: a link from the chat opens it, large files and whole folders (a
hospital CD) arrive in resumable chunks, and the chat is told what arrived.

Every route lives under /u/{token}. The token is the only credential, so nothing here is cached
or sent on as a referrer, and an unknown, expired or revoked token gets one friendly answer."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.read_limits import limits_of
from conversations.file_feedback import FILE_PROBLEMS
from conversations.i18n import translator
from handlers.privacy.person import EXPORT_PREFIX
from records.markers import N_
from storage.uploads import (
    UploadGrant,
    UploadProblem,
    UploadRefused,
    UploadState,
    UploadStore,
    UploadTokens,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = frozenset({"upload.js", "upload.css"})
CHUNK_BYTES = 8 * 1024 * 1024  # what the page sends per request
MAX_CHUNK_BYTES = 16 * 1024 * 1024  # what one request may carry
READ_BYTES = 1024 * 1024
# The one route whose body streams to disk as it arrives (bot/web.py reads every other body
# whole, within its time bound).
STREAMED_ROUTE = "upload_chunk"
# Sizes and offsets beyond this are no file a browser has (and would overflow the database's
# 64-bit integers): refused as a malformed request.
MAX_FILE_BYTES = 2**53

Announce = Callable[[UploadGrant, list[UploadState]], Awaitable[None]]

PAGE_TITLE = N_("Send your medical files")
INTRO = N_(
    "This page is for large files and whole folders, such as the contents of a hospital CD "
    "or DVD. They go straight to your case and nowhere else."
)
REASSURE = N_(
    "Take your time. If the connection drops, sending continues by itself. If you reload "
    "the page, choose the same files again and they continue where they stopped."
)
CHOOSE_FILES = N_("Choose files")
CHOOSE_FOLDER = N_("Choose a folder")
DROP_HINT = N_("Or drag files and folders here.")
KEEP_OPEN = N_("Please keep this page open until every file has arrived.")
LINK_INVALID_TITLE = N_("This link cannot be used")
LINK_INVALID = N_("This link has expired or is not valid. Please ask for a new one in the chat.")
NO_SPACE = N_(
    "There is not enough space left in your case for this file. Please tell us in the chat."
)
FINISHED = N_("We've told the chat what arrived; you can close this page.")
# The chat says the same of an empty file sent there.
EMPTY_FILE = FILE_PROBLEMS["empty"]
STORE_FULL = N_(
    "We couldn't store this file just now. Please keep this page open: sending continues by "
    "itself in a little while."
)

# What the page's script shows, by key; passed to it translated, as JSON inside the page.
SCRIPT_TEXTS = {
    "waiting": N_("Waiting"),
    "sending": N_("Sending"),
    "arrived": N_("Arrived"),
    "retrying": N_("Connection lost. Trying again…"),
    "failed": N_("This file could not be sent."),
    "noSpace": NO_SPACE,
    "unfinished": N_("Not finished. Choose this file again to continue."),
    "summary": N_("Arrived: {done} of {total}"),
    "telling": N_("Telling the chat what arrived…"),
    "finished": FINISHED,
    "linkInvalid": LINK_INVALID,
}

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
}


def _now() -> datetime:
    return datetime.now(UTC)


def secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    return response


def _html_lang(locale: str) -> str:
    return locale.replace("_", "-")


@cache
def _template(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


@cache
def render_page(locale: str) -> str:
    """The page in one language; every text escaped, the script's texts as JSON."""
    t = translator(locale)
    texts = {key: t(message) for key, message in SCRIPT_TEXTS.items()}
    # "<" escaped so no text can close the <script> element it sits in.
    blob = json.dumps(texts, ensure_ascii=False).replace("<", "\\u003c")
    fields = {
        "lang": _html_lang(t.locale),
        "dir": "rtl" if t.rtl else "ltr",
        "title": t(PAGE_TITLE),
        "intro": t(INTRO),
        "reassure": t(REASSURE),
        "choose_files": t(CHOOSE_FILES),
        "choose_folder": t(CHOOSE_FOLDER),
        "drop_hint": t(DROP_HINT),
        "keep_open": t(KEEP_OPEN),
    }
    escaped = {key: html.escape(value) for key, value in fields.items()}
    return _template("upload.html").format(texts=blob, **escaped)


@cache
def render_invalid(locale: str) -> str:
    t = translator(locale)
    return (
        f'<!doctype html><html lang="{_html_lang(t.locale)}" dir="{"rtl" if t.rtl else "ltr"}">'
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(t(LINK_INVALID_TITLE))}</title>"
        '<link rel="stylesheet" href="static/upload.css"></head>'
        f"<body><main><h1>{html.escape(t(LINK_INVALID_TITLE))}</h1>"
        f'<p id="invalid">{html.escape(t(LINK_INVALID))}</p></main></body></html>'
    )


def _state_json(state: UploadState) -> dict[str, Any]:
    return {
        "id": state.id,
        "name": state.name,
        "relative_path": state.relative_path,
        "size": state.size,
        "received": state.received,
        "complete": state.completed,
        "fingerprint": state.fingerprint,
    }


def _description(body: object) -> tuple[str, str, int, str] | None:
    """(name, relative_path, size, fingerprint) from the page's JSON, or None if malformed."""
    if not isinstance(body, dict):
        return None
    name, path = body.get("name"), body.get("relative_path", "")
    size, fingerprint = body.get("size"), body.get("fingerprint")
    if not (isinstance(name, str) and isinstance(path, str) and isinstance(fingerprint, str)):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_BYTES:
        return None
    return name, path, size, fingerprint


def _offset(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 16:
        return None
    number = int(value)
    return number if number <= MAX_FILE_BYTES else None


async def _capped(body: web.Request, limit: int) -> AsyncIterator[bytes]:
    """The request body as it streams in; a chunk over `limit` is refused (and cut off), and
    one that stops coming, or comes too slowly, ends with TimeoutError (an OSError: the
    store keeps what arrived)."""
    total = 0
    limits = limits_of(body.app)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.chunk_seconds
    while True:
        async with asyncio.timeout_at(min(loop.time() + limits.piece_seconds, deadline)):
            piece = await body.content.read(READ_BYTES)
        if not piece:
            return
        total += len(piece)
        if total > limit:
            raise UploadRefused(UploadProblem.BAD_REQUEST)
        yield piece


class UploadPage:
    def __init__(
        self,
        tokens: UploadTokens,
        store: UploadStore,
        announce: Announce,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.tokens = tokens
        self.store = store
        self.announce = announce
        self.clock = clock
        # One "done" at a time per case, so two pages cannot announce the same files twice.
        self._done_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def show(self, request: web.Request) -> web.StreamResponse:
        grant = await self._grant(request)
        if grant is None:
            locale = await asyncio.to_thread(self.tokens.locale_of, request.match_info["token"])
            page = render_invalid(locale or "en")
            return secured(web.Response(status=404, text=page, content_type="text/html"))
        return secured(web.Response(text=render_page(grant.locale), content_type="text/html"))

    async def list_files(self, request: web.Request) -> web.StreamResponse:
        grant = await self._grant(request)
        if grant is None:
            return await self._invalid(request)
        uploads = await asyncio.to_thread(self.store.uploads_of, grant.case_id)
        return secured(web.json_response({"files": [_state_json(u) for u in uploads]}))

    async def begin(self, request: web.Request) -> web.StreamResponse:
        grant = await self._grant(request)
        if grant is None:
            return await self._invalid(request)
        try:
            description = _description(await request.json())
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            description = None
        if description is None:
            return self._refused(UploadRefused(UploadProblem.BAD_REQUEST), grant)
        name, path, size, fingerprint = description
        try:
            state = await asyncio.to_thread(
                self.store.begin,
                grant,
                name=name,
                relative_path=path,
                size=size,
                fingerprint=fingerprint,
                now=self.clock(),
            )
        except UploadRefused as refused:
            return self._refused(refused, grant, name)
        return secured(web.json_response({**_state_json(state), "chunk_size": CHUNK_BYTES}))

    async def append(self, request: web.Request) -> web.StreamResponse:
        grant = await self._grant(request)
        if grant is None:
            return await self._invalid(request)
        offset = _offset(request.query.get("offset"))
        if offset is None:
            return self._refused(UploadRefused(UploadProblem.BAD_REQUEST), grant)
        if (request.content_length or 0) > MAX_CHUNK_BYTES:
            return secured(web.json_response({"error": "chunk_too_large"}, status=413))
        chunks = _capped(request, MAX_CHUNK_BYTES)
        upload_id = request.match_info["upload_id"]
        try:
            state = await self.store.append(upload_id, grant, offset, chunks, self.clock())
        except UploadRefused as refused:
            return self._refused(refused, grant)
        except OSError as error:
            # The page went away mid-chunk; what arrived is kept and it continues from there.
            log.info("an upload chunk was interrupted (%s)", type(error).__name__)
            return secured(web.json_response({"error": "interrupted"}, status=400))
        return secured(web.json_response({"received": state.received, "complete": state.completed}))

    async def done(self, request: web.Request) -> web.StreamResponse:
        """Tell the chat, once, about every file that arrived and was not announced yet."""
        grant = await self._grant(request)
        if grant is None:
            return await self._invalid(request)
        lock = self._done_locks.get(grant.case_id)
        if lock is None:
            lock = self._done_locks[grant.case_id] = asyncio.Lock()
        async with lock:
            uploads = await asyncio.to_thread(self.store.unannounced, grant.case_id)
            if uploads:
                await self.announce(grant, uploads)
                ids = [upload.id for upload in uploads]
                await asyncio.to_thread(self.store.mark_announced, ids, self.clock())
        log.info("upload page announced %d files", len(uploads))
        return secured(web.json_response({"announced": len(uploads)}))

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        response = web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    async def _grant(self, request: web.Request) -> UploadGrant | None:
        token = request.match_info["token"]
        grant = await asyncio.to_thread(self.tokens.resolve, token, self.clock())
        if grant is not None and grant.case_id.startswith(EXPORT_PREFIX):
            return None  # a link to download a patient's copy (bot/download_page.py)
        return grant

    async def _invalid(self, request: web.Request) -> web.StreamResponse:
        locale = await asyncio.to_thread(self.tokens.locale_of, request.match_info["token"])
        message = translator(locale or "en")(LINK_INVALID)
        body = {"error": "link_invalid", "message": message}
        return secured(web.json_response(body, status=404))

    def _refused(
        self, refused: UploadRefused, grant: UploadGrant, name: str = ""
    ) -> web.StreamResponse:
        problem = refused.problem
        body: dict[str, Any] = {"error": problem.value}
        if problem is UploadProblem.TOO_LARGE:
            body["message"] = translator(grant.locale)(NO_SPACE)
            return secured(web.json_response(body, status=413))
        if problem is UploadProblem.NO_SPACE:
            # 507 Insufficient Storage: the page shows the message and tries again later.
            log.error("the disk is full: an upload-page chunk was not stored")
            body["message"] = translator(grant.locale)(STORE_FULL)
            body["received"] = refused.offset
            return secured(web.json_response(body, status=507))
        if problem is UploadProblem.EMPTY:
            body["message"] = translator(grant.locale)(EMPTY_FILE, name=name)
            return secured(web.json_response(body, status=400))
        if problem is UploadProblem.UNKNOWN_UPLOAD:
            return secured(web.json_response(body, status=404))
        if problem in (UploadProblem.BAD_OFFSET, UploadProblem.ALREADY_COMPLETE):
            body["received"] = refused.offset
            body["complete"] = problem is UploadProblem.ALREADY_COMPLETE
            return secured(web.json_response(body, status=409))
        return secured(web.json_response(body, status=400))


def add_upload_routes(app: web.Application, page: UploadPage) -> None:
    # The page refers to its script and style as "static/…", relative to /u/<token>, so it
    # keeps working behind a proxy that adds a path prefix.
    app.router.add_get("/u/static/{name}", page.static)
    app.router.add_get("/u/{token}", page.show)
    app.router.add_get("/u/{token}/files", page.list_files)
    app.router.add_post("/u/{token}/files", page.begin)
    app.router.add_put("/u/{token}/files/{upload_id}", page.append, name=STREAMED_ROUTE)
    app.router.add_post("/u/{token}/done", page.done)
