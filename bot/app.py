"""Wiring: settings -> database, stores and the pipeline every channel shares."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.config import Settings
from bot.imaging import Imaging, build_imaging
from conversations.events import (
    STORE_SOURCE,
    FileRef,
    Inbound,
    InboundKind,
    UploadLinkRequest,
)
from handlers.casework.operations import Casework
from handlers.ingest.analysis import StoreAccess
from handlers.ingest.ingestor import Ingestor
from handlers.ingest.worker import Worker
from handlers.privacy.erasure import Erasure
from handlers.privacy.export import Export
from handlers.privacy.person import Person
from handlers.privacy.retention import Retention
from handlers.privacy.rights_jobs import RightsJobs
from handlers.updates.delivery import (
    CoordinatorSink,
    DeliveryReport,
    FileOpener,
    ReplySender,
    deliver_pending,
)
from handlers.updates.pipeline import Pipeline
from handlers.updates.transaction import ConversationStore
from storage.audit import PSEUDONYM_KEY_FILE, AuditLog
from storage.conversations import ConversationTables
from storage.data_rights import DataRightsTables
from storage.database import make_engine, prepare_schema, run_once
from storage.delivered import DeliveredCopies
from storage.documents import DocumentStore
from storage.files import FileStore, decode_key, load_key
from storage.jobs import JobStore
from storage.outbox import OutboxStore
from storage.private import private_dir
from storage.queue import CaseQueue
from storage.uploads import UPLOAD_SOURCE, UploadGrant, UploadState, UploadStore, UploadTokens

# Previews are a few hundred kilobytes, an opinion a few megabytes; bots may send up to 50 MB.
MAX_SHOWN_FILE_BYTES = 50 * 1024 * 1024
# An upload untouched this long, its page closed without saying "done", is taken as finished.
UPLOAD_QUIET_PERIOD = timedelta(minutes=10)
# A file left half-written (a spool no upload names, a store write that died) is removed once
# nothing has written to it for this long: a write still under way is never touched.
LEFTOVER_GRACE = timedelta(hours=1)
# Where copies were made decrypted before they went straight into the encrypted store.
OLD_EXPORTS_FOLDER = "exports"


@dataclass
class App:
    settings: Settings
    engine: Engine
    pipeline: Pipeline
    outbox: OutboxStore
    queue: CaseQueue
    documents: DocumentStore
    upload_tokens: UploadTokens
    uploads: UploadStore
    worker: Worker
    casework: Casework
    retention: Retention
    export: Export
    erasure: Erasure
    delivered: DeliveredCopies
    # The running platform channels' file openers, by channel: whichever channel's loop runs
    # the jobs can fetch every channel's files, so none waits for the other's loop.
    openers: dict[str, FileOpener] = field(default_factory=dict)
    # Studies in Orthanc and their viewer (bot/imaging.py); None without ORTHANC_URL.
    imaging: Imaging | None = None

    def announce_uploads(self, grant: UploadGrant, uploads: Sequence[UploadState]) -> None:
        """Files that arrived through the upload page enter the conversation like files sent
        in the chat. The update key names the files, so announcing twice changes nothing."""
        ids = sorted(upload.id for upload in uploads)
        digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:32]
        files = tuple(
            FileRef(
                source=f"{UPLOAD_SOURCE}{upload.id}",
                name=upload.name,
                size=upload.size,
                path=upload.relative_path,
            )
            for upload in uploads
        )
        self.pipeline.handle(
            Inbound(
                channel=grant.channel,
                user_key=grant.user_key,
                chat_key=grant.chat_key,
                update_key=f"upload:{digest}",
                kind=InboundKind.FILES,
                files=files,
            )
        )
        # What the conversation did not take (no job will read it) leaves the disk now.
        self.uploads.release_unclaimed(ids)

    def sweep_leftovers(self) -> None:
        """At start and with the scheduled work: spools nothing will read, files a killed
        process left half-written in the store, and decrypted copies an older version left."""
        self.uploads.remove_leftovers(LEFTOVER_GRACE)
        self.pipeline.files.remove_unfinished(LEFTOVER_GRACE)
        for old in (self.settings.data_dir / OLD_EXPORTS_FOLDER).glob(".export-*"):
            old.unlink(missing_ok=True)

    def sweep_uploads(self, channel: str) -> bool:
        """Files that reached the upload page whose page closed before saying "done" enter
        their conversations on `channel`; parts of uploads abandoned long ago are removed.
        True when files were announced (they wait to be checked)."""
        now = self.pipeline.clock()
        found = self.uploads.sweep(now, UPLOAD_QUIET_PERIOD)
        self.uploads.remove_abandoned(now, timedelta(hours=self.settings.upload_link_hours + 24))
        announced = False
        for grant, uploads in found:
            if grant.channel == channel:
                self.announce_uploads(grant, uploads)
                self.uploads.mark_announced([upload.id for upload in uploads], now)
                announced = True
        return announced

    def scheduled_work(self) -> None:
        """Reminders to patients, idle cases surfaced to coordinators, and the retention rules
        (handlers/privacy/retention.py): read from the rows themselves, so a restart loses nothing
        and nothing is done twice. With several workers, one at a time does it."""
        with run_once(self.engine, "scheduled-work") as mine:
            if mine:
                self.casework.remind(self.settings.reminder_days, self.settings.max_reminders)
                self.casework.surface_idle(self.settings.idle_days)
                self.retention.run()
                self.sweep_leftovers()

    def close(self) -> None:
        if self.imaging is not None:
            self.imaging.orthanc.close()
        self.worker.close()
        self.engine.dispose()

    async def after_update(
        self,
        senders: dict[str, ReplySender],
        openers: dict[str, FileOpener],
        coordinators: CoordinatorSink | None,
    ) -> DeliveryReport:
        """Run the work an update queued (files to store), then deliver every pending reply."""
        await asyncio.to_thread(self.pipeline.run_jobs, openers)
        return await self.deliver(senders, coordinators)

    async def deliver(
        self, senders: dict[str, ReplySender], coordinators: CoordinatorSink | None
    ) -> DeliveryReport:
        return await deliver_pending(
            self.outbox, senders, coordinators, self.pipeline.clock, links=self
        )

    def upload_link(
        self, channel: str, chat_key: str, request: UploadLinkRequest, locale: str
    ) -> tuple[str, int] | None:
        base = self.settings.public_base_url
        if base is None:
            return None
        hours = self.settings.upload_link_hours
        token = self.upload_tokens.issue(
            case_id=request.case_id,
            channel=channel,
            user_key=request.user_key or chat_key,
            chat_key=chat_key,
            locale=locale,
            now=self.pipeline.clock(),
            ttl=timedelta(hours=hours),
        )
        return f"{base}/u/{token}", hours


def build_app(settings: Settings) -> App:
    private_dir(settings.data_dir)
    engine = make_engine(settings.database_url)
    prepare_schema(engine)
    key = load_key(settings.file_encryption_key, settings.data_dir)
    audit = AuditLog(engine, load_key(None, settings.data_dir, PSEUDONYM_KEY_FILE))
    old_keys = tuple(decode_key(old) for old in settings.file_encryption_old_keys)
    files_root = settings.data_dir / "files"
    files = FileStore(files_root, key, old_keys)
    documents = DocumentStore(engine)
    worker = Worker(settings.analysis_memory_mb, settings.analysis_timeout_seconds)
    ingestor = Ingestor(
        files,
        StoreAccess(str(files_root), key, old_keys),
        documents,
        worker,
        settings.case_quota_bytes,
        settings.stale_imaging_days,
        clock=lambda: datetime.now(UTC),
    )
    uploads = UploadStore(
        engine, settings.data_dir / "uploads", settings.case_quota_bytes, files.sealer
    )
    upload_tokens = UploadTokens(engine)
    pipeline = Pipeline(
        ConversationStore(ConversationTables(engine), audit),
        JobStore(engine),
        files,
        ingestor=ingestor,
        uploads=uploads,
        default_locale=settings.default_locale,
    )
    tables = DataRightsTables(engine)
    delivered = DeliveredCopies(settings.data_dir / "console-files")
    export = Export(
        tables,
        files,
        documents,
        audit,
        upload_tokens,
        clock=lambda: datetime.now(UTC),
        default_locale=settings.default_locale,
    )
    imaging = build_imaging(settings, engine, files, key, audit)
    erasure = Erasure(
        tables,
        files,
        documents,
        uploads,
        audit,
        clock=lambda: datetime.now(UTC),
        delivered=delivered,
        default_locale=settings.default_locale,
        imaging=imaging.push if imaging is not None else None,
    )
    pipeline.data_rights = RightsJobs(
        tables,
        pipeline.jobs,
        export,
        erasure,
        clock=lambda: datetime.now(UTC),
        default_locale=settings.default_locale,
    )

    def download_link(holder: str, person: Person, locale: str) -> tuple[str, int] | None:
        """A private link to a patient's copy (bot/download_page.py), where there is a web
        app to serve it."""
        if settings.public_base_url is None:
            return None
        hours = settings.upload_link_hours
        token = upload_tokens.issue(
            case_id=holder,
            channel=person.channel,
            user_key=person.user_key,
            chat_key=person.chat_key,
            locale=locale,
            now=datetime.now(UTC),
            ttl=timedelta(hours=hours),
        )
        return f"{settings.public_base_url}/x/{token}", hours

    export.download_link = download_link
    return App(
        settings,
        engine,
        pipeline,
        OutboxStore(engine),
        CaseQueue(engine),
        documents,
        upload_tokens,
        uploads,
        worker,
        Casework(
            engine,
            pipeline,
            files,
            documents,
            settings.coordinator_ids,
            audit,
            clock=lambda: datetime.now(UTC),
            followup_questions=settings.followup_questions,
        ),
        Retention(
            engine,
            erasure,
            clock=lambda: datetime.now(UTC),
            draft_days=settings.retention_draft_days,
            warning_days=settings.retention_warning_days,
            closed_days=settings.retention_closed_days,
        ),
        export,
        erasure,
        delivered,
        imaging=imaging,
    )


def read_stored(app: App, source: str) -> bytes:
    """A file Huizhen keeps in the store and shows (a preview, an opinion), by its source."""
    if not source.startswith(STORE_SOURCE):
        raise ValueError("not a stored file")
    with app.pipeline.files.open(source.removeprefix(STORE_SOURCE)) as stream:
        return stream.read(MAX_SHOWN_FILE_BYTES)
