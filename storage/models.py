"""Tables. SQLModel for the schema and the ORM where convenience wins; the per-message hot
path uses SQLAlchemy Core statements on the same tables (storage/conversations.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class ProcessedUpdate(SQLModel, table=True):
    """Every update key seen; a second delivery of the same key changes nothing."""

    __tablename__ = "processed_update"

    channel: str = Field(primary_key=True)
    update_key: str = Field(primary_key=True)
    processed_at: datetime


class Conversation(SQLModel, table=True):
    __tablename__ = "conversation"

    channel: str = Field(primary_key=True)
    user_key: str = Field(primary_key=True)
    chat_key: str
    step: str
    locale: str
    state_json: str
    created_at: datetime
    updated_at: datetime


class Outbox(SQLModel, table=True):
    """Replies and notifications waiting to be delivered; written with the state they follow."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    chat_key: str
    # "user" for replies to the patient, "coordinators" for the coordinators' channel.
    audience: str = "user"
    payload_json: str
    created_at: datetime
    sent_at: datetime | None = None
    attempts: int = 0


class Case(SQLModel, table=True):
    """A submitted case in the coordinator queue."""

    __tablename__ = "case"

    id: str = Field(primary_key=True)
    reference: str = Field(unique=True, index=True)
    channel: str
    user_key: str
    chat_key: str
    status: str = Field(index=True)
    locale: str
    area: str
    verdict: str
    readiness: int
    answers_json: str
    submitted_at: datetime
    updated_at: datetime
    # The coordinator who claimed the case, and the card message to edit in place.
    coordinator: str | None = None
    card_message_ref: str | None = None


class CoordinatorAction(SQLModel, table=True):
    """Every attempt to act on a case from the coordinators' chat, allowed or not."""

    __tablename__ = "coordinator_action"

    id: int | None = Field(default=None, primary_key=True)
    actor: str
    action: str
    case_reference: str
    allowed: bool
    at: datetime


class ConsentRecord(SQLModel, table=True):
    __tablename__ = "consent_record"

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    user_key: str
    scope: str
    version: str
    given_at: datetime


class Job(SQLModel, table=True):
    """Background work the conversation asked for (storing a file), run after the commit."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_pending", "done_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    channel: str
    user_key: str
    chat_key: str
    payload_json: str
    created_at: datetime
    done_at: datetime | None = None
    attempts: int = 0


class Document(SQLModel, table=True):
    """A stored file attached to a case and a checklist item."""

    __tablename__ = "document"
    __table_args__ = (UniqueConstraint("file_id"),)

    id: int | None = Field(default=None, primary_key=True)
    file_id: str
    case_id: str = Field(index=True)
    item: str
    sha256: str
    size: int
    original_name: str
    stored_at: datetime
