"""Storing and checking the files of one conversation's pending jobs, as one batch.

Each file is streamed into the encrypted store, recognised as already sent if it was, and
checked in the worker process (archives unpacked, DICOM headers read). Then the case's DICOM
studies are summarised and flagged, previews drawn for new series, and one report goes back to
the conversation, which tells the patient what arrived.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from typing import Any, BinaryIO

from conversations.effects import IngestFile
from conversations.state import ConversationState
from handlers.ingest.analysis import (
    Analysis,
    AnalysisRequest,
    Entry,
    PreviewRequest,
    StoreAccess,
    analyse,
    make_previews,
)
from handlers.ingest.worker import Worker, WorkerFailed
from records.classify import FileKind
from records.dicom import DicomInstance, StudySummary, flags, summarize
from records.report import FileCheck, FilesReport, FlagLine, MemberProblem, StudyLine
from storage.documents import DocumentRow, DocumentStore
from storage.files import MAX_FILE_BYTES, FileStore, FileTooLarge, out_of_space
from storage.uploads import UPLOAD_SOURCE

log = logging.getLogger(__name__)

PHOTO_KINDS = frozenset({FileKind.IMAGE.value})
DOCUMENT_KINDS = frozenset({FileKind.PDF.value, FileKind.WORD.value, FileKind.TEXT.value})
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
CONTACT_SHEET_TILES = 16
MAX_PREVIEWS_PER_BATCH = 12

Opener = Callable[[IngestFile], BinaryIO]
Progress = Callable[[int, int], None]


class PassingFault(Exception):
    """The file could not be fetched this time (the network); the job is tried again."""


class StoreFull(Exception):
    """The disk is full, and the file waits safely where it is (the upload page's spool, which
    the patient cannot send it through again): its job waits for space, however long."""


def instance_json(instance: DicomInstance) -> str:
    return json.dumps(asdict(instance), default=str, ensure_ascii=False)


def instance_from_json(text: str) -> DicomInstance:
    data: dict[str, Any] = json.loads(text)
    for item in fields(DicomInstance):
        value = data.get(item.name)
        if isinstance(value, str) and "date" in item.name:
            data[item.name] = date.fromisoformat(value)
        elif isinstance(value, list):  # JSON has no tuples
            data[item.name] = tuple(value)
    return DicomInstance(**data)


def study_key(study_uid: str) -> str:
    """A short stable id for button data (Telegram allows 64 bytes)."""
    return hashlib.sha256(study_uid.encode()).hexdigest()[:10]


@dataclass
class Batch:
    """What one run found, before it becomes a report."""

    checks: list[FileCheck] = field(default_factory=list)
    new_rows: list[DocumentRow] = field(default_factory=list)


class Ingestor:
    def __init__(
        self,
        files: FileStore,
        store_access: StoreAccess,
        documents: DocumentStore,
        worker: Worker,
        quota_bytes: int,
        stale_days: Mapping[str, int],
        clock: Callable[[], datetime],
    ) -> None:
        self.files = files
        self.store_access = store_access
        self.documents = documents
        self.worker = worker
        self.quota_bytes = quota_bytes
        self.stale_days = stale_days
        self.clock = clock

    def store_and_check(
        self, effect: IngestFile, opener: Opener, progress: Progress, batch: Batch
    ) -> None:
        """One file: raises PassingFault when fetching it failed for a reason that may pass,
        StoreFull when an upload-page file found the disk full."""
        file = effect.file
        check = FileCheck(file_id=effect.file_id, name=file.name)
        left = self.quota_bytes - self.documents.bytes_used(effect.case_id)
        if file.size is not None and file.size > left:
            batch.checks.append(check.model_copy(update={"problem": "quota", "kept": False}))
            return
        try:
            with opener(effect) as stream:
                stored = self.files.put(stream, max_bytes=min(MAX_FILE_BYTES, max(0, left)))
        except FileTooLarge:
            problem = "quota" if left < MAX_FILE_BYTES else "too_large"
            batch.checks.append(check.model_copy(update={"problem": problem, "kept": False}))
            return
        except Exception as error:
            if out_of_space(error):
                self._out_of_space(effect, batch, check)
                return
            if not isinstance(error, OSError | ValueError):
                log.warning("fetching a file failed (%s)", type(error).__name__)
                raise PassingFault(type(error).__name__) from error
            # Never the file's name in a log line: it can say what the illness is.
            log.warning("a file could not be read from its channel (%s)", type(error).__name__)
            batch.checks.append(check.model_copy(update={"problem": "unreadable", "kept": False}))
            return
        # A job run again after a crash finds the row its first run wrote: not a duplicate.
        earlier = self.documents.names_with(effect.case_id, stored.sha256, effect.file_id) or [
            row.original_name
            for row in batch.new_rows
            if row.sha256 == stored.sha256 and row.case_id == effect.case_id
        ]
        if earlier:
            update = {"problem": "duplicate", "duplicate_of": earlier[0], "kept": False}
            batch.checks.append(check.model_copy(update=update))
            return
        try:
            request = AnalysisRequest(self.store_access, stored.sha256, stored.size, left)
            analysis = self.worker.call(analyse, request, progress)
        except WorkerFailed as failure:
            if failure.reason == "no_space":
                # Unpacking an archive filled the disk (the worker removed what it added).
                if stored.created:
                    self.files.delete(stored.sha256)
                self._out_of_space(effect, batch, check)
                return
            log.warning("a file could not be checked (%s)", failure.reason)
            analysis = Analysis(
                kind=FileKind.UNKNOWN.value,
                entries=(Entry(stored.sha256, stored.size, FileKind.UNKNOWN.value),),
                problem="not_checked",
            )
        batch.checks.append(
            self._record(effect, stored.sha256, stored.size, stored.created, analysis, batch)
        )
        log.info(
            "file stored",
            extra={
                "kind": analysis.kind,
                "bytes": stored.size,
                "entries": len(analysis.entries),
                "problem": analysis.problem or None,
            },
        )

    def _out_of_space(self, effect: IngestFile, batch: Batch, check: FileCheck) -> None:
        """Nothing of the file is kept (put() removed its partial copy). A chat file is sent
        again by the patient, who is told so; an upload-page file waits in its spool."""
        upload = effect.file.source.startswith(UPLOAD_SOURCE)
        log.error(
            "the disk is full: a file could not be stored",
            extra={"case_id": effect.case_id, "waits_in_spool": upload},
        )
        if upload:
            raise StoreFull()
        batch.checks.append(check.model_copy(update={"problem": "no_space", "kept": False}))

    def _record(
        self,
        effect: IngestFile,
        sha256: str,
        size: int,
        created: bool,
        analysis: Analysis,
        batch: Batch,
    ) -> FileCheck:
        named_as_scan = effect.file.name.lower().endswith(DICOM_SUFFIXES)
        if analysis.kind == FileKind.UNKNOWN.value and not analysis.problem and named_as_scan:
            # Named as a scan, but no scan inside: say so rather than "a file".
            analysis = dataclasses.replace(analysis, problem="not_dicom")
        archive = analysis.kind in (FileKind.ZIP.value, FileKind.TAR.value)
        if archive and not analysis.entries and analysis.programs_left_out:
            # Nothing but programs inside: kept, the archive itself would carry them on.
            analysis = dataclasses.replace(analysis, problem="executable")
        check = FileCheck(
            file_id=effect.file_id,
            name=effect.file.name,
            kind=analysis.kind,
            problem=analysis.problem,
        )
        refused = analysis.problem and (
            analysis.kind in (FileKind.ZIP.value, FileKind.TAR.value)
            or analysis.problem in ("executable", "empty")
        )
        if refused:
            # Nothing of a refused file is kept: not the archive, not a member.
            if created:
                self.files.delete(sha256)
            return check.model_copy(update={"kept": False})
        now = self.clock()
        rows = [
            DocumentRow(
                file_id=effect.file_id,
                case_id=effect.case_id,
                item=effect.item,
                sha256=sha256,
                size=size,
                original_name=effect.file.name,
                stored_at=now,
                kind=analysis.kind,
                path=effect.file.path,
                problem=analysis.problem,
                details_json=_details(analysis.entries[0]) if not archive else "",
            )
        ]
        if archive:
            rows += [
                DocumentRow(
                    file_id=f"{effect.file_id}.{index}",
                    case_id=effect.case_id,
                    item=effect.item,
                    sha256=entry.sha256,
                    size=entry.size,
                    original_name=entry.path.rsplit("/", 1)[-1],
                    stored_at=now,
                    kind=entry.kind,
                    path=entry.path,
                    parent_file_id=effect.file_id,
                    problem=entry.problem,
                    details_json=_details(entry),
                )
                for index, entry in enumerate(analysis.entries, 1)
            ]
        self.documents.add(rows)
        batch.new_rows += rows
        contents = rows[1:] if archive else rows
        return check.model_copy(
            update={
                "members": len(contents) if archive else 0,
                "dicom_files": sum(1 for r in contents if r.kind == FileKind.DICOM.value),
                "photos": sum(1 for r in contents if r.kind in PHOTO_KINDS),
                "documents": sum(1 for r in contents if r.kind in DOCUMENT_KINDS),
                "unreadable": sum(1 for r in contents if r.problem),
                "programs_left_out": analysis.programs_left_out,
                "member_problems": [
                    MemberProblem(path=r.path, kind=r.kind, problem=r.problem)
                    for r in contents
                    if archive and r.problem
                ],
            }
        )

    def report(
        self, case_id: str, state: ConversationState | None, batch: Batch, progress: Progress
    ) -> FilesReport:
        """The batch's files, and the case's DICOM studies that this batch added to."""
        report = FilesReport(files=batch.checks, flags=_missing_from_disc(batch.new_rows))
        new_series = {
            instance_from_json(row.details_json).series_uid
            for row in batch.new_rows
            if row.kind == FileKind.DICOM.value and row.details_json
        }
        if not new_series:
            return report
        rows = [
            row
            for row in self.documents.for_case(case_id)
            if row.kind == FileKind.DICOM.value and row.details_json
        ]
        by_sop: dict[str, tuple[DicomInstance, DocumentRow]] = {}
        for row in rows:
            instance = instance_from_json(row.details_json)
            by_sop.setdefault(instance.sop_uid, (instance, row))
        studies = summarize(instance for instance, _ in by_sop.values())
        touched = [s for s in studies if any(x.series_uid in new_series for x in s.series)]
        previews = self._previews(touched, by_sop.values(), progress)
        area = state.draft.area if state else None
        found = flags(
            touched,
            today=self.clock().date(),
            stale_after_days=self.stale_days.get(area or ""),
            case_patient_name=(state.draft.patient_name or "") if state else "",
            case_birth_date=state.draft.patient_birth_date if state else None,
        )
        report.studies = [
            StudyLine(
                key=study_key(study.study_uid),
                study_date=study.study_date,
                modalities=list(study.modalities),
                body_parts=list(study.body_parts),
                description=study.description,
                series=len(study.series),
                images=study.images,  # instances with pixels, not reports
                patient_name=study.patient_name,
                patient_birth_date=study.patient_birth_date,
                preview=previews.get(study.study_uid, ("", "", ""))[0],
                sheet=previews.get(study.study_uid, ("", "", ""))[1],
                preview_problem=previews.get(study.study_uid, ("", "", ""))[2],
            )
            for study in touched
        ]
        report.flags += [
            FlagLine(
                code=str(flag.code),
                study_key=study_key(flag.study_uid) if flag.study_uid else "",
                age_days=flag.age_days,
                missing=flag.missing,
                stale_after_days=self.stale_days.get(area or ""),
            )
            for flag in found
        ]
        self._record_previews(case_id, touched, previews)
        return report

    def _previews(
        self,
        studies: Sequence[StudySummary],
        instances: Any,
        progress: Progress,
    ) -> dict[str, tuple[str, str, str]]:
        """Study uid -> (preview of its largest series, contact sheet, why there is no
        preview), drawn in the worker."""
        by_series: dict[str, list[tuple[int, str]]] = {}
        for instance, row in instances:
            by_series.setdefault(instance.series_uid, []).append(
                (instance.instance_number or 0, row.sha256)
            )
        series_requests: list[tuple[str, str]] = []
        sheet_requests: list[tuple[str, tuple[str, ...]]] = []
        largest: dict[str, str] = {}
        for study in studies[:MAX_PREVIEWS_PER_BATCH]:
            images = [s for s in study.series if s.series_uid in by_series]
            if not images:
                continue
            biggest = max(images, key=lambda s: s.instances)
            ordered = sorted(by_series[biggest.series_uid])
            largest[study.study_uid] = biggest.series_uid
            series_requests.append((biggest.series_uid, ordered[len(ordered) // 2][1]))
            step = max(1, len(ordered) // CONTACT_SHEET_TILES)
            tiles = tuple(sha for _, sha in ordered[::step][:CONTACT_SHEET_TILES])
            sheet_requests.append((study.study_uid, tiles))
        if not series_requests:
            return {}
        try:
            drawn = self.worker.call(
                make_previews,
                PreviewRequest(self.store_access, tuple(series_requests), tuple(sheet_requests)),
                progress,
            )
        except WorkerFailed as failure:
            log.warning("previews could not be drawn (%s)", failure.reason)
            return {}
        return {
            study_uid: (
                drawn.series.get(series_uid, ""),
                drawn.sheets.get(study_uid, ""),
                drawn.problems.get(series_uid, ""),
            )
            for study_uid, series_uid in largest.items()
        }

    def _record_previews(
        self,
        case_id: str,
        studies: Sequence[StudySummary],
        previews: Mapping[str, tuple[str, str, str]],
    ) -> None:
        """Kept for the coordinator: the case package shows them with the study table."""
        now = self.clock()
        rows = []
        for study in studies:
            preview, sheet, _ = previews.get(study.study_uid, ("", "", ""))
            for kind, sha256 in (("preview", preview), ("contact_sheet", sheet)):
                if sha256:
                    rows.append(
                        DocumentRow(
                            file_id=f"{case_id}:{kind}:{sha256[:16]}",
                            case_id=case_id,
                            item="imaging",
                            sha256=sha256,
                            size=self.files.path_of(sha256).stat().st_size,
                            original_name=f"{kind}-{study_key(study.study_uid)}.png",
                            stored_at=now,
                            kind=kind,
                            path=study.study_uid,
                        )
                    )
        self.documents.add(rows)


def _missing_from_disc(rows: Sequence[DocumentRow]) -> list[FlagLine]:
    """A disc's index (DICOMDIR) lists its files: those that did not arrive with it. Only
    names are compared, within what was sent together; nothing the index names is opened."""
    present: dict[str | None, set[str]] = {}
    for row in rows:
        present.setdefault(row.parent_file_id, set()).add(row.path.upper())
    flags = []
    for row in rows:
        if row.kind != FileKind.DICOMDIR.value or not row.details_json:
            continue
        folder = row.path.rpartition("/")[0]
        prefix = f"{folder}/" if folder else ""
        referenced = json.loads(row.details_json).get("referenced", [])
        # CDs are ISO 9660: names in capitals, sometimes with a ";1" version suffix.
        siblings = present.get(row.parent_file_id, set())
        missing = [
            path
            for path in referenced
            if f"{prefix}{path}".upper().removesuffix(";1") not in siblings
        ]
        if missing:
            flags.append(FlagLine(code="missing_from_disc", missing=len(missing)))
    return flags


def _details(entry: Entry) -> str:
    if entry.instance is not None:
        return instance_json(entry.instance)
    if entry.dicomdir is not None:
        return json.dumps(asdict(entry.dicomdir))
    return ""
