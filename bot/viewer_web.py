"""The web app's signed viewer (/v/<token>/…): a proxy to the de-identified copy of one study
in Orthanc, never an open Orthanc. Apart from bot/imaging.py so that the bot starts without
aiohttp when it serves no web app (the console)."""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from bot.imaging import Imaging
from storage.pacs import StudyRow

log = logging.getLogger(__name__)


IMAGING_KEY: web.AppKey[Imaging] = web.AppKey("imaging", Imaging)
_VIEWER_STATIC = ("web-viewer/app/", "web-viewer/libs/")
# Not Content-Encoding: the client below hands over the body already decompressed.
_FORWARDED_HEADERS = ("Content-Type", "Cache-Control", "ETag")


def add_viewer_routes(app: web.Application, imaging: Imaging) -> None:
    app[IMAGING_KEY] = imaging
    app.router.add_get("/v/{token}", _landing_redirect)
    app.router.add_get("/v/{token}/", _landing)
    app.router.add_get("/v/{token}/{path:.+}", _proxied)


def _study(request: web.Request) -> StudyRow:
    imaging = request.app[IMAGING_KEY]
    study_id = imaging.links.study_of(request.match_info["token"])
    study = imaging.tables.study(study_id) if study_id is not None else None
    if study is None or not study.orthanc_deidentified:
        raise web.HTTPNotFound(text="not found")
    return study


async def _landing_redirect(request: web.Request) -> web.StreamResponse:
    _study(request)
    raise web.HTTPFound(f"/v/{request.match_info['token']}/")


async def _landing(request: web.Request) -> web.Response:
    """The study's series, each opening Orthanc's viewer (relative links stay inside the
    signed path). Opening it is recorded in the audit log."""
    imaging = request.app[IMAGING_KEY]
    study = _study(request)
    series = await asyncio.to_thread(imaging.orthanc.series_of, study.orthanc_deidentified)
    reference = await asyncio.to_thread(imaging.tables.reference_of, study.case_id)
    await asyncio.to_thread(_audit_view, imaging, reference, study.id)
    items = "".join(
        f'<li><a href="web-viewer/app/viewer.html?series={html.escape(one)}">{number}</a></li>'
        for number, one in enumerate(series, start=1)
    )
    page = f"<!doctype html><meta charset=utf-8><title>{len(series)}</title><ol>{items}</ol>"
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _audit_view(imaging: Imaging, reference: str, study_id: int) -> None:
    with imaging.tables.engine.begin() as conn:
        imaging.audit.append(
            conn,
            at=datetime.now(UTC),
            actor="viewer-link",
            action="viewer_opened",
            subject=reference,
            details={"study": study_id},
        )


async def _proxied(request: web.Request) -> web.StreamResponse:
    imaging = request.app[IMAGING_KEY]
    study = _study(request)
    path = request.match_info["path"]
    if not await asyncio.to_thread(_allowed, imaging, study, path):
        raise web.HTTPNotFound(text="not found")
    headers = {"Accept": request.headers.get("Accept", "*/*")}
    if imaging.settings.orthanc_user is not None:
        headers["Authorization"] = aiohttp.encode_basic_auth(
            imaging.settings.orthanc_user, imaging.settings.orthanc_password or ""
        )
    url = f"{imaging.orthanc.url}/{path}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        session.get(url, params=request.query, headers=headers) as upstream,
    ):
        response = web.StreamResponse(status=upstream.status)
        for name in _FORWARDED_HEADERS:
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            # The viewer moved on (a slice scrolled past) before the whole answer went out.
            log.debug("a viewer request was left before its end")
        return response


def _allowed(imaging: Imaging, study: StudyRow, path: str) -> bool:
    """Orthanc's viewer files, and this study's series and instances; DICOMweb for this
    study's UID only. Everything else of Orthanc stays out of reach."""
    if ".." in path.split("/"):
        return False
    if path.startswith(_VIEWER_STATIC):
        return True
    if path.startswith(f"dicom-web/studies/{study.deidentified_uid}"):
        rest = path.removeprefix(f"dicom-web/studies/{study.deidentified_uid}")
        return rest == "" or rest.startswith("/")
    parts = path.split("/")
    members = imaging.members(study.orthanc_deidentified)
    if len(parts) == 3 and parts[:2] in (
        ["web-viewer", "series"],
        ["web-viewer", "is-stable-series"],
    ):
        return parts[2] in members
    if len(parts) == 3 and parts[:2] == ["web-viewer", "instances"]:
        # "jpeg95-<instance id>_<frame>": the instance must be one of this study's.
        instance = parts[2].partition("-")[2].rpartition("_")[0]
        return instance in members
    if len(parts) == 3 and parts[0] == "instances" and parts[2] == "file":
        return parts[1] in members
    return False
