"""Side effects the engine asks for; persistence carries them out in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from conversations.events import CoordinatorNotice, FileRef


class ConsentGiven(BaseModel):
    kind: Literal["consent_given"] = "consent_given"
    scope: Literal["health_data", "transfer_to_china"]
    version: str
    given_at: datetime


class CaseSubmitted(BaseModel):
    """A case enters the coordinator queue with a snapshot of every answer."""

    kind: Literal["case_submitted"] = "case_submitted"
    case_id: str
    reference: str
    locale: str
    area: str
    verdict: str
    readiness: int
    answers_json: str
    submitted_at: datetime


# The session of an album's files: its parts come one update each (see IngestFile.session).
ALBUM_SESSION_PREFIX = "album:"


class IngestFile(BaseModel):
    """Fetch a file from its channel into the file store, off the conversation's transaction."""

    kind: Literal["ingest_file"] = "ingest_file"
    file_id: str
    case_id: str
    item: str
    file: FileRef
    # The files sent together (one upload-page session, one album, one message): their
    # checks wait for one another and come back as ONE report (handlers/updates/pipeline.py).
    # An album's parts arrive one update each, so its session is the album; anything else
    # arrives whole in one update. Empty for jobs queued before sessions existed.
    session: str = ""


class NotifyCoordinators(BaseModel):
    kind: Literal["notify_coordinators"] = "notify_coordinators"
    notice: CoordinatorNotice


class FollowUpAsked(BaseModel):
    """A patient's question about the opinion they received: the case returns to the queue."""

    kind: Literal["follow_up_asked"] = "follow_up_asked"
    case_id: str
    reference: str
    text: str
    asked_at: datetime


class FileSorted(BaseModel):
    """The patient said which checklist item a file is: its stored record follows."""

    kind: Literal["file_sorted"] = "file_sorted"
    file_id: str
    item: str


class ConsentWithdrawn(BaseModel):
    """Processing stops: consents are marked withdrawn, files not yet stored are dropped, and
    coordinators stop work on the cases still open."""

    kind: Literal["consent_withdrawn"] = "consent_withdrawn"
    at: datetime
    case_ids: list[str]


class DataRightRequested(BaseModel):
    """A copy of everything (export) or an erasure, done by a background job."""

    kind: Literal["data_right"] = "data_right"
    right: Literal["export", "erase"]
    at: datetime


Effect = (
    ConsentGiven
    | CaseSubmitted
    | IngestFile
    | NotifyCoordinators
    | FollowUpAsked
    | FileSorted
    | ConsentWithdrawn
    | DataRightRequested
)
