"""The case package a coordinator sends on: one zip with the summary (PDF and HTML), the case as
JSON, the document index and the DICOM study table as CSV, the previews, and the original
files, decrypted from the store.

Files are streamed from the store into the zip (never whole in memory) and their sha256 checked
on the way. The zip is written under a temporary name beside the target and renamed when
complete, so a failed export leaves nothing behind, and never half a package.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path, PurePosixPath

from conversations.state import IntakeDraft
from handlers.documents.summary import ARCHIVE_KINDS, CaseSummary, build_summary
from handlers.documents.summary_html import render_html
from records.checklist import ITEMS, checklist_for
from records.classify import FileKind
from storage.documents import DocumentRow
from storage.files import FileStore
from storage.models import Case

SCHEMA = "huizhen.case/1"
PREVIEW_KINDS = frozenset({"preview", "contact_sheet"})
# Already compressed: deflating them again costs time and gains nothing.
STORED_KINDS = frozenset({FileKind.IMAGE.value, *ARCHIVE_KINDS, *PREVIEW_KINDS})
COPY_CHUNK = 1024 * 1024
MAX_NAME_BYTES = 200  # below the 255 bytes most file systems allow, room for " (2)"
UNSORTED = "unsorted"
# Characters Windows refuses in file names (and ":" of a drive letter).
_RESERVED = str.maketrans({char: "_" for char in '<>:"|?*'})
_DRIVE = re.compile(r"^[A-Za-z]:")
# A cell starting with one of these is run as a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class PackageError(Exception):
    """The package could not be written as it should be (a stored file read back wrong)."""


def write_package(
    case: Case,
    documents: Sequence[DocumentRow],
    files: FileStore,
    out: Path,
    translations: Mapping[str, str],
    now: datetime,
) -> Path:
    """Write the package to `out` (a folder: `<reference>.zip` inside it) and return its path."""
    target = out / f"{case.reference}.zip" if out.is_dir() else out
    summary = build_summary(case, list(documents), translations, now)
    # Rendered first: missing fonts stop the export before any file is created.
    from handlers.documents.summary_pdf import render_pdf  # fpdf loads when a PDF is made

    pdf = render_pdf(summary)
    names = package_names(documents)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as raw:
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
                moment = zip_time(now)
                put_bytes(archive, "summary.pdf", pdf, moment, zipfile.ZIP_STORED)
                put_bytes(archive, "summary.html", render_html(summary).encode(), moment)
                case_json = case_document(case, documents, summary, names, translations, now)
                put_bytes(archive, "case.json", json_bytes(case_json), moment)
                put_bytes(archive, "documents.csv", documents_csv(case, documents, names), moment)
                put_bytes(archive, "dicom_studies.csv", studies_csv(summary), moment)
                for row in documents:
                    if row.file_id in names:
                        copy_stored(archive, files, row, names[row.file_id])
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


# --- where each file goes ----------------------------------------------------------------


def package_names(documents: Sequence[DocumentRow]) -> dict[str, str]:
    """file_id -> its name in the zip: `previews/<name>` for previews, else
    `files/<item>/<path as sent>`, members of an archive under the archive's name (the archive
    itself is left out: its members are the files). Names are made safe, duplicates numbered."""
    by_id = {row.file_id: row for row in documents}
    parents = {row.parent_file_id for row in documents if row.parent_file_id}
    taken: set[str] = set()
    names: dict[str, str] = {}
    for row in documents:
        if row.kind in ARCHIVE_KINDS and row.file_id in parents:
            continue
        if row.kind in PREVIEW_KINDS:
            parts = ["previews", *(safe_parts(row.original_name) or [f"{row.file_id}.png"])[-1:]]
        else:
            parent = by_id.get(row.parent_file_id or "")
            where = safe_parts(parent.path or parent.original_name) if parent else []
            where += safe_parts(row.path or row.original_name) or safe_parts(row.file_id)
            parts = ["files", *(safe_parts(row.item) or [UNSORTED])[:1], *where]
        names[row.file_id] = _unique("/".join(parts), taken)
    return names


def safe_parts(path: str) -> list[str]:
    """The folders and name of a path as sent, safe to unpack anywhere: no "..", no absolute
    or drive paths, no control characters, no characters Windows refuses."""
    parts = []
    for raw in _DRIVE.sub("", path).replace("\\", "/").split("/"):
        part = "".join(c for c in raw if unicodedata.category(c) != "Cc").translate(_RESERVED)
        part = part.strip().rstrip(". ")
        if part and part not in (".", ".."):
            parts.append(_shorten(part))
    return parts


def _shorten(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    suffix = PurePosixPath(name).suffix[:16]
    stem = name[: len(name) - len(suffix)]
    while len((stem + suffix).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + suffix


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `name (2)`, `name (3)` …; compared without case, as Windows and macOS do."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.rpartition(".")
    if not stem:  # no extension, or a name that starts with its only dot
        stem, dot, extension = base, "", ""
    candidate, number = name, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{folder}/{stem} ({number}){dot}{extension}"
    taken.add(candidate.casefold())
    return candidate


# --- what goes in ------------------------------------------------------------------------


def case_document(
    case: Case,
    documents: Sequence[DocumentRow],
    summary: CaseSummary,
    names: Mapping[str, str],
    translations: Mapping[str, str],
    now: datetime,
) -> dict[str, object]:
    """The case, machine-readable. Bump SCHEMA's version when a field changes meaning."""
    draft = IntakeDraft.model_validate_json(case.answers_json)
    index: dict[str, list[dict[str, object]]] = {}
    for row in _by_item(case, documents):
        index.setdefault(row.item or UNSORTED, []).append(
            {
                "file_id": row.file_id,
                "name": row.original_name,
                "path": row.path,
                "kind": row.kind,
                "size": row.size,
                "sha256": row.sha256,
                "problem": row.problem,
                "parent_file_id": row.parent_file_id,
                "stored_at": row.stored_at.isoformat(),
                "in_package": names.get(row.file_id),
            }
        )
    return {
        "schema": SCHEMA,
        "reference": case.reference,
        "case_id": case.id,
        "status": case.status,
        "locale": case.locale,
        "area": case.area,
        "submitted_at": case.submitted_at.isoformat(),
        "exported_at": now.isoformat(),
        "coordinator": case.coordinator,
        "answers": draft.model_dump(mode="json"),
        "translations": dict(translations),
        "fit": {
            "verdict": summary.fit.verdict,
            "recommendation": summary.fit.recommendation,
            "reasons": list(summary.fit_reasons),
            "strengths": list(summary.fit.strengths),
            "concerns": list(summary.fit.concerns),
        },
        "readiness": {"score": summary.readiness, "at_submission": case.readiness},
        "checklist": [
            {
                "item": row.item,
                "label": ITEMS[row.item].label,
                "term_zh": ITEMS[row.item].term_zh,
                "status": row.status,
                "critical": row.critical,
                "files": row.files,
            }
            for row in summary.checklist
        ],
        "documents": index,
        "dicom_studies": [asdict(study) for study in summary.studies],
    }


DOCUMENT_COLUMNS = (
    "item",
    "item_label",
    "name",
    "path",
    "kind",
    "size",
    "sha256",
    "problem",
    "file_id",
    "parent_file_id",
    "in_package",
)
STUDY_COLUMNS = (
    "study_date",
    "modalities",
    "body_parts",
    "description",
    "institution",
    "series",
    "images",
    "missing_images",
    "patient_name",
    "patient_birth_date",
    "study_uid",
)


def documents_csv(case: Case, documents: Sequence[DocumentRow], names: Mapping[str, str]) -> bytes:
    rows = (
        (
            row.item or UNSORTED,
            ITEMS[row.item].label if row.item in ITEMS else "",
            row.original_name,
            row.path,
            row.kind,
            row.size,
            row.sha256,
            row.problem,
            row.file_id,
            row.parent_file_id or "",
            names.get(row.file_id, ""),
        )
        for row in _by_item(case, documents)
    )
    return _csv(DOCUMENT_COLUMNS, rows)


def studies_csv(summary: CaseSummary) -> bytes:
    rows = (tuple(asdict(study)[column] for column in STUDY_COLUMNS) for study in summary.studies)
    return _csv(STUDY_COLUMNS, rows)


def _by_item(case: Case, documents: Sequence[DocumentRow]) -> list[DocumentRow]:
    """Documents grouped by checklist item, in the checklist's order; the rest after."""
    order = {item.id: index for index, item in enumerate(checklist_for(case.area))}
    return sorted(documents, key=lambda row: order.get(row.item, len(order)))


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    # With a byte-order mark, spreadsheet programs read the Chinese and Cyrillic as UTF-8.
    return buffer.getvalue().encode("utf-8-sig")


def _cell(value: object) -> object:
    """File names and DICOM fields come from outside: never let one run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def json_bytes(document: Mapping[str, object]) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=2).encode()


# --- writing the zip ---------------------------------------------------------------------


def zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    """Zip dates start in 1980."""
    moment = max(moment.replace(tzinfo=None), datetime(1980, 1, 1))
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def put_bytes(
    archive: zipfile.ZipFile,
    name: str,
    data: bytes,
    moment: tuple[int, int, int, int, int, int],
    compression: int = zipfile.ZIP_DEFLATED,
) -> None:
    info = zipfile.ZipInfo(name, date_time=moment)
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def copy_stored(archive: zipfile.ZipFile, files: FileStore, row: DocumentRow, name: str) -> None:
    """Stream one stored file into the zip, checking it is the content that was recorded."""
    info = zipfile.ZipInfo(name, date_time=zip_time(row.stored_at))
    info.compress_type = zipfile.ZIP_STORED if row.kind in STORED_KINDS else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    # The expected size lets zipfile switch to zip64 for files over 2 GiB.
    info.file_size = row.size
    digest = hashlib.sha256()
    with files.open(row.sha256) as source, archive.open(info, "w") as target:
        while chunk := source.read(COPY_CHUNK):
            digest.update(chunk)
            target.write(chunk)
    if digest.hexdigest() != row.sha256:
        raise PackageError(f"stored file {row.file_id} does not match its recorded checksum")
