"""Imaging in Orthanc, wired: the push in a background thread and the coordinators' lines.
The web app's signed viewer is in bot/viewer_web.py."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from bot.config import Settings
from conversations.i18n import bilingual
from handlers.imaging.pacs import PacsPush
from handlers.imaging.viewer import ViewerLinks
from records.markers import N_
from storage.audit import AuditLog
from storage.files import FileStore
from storage.orthanc import OrthancClient
from storage.pacs import PacsTables

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
