"""Imaging in Orthanc, wired: the push in a background thread, the coordinators' lines, and
the web app's signed viewer (/v/<token>/…), a proxy to the de-identified copy of one study
only, never an open Orthanc."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from sqlalchemy import Engine

from bot.config import Settings
from conversations.i18n import bilingual
from handlers.imaging.pacs import PacsPush
from handlers.imaging.viewer import ViewerLinks
from records.markers import N_
from storage.audit import AuditLog
from storage.files import FileStore
from storage.orthanc import OrthancClient
from storage.pacs import PacsTables, StudyRow

log = logging.getLogger(__name__)

NOT_READY = N_("Viewer not ready yet: the images are still on their way to the image server.")
BURNED_IN = N_("Text may be burned into these images (a name or an id): look before sharing them.")
VIEWER = N_("Viewer (de-identified copy, link valid for one hour): {link}")

# How often the background push looks for new studies and retries that are due.
PUSH_INTERVAL_SECONDS = 5.0


@dataclass
class Imaging:
    settings: Settings
    tables: PacsTables
    orthanc: OrthancClient
    push: PacsPush
    links: ViewerLinks
    audit: AuditLog
    # The series and instances of each de-identified study the viewer asked about lately:
    # the viewer fetches every slice, and each fetch is checked against this list.
    _members: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)

    def members(self, orthanc_study: str) -> frozenset[str]:
        """Orthanc ids of the study's series and instances, asked again after a minute."""
        cached = self._members.get(orthanc_study)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = frozenset(self.orthanc.series_of(orthanc_study)) | frozenset(
            self.orthanc.instances_of(orthanc_study)
        )
        if len(self._members) > 1000:
            self._members.clear()
        self._members[orthanc_study] = (time.monotonic() + 60, found)
        return found

    def lines_for_case(self, case_id: str) -> list[str]:
        """What `huizhen queue show` and the case card say of the case's studies."""
        lines = []
        for study in self.tables.for_cases([case_id]):
            if not study.orthanc_deidentified:
                lines.append(bilingual(NOT_READY))
                continue
            link = self.links.link(study.id) or f"/v/{self.links.token(study.id)}/"
            lines.append(bilingual(VIEWER, link=link))
            if study.burned_in:
                lines.append(bilingual(BURNED_IN))
        return lines


def build_imaging(
    settings: Settings, engine: Engine, files: FileStore, key: bytes, audit: AuditLog
) -> Imaging | None:
    if settings.orthanc_url is None:
        return None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
    tables = PacsTables(engine)
    orthanc = OrthancClient(settings.orthanc_url, settings.orthanc_user, settings.orthanc_password)
    push = PacsPush(tables, orthanc, files, clock, keep_dates=settings.orthanc_keep_dates)
    links = ViewerLinks(key, settings.public_base_url, clock)
    return Imaging(settings, tables, orthanc, push, links, audit)


class PushLoop:
    """Runs the push every few seconds in a thread of its own: a 500-slice study going to
    Orthanc never holds up the patients' file checks or replies."""

    def __init__(self, imaging: Imaging, interval: float = PUSH_INTERVAL_SECONDS) -> None:
        self.imaging = imaging
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pacs-push", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.imaging.push.run_pending()
            except Exception as error:  # the database away: the rows say what is left
                log.error("the Orthanc push round failed (%s)", type(error).__name__)
            self._stop.wait(self.interval)


@contextlib.contextmanager
def pushing(imaging: Imaging | None, interval: float = PUSH_INTERVAL_SECONDS) -> Iterator[None]:
    """The push running for as long as the block runs, whichever channel serves (the
    console included); nothing without ORTHANC_URL."""
    if imaging is None:
        yield
        return
    loop = PushLoop(imaging, interval)
    loop.start()
    try:
        yield
    finally:
        loop.stop()


# --- the signed viewer -----------------------------------------------------------------

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
