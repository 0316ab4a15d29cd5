"""What the worker process does with one stored file: recognise it, unpack archives into the
store, read DICOM headers, and draw previews. Runs in the child (handlers/worker.py): every
function here takes a picklable request and returns a picklable result.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from records.archives import ArchiveLimits, ArchiveRejected, open_archive
from records.classify import FileKind, is_program_name, sniff_stream
from records.dicom import (
    DicomDirIndex,
    DicomInstance,
    DicomUnreadable,
    read_dicomdir,
    read_instance,
)
from records.pdfs import inspect_pdf
from records.previews import PreviewUnavailable, contact_sheet_png, series_preview_png
from storage.files import FileStore, FileTooLarge, out_of_space

Progress = Callable[[int, int], None]

ARCHIVES = (FileKind.ZIP, FileKind.TAR)
# Refused outright: a program has no place in medical records, and may be an attack.
REFUSED = (FileKind.EXECUTABLE,)


@dataclass(frozen=True)
class StoreAccess:
    root: str
    key: bytes
    old_keys: tuple[bytes, ...] = ()

    def open(self) -> FileStore:
        return FileStore(Path(self.root), self.key, self.old_keys)


@dataclass(frozen=True)
class Entry:
    """One stored file: the upload itself, or a member of an archive."""

    sha256: str
    size: int
    kind: str
    path: str = ""  # inside the archive ("" for the file as sent)
    created: bool = True
    instance: DicomInstance | None = None
    dicomdir: DicomDirIndex | None = None
    problem: str = ""


@dataclass(frozen=True)
class AnalysisRequest:
    store: StoreAccess
    sha256: str
    size: int
    quota_left: int
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)


@dataclass(frozen=True)
class Analysis:
    kind: str
    entries: tuple[Entry, ...] = ()
    # Why the file (an archive, as a whole) was refused: nothing of it is kept.
    problem: str = ""
    programs_left_out: int = 0  # members of an archive that were programs, not kept


def analyse(request: AnalysisRequest, progress: Progress) -> Analysis:
    store = request.store.open()
    with store.open(request.sha256) as stream:
        kind = sniff_stream(stream)
        if kind in ARCHIVES:
            return _unpack(store, stream, kind, request, progress)
    entry = _describe(store, request.sha256, request.size, kind, "")
    return Analysis(kind=kind.value, entries=(entry,), problem=entry.problem)


@dataclass(frozen=True)
class AnalysisBatch:
    """Several stored files checked in one call to the worker (one round trip, not one per
    file); each request's `quota_left` is what was left before that file, as if it came
    alone: what archives earlier in the batch unpacked is taken off it here."""

    requests: tuple[AnalysisRequest, ...]


# A file's result, or the name of the error that stopped its check (as WorkerFailed says).
AnalysisOutcome = Analysis | str


def analyse_batch(batch: AnalysisBatch, progress: Progress) -> tuple[AnalysisOutcome, ...]:
    """Each file on its own: one that fails is reported by its error, the others go on."""
    results: list[AnalysisOutcome] = []
    unpacked = 0
    for done, request in enumerate(batch.requests, 1):
        request = dataclasses.replace(request, quota_left=max(0, request.quota_left - unpacked))
        try:
            analysis = analyse(request, _silent)
        except MemoryError:
            results.append("memory")
        except RecursionError:
            results.append("recursion")
        except Exception as error:  # by name only: never a file's content
            results.append("no_space" if out_of_space(error) else type(error).__name__)
        else:
            unpacked += unpacked_bytes(analysis)
            results.append(analysis)
        progress(done, len(batch.requests))
    return tuple(results)


def unpacked_bytes(analysis: Analysis) -> int:
    """What an archive's members add to the case (the archive itself counted already)."""
    if analysis.kind not in {kind.value for kind in ARCHIVES} or analysis.problem:
        return 0
    return sum(entry.size for entry in {entry.sha256: entry for entry in analysis.entries}.values())


def _silent(done: int, total: int) -> None:
    pass


def _describe(store: FileStore, sha256: str, size: int, kind: FileKind, path: str) -> Entry:
    entry = Entry(sha256=sha256, size=size, kind=kind.value, path=path)
    if kind in REFUSED:
        return dataclasses.replace(entry, problem="executable")
    if kind == FileKind.EMPTY:
        return dataclasses.replace(entry, problem="empty")
    if kind == FileKind.PDF:
        with store.open(sha256) as stream:
            found = inspect_pdf(stream)
        # Locked: the patient is asked for an unlocked copy. JavaScript: kept, and the
        # coordinator sees the flag on the file.
        problem = "locked_pdf" if found.locked else "pdf_javascript" if found.javascript else ""
        return dataclasses.replace(entry, problem=problem)
    if kind not in (FileKind.DICOM, FileKind.DICOMDIR):
        return entry
    try:
        with store.open(sha256) as stream:
            if kind == FileKind.DICOMDIR:
                return dataclasses.replace(entry, dicomdir=read_dicomdir(stream))
            return dataclasses.replace(entry, instance=read_instance(stream))
    except DicomUnreadable as error:
        return dataclasses.replace(entry, problem=str(error.problem))


def _unpack(
    store: FileStore,
    archive: BinaryIO,
    kind: FileKind,
    request: AnalysisRequest,
    progress: Progress,
) -> Analysis:
    """Store every member; on any violation remove what this archive added and keep nothing."""
    unpacking = _Unpacking(store, request, progress)
    try:
        unpacking.run(archive, kind, request.size, "", 0)
        store.flush_to_disk()
    except ArchiveRejected as error:
        return _rolled_back(store, unpacking.created, kind, str(error.problem))
    except FileTooLarge:
        return _rolled_back(store, unpacking.created, kind, "quota")
    except BaseException:
        _remove(store, unpacking.created)
        raise
    return Analysis(
        kind=kind.value,
        entries=tuple(unpacking.entries),
        programs_left_out=unpacking.programs_left_out,
    )


@dataclass
class _Unpacking:
    store: FileStore
    request: AnalysisRequest
    progress: Progress
    entries: list[Entry] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    used: int = 0
    programs_left_out: int = 0

    def run(self, archive: BinaryIO, kind: FileKind, size: int, prefix: str, depth: int) -> None:
        members = open_archive(archive, kind, size, self.request.limits, depth)
        for member, stream in members:
            if is_program_name(member.path):
                # A disc's viewer or autorun file: left unread, so never stored or exported.
                self.programs_left_out += 1
                continue
            left = max(0, self.request.quota_left - self.used)
            # Flushed to disk once for the whole archive, before anything records it.
            stored = self.store.put(stream, max_bytes=left, durable=False)
            self.used += stored.size
            if stored.created:
                self.created.append(stored.sha256)
            path = f"{prefix}{member.path}"
            with self.store.open(stored.sha256) as head:
                member_kind = sniff_stream(head, member.path.rsplit("/", 1)[-1])
                if member_kind in REFUSED:
                    # A program whatever its name: as when sent loose, not kept.
                    self.programs_left_out += 1
                    self.used -= stored.size
                    if stored.created:
                        self.created.remove(stored.sha256)
                        self.store.delete(stored.sha256)
                    continue
                if member_kind in ARCHIVES:
                    # An archive inside: unpacked in turn, within the same limits and depth.
                    self.run(head, member_kind, stored.size, f"{path}/", depth + 1)
            if member_kind in ARCHIVES:
                entry = Entry(stored.sha256, stored.size, member_kind.value, path)
            else:
                entry = _describe(self.store, stored.sha256, stored.size, member_kind, path)
            self.entries.append(dataclasses.replace(entry, created=stored.created))
            self.progress(len(self.entries), 0)


def _rolled_back(store: FileStore, created: list[str], kind: FileKind, problem: str) -> Analysis:
    _remove(store, created)
    return Analysis(kind=kind.value, problem=problem)


def _remove(store: FileStore, created: list[str]) -> None:
    for sha256 in created:
        store.delete(sha256)


# --- previews ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewRequest:
    store: StoreAccess
    # For each series: its representative instance, and instances for the study's sheet.
    series: tuple[tuple[str, str], ...]  # (series_uid, sha256 of the middle slice)
    sheets: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (study_uid, sha256s)


@dataclass(frozen=True)
class Previews:
    series: dict[str, str]  # series_uid -> sha256 of the PNG in the store
    sheets: dict[str, str]  # study_uid -> sha256 of the PNG
    # series_uid -> why no preview could be drawn (records.previews.PreviewProblem value)
    problems: dict[str, str] = field(default_factory=dict)


def make_previews(request: PreviewRequest, progress: Progress) -> Previews:
    store = request.store.open()
    series: dict[str, str] = {}
    sheets: dict[str, str] = {}
    problems: dict[str, str] = {}
    for done, (series_uid, sha256) in enumerate(request.series, 1):
        try:
            with store.open(sha256) as stream:
                png = series_preview_png(stream)
        except PreviewUnavailable as unavailable:
            problems[series_uid] = str(unavailable.problem)
            continue
        series[series_uid] = _put_bytes(store, png)
        progress(done, len(request.series))
    for study_uid, members in request.sheets:
        streams = [store.open(sha256) for sha256 in members]
        try:
            sheets[study_uid] = _put_bytes(store, contact_sheet_png(streams))
        except PreviewUnavailable:
            pass
        finally:
            for stream in streams:
                stream.close()
    return Previews(series, sheets, problems)


def _put_bytes(store: FileStore, data: bytes) -> str:
    return store.put(io.BytesIO(data)).sha256
