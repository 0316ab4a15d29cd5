"""Typed per-user conversation state: where the user is, and the case being prepared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from conversations.case_status import CaseStatus

ItemStatus = Literal["pending", "uploaded", "later", "not_applicable"]
FileStatus = Literal["received", "stored", "failed"]


@dataclass(frozen=True)
class ConversationKey:
    """One conversation per user and channel."""

    channel: str
    user_key: str


class Consent(BaseModel):
    version: str
    given_at: datetime


class TimelineEntry(BaseModel):
    when: str
    sort_key: str
    approximate: bool = False
    what: str


class Question(BaseModel):
    """A question for the specialist: a suggestion (by id, so it renders in any language) or
    the patient's own words, kept verbatim."""

    suggestion: str | None = None
    text: str = ""


class RecordFile(BaseModel):
    file_id: str
    name: str
    size: int | None = None
    status: FileStatus = "received"
    # What checking found it to be (records.classify.FileKind), once checked.
    kind: str = ""


class RecordItem(BaseModel):
    status: ItemStatus = "pending"
    files: list[RecordFile] = Field(default_factory=list)


class PatientDetails(BaseModel):
    """Who the patient is, as they (or the relative writing) state it: what a specialist reads
    first and a coordinator books with. None is not asked yet; "" is skipped ("not given")."""

    name: str | None = None  # as on the passport, Latin letters
    name_zh: str | None = None
    # Exactly one of these once answered: a full date, a year, or an age when neither is known.
    birth_date: date | None = None
    birth_year: int | None = None
    age: int | None = None
    sex: str | None = None  # an option id: "female", "male"
    residence: str | None = None  # country and city, in their words
    nationality: str | None = None
    opinion_language: str | None = None  # a locale code
    contact: str | None = None  # phone or e-mail, for coordinators only


class MedicalHistory(BaseModel):
    """The medical background in the patient's (or relative's) words. As for the details,
    None is not asked yet and "" is skipped ("not given")."""

    illnesses: str | None = None  # other illnesses and past operations (既往史)
    medicines: str | None = None  # current medicines with doses (用药史)
    allergies: str | None = None  # (过敏史)
    # For cancer only: what the patient can do day to day, an option id of
    # conversations.steps.history.PERFORMANCE (ECOG 0-1, 2, 3, 4).
    performance: str | None = None


class IntakeDraft(BaseModel):
    """The case being prepared. Everything here is health data: only filled after consent."""

    case_id: str | None = None
    for_whom: str | None = None
    relationship: str | None = None
    # Defaults let conversations stored before these questions existed load unchanged.
    patient: PatientDetails = Field(default_factory=PatientDetails)
    history: MedicalHistory = Field(default_factory=MedicalHistory)
    # What worries the patient most, and since when, in one sentence (主诉).
    complaint: str | None = None
    fit_reasons: list[str] = Field(default_factory=list)
    situation: dict[str, str] = Field(default_factory=dict)
    area: str | None = None
    subarea: str | None = None
    diagnosis: str | None = None
    questions: list[Question] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    records: dict[str, RecordItem] = Field(default_factory=dict)
    record_cursor: int = 0
    unsorted_files: list[RecordFile] = Field(default_factory=list)
    # Files waiting for the patient to say which checklist item they are, first asked first.
    sorting: list[str] = Field(default_factory=list)
    # DICOM studies shown as a preview: study key -> "asked", "confirmed" or "not_meant".
    scans: dict[str, str] = Field(default_factory=dict)
    # The person named in a study shown for confirmation: study key -> (name, birth date).
    scan_people: dict[str, tuple[str, date | None]] = Field(default_factory=dict)
    # The patient as their own scans name them, once the patient confirmed a scan: later
    # scans naming someone else are pointed out.
    patient_name: str | None = None
    patient_birth_date: date | None = None

    def has_health_data(self) -> bool:
        return bool(
            self.case_id
            or self.for_whom
            or self.fit_reasons
            or self.situation
            or self.area
            or self.diagnosis
            or self.questions
            or self.timeline
            or self.records
            or self.unsorted_files
        )


class SubmittedCase(BaseModel):
    case_id: str
    reference: str
    submitted_at: datetime
    # Where the coordinators have it (a CaseStatus), as last told.
    status: str = CaseStatus.SUBMITTED
    # Checklist items the coordinator asked for, and their note (their words, verbatim).
    requested: list[str] = Field(default_factory=list)
    note: str = ""
    followups_left: int = 0


Overlay = Literal[
    "language",
    "restart",
    "newcase",
    "withdraw",
    "export",
    "delete",
    "consent_health_again",
    "consent_transfer_again",
]


class ConversationState(BaseModel):
    step: str
    locale: str
    locale_chosen: bool = False
    draft: IntakeDraft = Field(default_factory=IntakeDraft)
    history: list[str] = Field(default_factory=list)
    consent_health: Consent | None = None
    consent_transfer: Consent | None = None
    paused_step: str | None = None
    # A free-text answer that raised a red flag, kept so that "I'm safe, this was in the past"
    # can still use it; only ever set after consent.
    paused_text: str | None = None
    overlay: Overlay | None = None
    returning_to_review: bool = False
    # Editing the question list: choosing which question to edit or remove, then typing.
    question_mode: Literal["pick_edit", "pick_remove", "typing"] | None = None
    editing_question: int | None = None
    submitted: list[SubmittedCase] = Field(default_factory=list)
    # Where the patient came from (a deep-link payload such as t.me/bot?start=clinic-42).
    referral: str | None = None
    # The submitted case whose follow-up question the patient is typing.
    followup_case: str | None = None
    # Unsubmitted cases the patient started again from (/restart, /newcase): files they held
    # are still stored under these ids until the patient is erased.
    earlier_drafts: list[str] = Field(default_factory=list)
    # When the patient was told their unfinished case would be erased (handlers/privacy/).
    retention_warned_at: datetime | None = None
    # The album whose files are arriving, and the names received from it so far: its parts
    # come one by one and share one acknowledgement, edited as each arrives.
    album: str = ""
    album_received: list[str] = Field(default_factory=list)
    # The question the patient was told, once, that edited messages are not read.
    edit_noted: str | None = None

    @property
    def consented(self) -> bool:
        return self.consent_health is not None and self.consent_transfer is not None
