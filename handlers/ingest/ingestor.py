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
from typing import Any, BinaryIO, Literal

from conversations.effects import IngestFile
from conversations.state import ConversationState
from handlers.ingest.analysis import (
    Analysis,
    AnalysisBatch,
    AnalysisOutcome,
    AnalysisRequest,
    Entry,
    PreviewRequest,
    StoreAccess,
    analyse,
    analyse_batch,
    make_previews,
    unpacked_bytes,
)
from handlers.ingest.worker import Worker, WorkerFailed
from records.classify import FileKind
from records.dicom import DicomInstance, StudySummary, flags, summarize
from records.report import FileCheck, FilesReport, FlagLine, MemberProblem, StudyLine
from storage.documents import DocumentRow, DocumentStore
from storage.files import MAX_FILE_BYTES, FileStore, FileTooLarge, StoredFile, out_of_space
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


Outcome = Literal["done", "store_full", "passing"]
# (the file's number among those checked together, 0-based; an archive's members done, of)
ChunkProgress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class _Put:
    """A file in the store, waiting to be checked with the others."""

    index: int
    effect: IngestFile
    stored: StoredFile
    left: int  # what the case could still hold before it


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
        self, items: Sequence[tuple[IngestFile, Opener]], progress: ChunkProgress, batch: Batch
    ) -> list[Outcome]:
        """Several files of one session, stored and checked together: one quota sum, one
        flush to disk, one duplicate lookup, one call into the worker and one insert for all
        of them, where each file alone took one of each. Returns each file's outcome:
        "done" (its check is in `batch`), "store_full" (an upload-page file found the disk
        full: it waits in its spool) or "passing" (fetching it failed for a reason that may
        pass; its job is tried again). A file that fails is reported as when sent alone, and
        the others are kept."""
        outcomes: list[Outcome] = ["done"] * len(items)
        checks: dict[int, FileCheck] = {}
        pending: list[_Put] = []
        used: dict[str, int] = {}
        for index, (effect, opener) in enumerate(items):
            if effect.case_id not in used:
                used[effect.case_id] = self.documents.bytes_used(effect.case_id)
            left = self.quota_bytes - used[effect.case_id]
            try:
                put = self._put(effect, opener, left)
            except StoreFull:
                outcomes[index] = "store_full"
                continue
            except PassingFault:
                outcomes[index] = "passing"
                continue
            if isinstance(put, FileCheck):
                checks[index] = put
                continue
            if any(
                p.stored.sha256 == put.sha256 and p.effect.case_id == effect.case_id
                for p in pending
            ):
                # The same content twice among them: the first is checked and recorded
                # before the second is looked at, which is then told as a duplicate.
                self._check_stored(pending, checks, outcomes, progress, batch)
                pending = []
            pending.append(_Put(index, effect, put, left))
            used[effect.case_id] += put.size
        self._check_stored(pending, checks, outcomes, progress, batch)
        batch.checks += [checks[index] for index in sorted(checks)]
        return outcomes

    def _put(self, effect: IngestFile, opener: Opener, left: int) -> StoredFile | FileCheck:
        """The file into the store (not yet flushed to disk), or why it could not go there.
        Raises PassingFault or StoreFull (see store_and_check)."""
        file = effect.file
        check = FileCheck(file_id=effect.file_id, name=file.name)
        if file.size is not None and file.size > left:
            return check.model_copy(update={"problem": "quota", "kept": False})
        try:
            with opener(effect) as stream:
                # Flushed to disk once for all the files checked together, before any row
                # names them (_check_stored).
                return self.files.put(
                    stream, max_bytes=min(MAX_FILE_BYTES, max(0, left)), durable=False
                )
        except FileTooLarge:
            problem = "quota" if left < MAX_FILE_BYTES else "too_large"
            return check.model_copy(update={"problem": problem, "kept": False})
        except Exception as error:
            if out_of_space(error):
                return self._out_of_space(effect, check)
            if not isinstance(error, OSError | ValueError):
                log.warning("fetching a file failed (%s)", type(error).__name__)
                raise PassingFault(type(error).__name__) from error
            # Never the file's name in a log line: it can say what the illness is.
            log.warning("a file could not be read from its channel (%s)", type(error).__name__)
            return check.model_copy(update={"problem": "unreadable", "kept": False})

    def _check_stored(
        self,
        pending: list[_Put],
        checks: dict[int, FileCheck],
        outcomes: list[Outcome],
        progress: ChunkProgress,
        batch: Batch,
    ) -> None:
        if not pending:
            return
        self.files.flush_to_disk()
        known: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for case_id in {put.effect.case_id for put in pending}:
            shas = [put.stored.sha256 for put in pending if put.effect.case_id == case_id]
            known[case_id] = self.documents.names_by_sha(case_id, shas)
        to_check: list[_Put] = []
        for put in pending:
            effect, stored = put.effect, put.stored
            # A job run again after a crash finds the row its first run wrote: not a
            # duplicate.
            earlier = [
                name
                for file_id, name in known[effect.case_id].get(stored.sha256, [])
                if file_id != effect.file_id
            ] or [
                row.original_name
                for row in batch.new_rows
                if row.sha256 == stored.sha256 and row.case_id == effect.case_id
            ]
            if earlier:
                update = {"problem": "duplicate", "duplicate_of": earlier[0], "kept": False}
                check = FileCheck(file_id=effect.file_id, name=effect.file.name)
                checks[put.index] = check.model_copy(update=update)
            else:
                to_check.append(put)
        rows: list[DocumentRow] = []
        unpacked: dict[str, int] = {}
        for put, result in zip(to_check, self._analyse(to_check, progress), strict=True):
            effect, stored = put.effect, put.stored
            check = FileCheck(file_id=effect.file_id, name=effect.file.name)
            if unpacked.get(effect.case_id, 0) + stored.size > put.left and (
                not isinstance(result, Analysis) or not unpacked_bytes(result)
            ):
                # Archives checked just before it filled what the case may hold.
                if stored.created and not self._named_elsewhere(stored.sha256, rows, batch):
                    self.files.delete(stored.sha256)
                checks[put.index] = check.model_copy(update={"problem": "quota", "kept": False})
                continue
            if result == "no_space":
                # Unpacking an archive filled the disk (the worker removed what it added).
                if stored.created:
                    self.files.delete(stored.sha256)
                try:
                    checks[put.index] = self._out_of_space(effect, check)
                except StoreFull:
                    outcomes[put.index] = "store_full"
                continue
            if isinstance(result, str):
                log.warning("a file could not be checked (%s)", result)
                result = Analysis(
                    kind=FileKind.UNKNOWN.value,
                    entries=(Entry(stored.sha256, stored.size, FileKind.UNKNOWN.value),),
                    problem="not_checked",
                )
            unpacked[effect.case_id] = unpacked.get(effect.case_id, 0) + unpacked_bytes(result)
            checks[put.index], new = self._record(
                effect, stored.sha256, stored.size, stored.created, result, batch
            )
            rows += new
            log.info(
                "file stored",
                extra={
                    "kind": result.kind,
                    "bytes": stored.size,
                    "entries": len(result.entries),
                    "problem": result.problem or None,
                },
            )
        self.documents.add(rows)

    @staticmethod
    def _named_elsewhere(sha256: str, rows: list[DocumentRow], batch: Batch) -> bool:
        return any(row.sha256 == sha256 for row in (*rows, *batch.new_rows))

    def _analyse(self, puts: list[_Put], progress: ChunkProgress) -> list[AnalysisOutcome]:
        """One call into the worker for all of them; should that call fail as a whole (the
        worker killed for time or memory, a crash), each file is checked alone again, so
        only the one at fault is told it could not be checked."""
        requests = [
            AnalysisRequest(self.store_access, put.stored.sha256, put.stored.size, put.left)
            for put in puts
        ]
        if len(requests) > 1:
            try:
                return list(
                    self.worker.call(
                        analyse_batch,
                        AnalysisBatch(tuple(requests)),
                        lambda done, total: progress(puts[done - 1].index + 1, 0, 0),
                    )
                )
            except WorkerFailed as failure:
                log.warning("checking files together failed (%s); one by one", failure.reason)
        results: list[AnalysisOutcome] = []
        unpacked = 0
        for put, request in zip(puts, requests, strict=True):
            request = dataclasses.replace(request, quota_left=max(0, request.quota_left - unpacked))

            def inner(done: int, total: int, index: int = put.index) -> None:
                progress(index, done, total)

            try:
                analysis = self.worker.call(analyse, request, inner)
            except WorkerFailed as failure:
                results.append(failure.reason)
                continue
            unpacked += unpacked_bytes(analysis)
            results.append(analysis)
        return results

    def _out_of_space(self, effect: IngestFile, check: FileCheck) -> FileCheck:
        """Nothing of the file is kept (put() removed its partial copy). A chat file is sent
        again by the patient, who is told so; an upload-page file waits in its spool."""
        upload = effect.file.source.startswith(UPLOAD_SOURCE)
        log.error(
            "the disk is full: a file could not be stored",
            extra={"case_id": effect.case_id, "waits_in_spool": upload},
        )
        if upload:
            raise StoreFull()
        return check.model_copy(update={"problem": "no_space", "kept": False})

    def _record(
        self,
        effect: IngestFile,
        sha256: str,
        size: int,
        created: bool,
        analysis: Analysis,
        batch: Batch,
    ) -> tuple[FileCheck, list[DocumentRow]]:
        """The file's check, and the rows that record it (added with the others checked
        together)."""
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
            return check.model_copy(update={"kept": False}), []
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
        batch.new_rows += rows
        contents = rows[1:] if archive else rows
        summary = check.model_copy(
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
        return summary, rows

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
