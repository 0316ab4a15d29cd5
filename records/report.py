"""What checking a batch of files found: produced by the ingest worker, read by the
conversation, which turns it into words in the patient's language."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class MemberProblem(BaseModel):
    """A file inside an archive that was kept but has a problem, told as for a loose file."""

    path: str  # inside the archive
    kind: str = ""
    problem: str = ""


class FileCheck(BaseModel):
    """One file as the patient sent it (an archive counts as one, with what was inside)."""

    file_id: str
    name: str
    kind: str = ""  # records.classify.FileKind value
    # Why it could not be kept or used ("" when all is well). Archive and DICOM problems use
    # their own codes; also "duplicate", "executable", "empty", "quota", "unreachable",
    # "no_space" (the disk was full; nothing kept), "not_checked" (the check ran out of time
    # or memory; the file itself is kept).
    problem: str = ""
    kept: bool = True
    duplicate_of: str = ""
    members: int = 0
    dicom_files: int = 0
    photos: int = 0
    documents: int = 0
    unreadable: int = 0
    # Inside an archive: programs and autorun files left out, and members with a problem.
    programs_left_out: int = 0
    member_problems: list[MemberProblem] = Field(default_factory=list)


class StudyLine(BaseModel):
    """A DICOM study that files in this batch belong to."""

    key: str
    study_date: date | None = None
    modalities: list[str] = Field(default_factory=list)
    body_parts: list[str] = Field(default_factory=list)
    description: str = ""
    series: int = 0
    images: int = 0
    # Who the scans say they are of, so the patient can confirm it is the right person.
    patient_name: str = ""
    patient_birth_date: date | None = None
    # Store addresses (sha256) of the representative slice and the study's contact sheet.
    preview: str = ""
    sheet: str = ""
    # Why no preview could be drawn (records.previews.PreviewProblem value), "" otherwise.
    preview_problem: str = ""


class FlagLine(BaseModel):
    code: str  # records.dicom.FlagCode value
    study_key: str = ""
    age_days: int | None = None
    missing: int | None = None
    stale_after_days: int | None = None


class FilesReport(BaseModel):
    files: list[FileCheck] = Field(default_factory=list)
    studies: list[StudyLine] = Field(default_factory=list)
    flags: list[FlagLine] = Field(default_factory=list)
