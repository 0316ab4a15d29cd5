"""Tables. SQLModel for the schema and the ORM where convenience wins; the per-message hot
path uses SQLAlchemy Core statements on the same tables (storage/conversations.py,
storage/outbox.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, UniqueConstraint, text
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


# The outbox's PostgreSQL storage parameters (migration 0006 sets them on existing tables).
OUTBOX_STORAGE = {
    "fillfactor": "70",
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_analyze_scale_factor": "0.02",
}


class Outbox(SQLModel, table=True):
    """Replies and notifications waiting to be delivered; written with the state they follow."""

    __tablename__ = "outbox"
    # Rows are written, claimed, released and marked sent: their unsent ones are few, their
    # sent ones many. Partial indexes hold only the rows each query looks for, so marked rows
    # leave the unsent ones' index instead of piling up in it as dead entries; claims and
    # releases change no indexed column and, with room left on each page (fillfactor), are
    # HOT updates that add no index entry at all (issue 21: PostgreSQL throughput halved
    # over a few minutes). Autovacuum comes sooner than PostgreSQL's 20% of the table.
    __table_args__ = (
        # The senders' scan, oldest first (claims, pending, the metrics' count); a chat's
        # oldest unsent message is found among these few rows too. One index only: each more
        # is written on every insert and mark, and on a nearly full disk the database's log
        # must still hold the messages that say so (tests/test_disk_full.py). Retention's
        # daily sweep of sent rows reads the table.
        Index(
            "ix_outbox_unsent",
            "id",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
        {"postgresql_with": OUTBOX_STORAGE},
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    chat_key: str
    # "user" for replies to the patient, "coordinators" for the coordinators' channel.
    audience: str = "user"
    payload_json: str
    created_at: datetime
    sent_at: datetime | None = None
    attempts: int = 0
    # Taken by one sender until then (several workers share the outbox).
    claimed_until: datetime | None = None


class ShownMessage(SQLModel, table=True):
    """The platform's id of a message later ones replace in place (Outbound.replace_key)."""

    __tablename__ = "shown_message"

    channel: str = Field(primary_key=True)
    chat_key: str = Field(primary_key=True)
    replace_key: str = Field(primary_key=True)
    message_ref: str


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
    status_changed_at: datetime | None = None
    # Checklist items the coordinator asked the patient for (JSON list), when, and the
    # reminders sent since; when coordinators were last told the case sits idle.
    requested_json: str = "[]"
    requested_at: datetime | None = None
    reminders_sent: int = 0
    idle_noticed_at: datetime | None = None
    # The card shows a picker (items to request, a reason to decline) while one is chosen.
    card_mode: str = ""
    card_picks_json: str = "[]"


class CaseEvent(SQLModel, table=True):
    """The case's history: every status change (who, when, from, to) and every request,
    reminder, translation, export, opinion and follow-up."""

    __tablename__ = "case_event"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    at: datetime
    actor: str
    kind: str
    from_status: str = ""
    to_status: str = ""
    # A coordinator's note, or the patient's follow-up question: health data, never logged.
    note: str = ""
    details_json: str = "{}"


class SectionTranslation(SQLModel, table=True):
    """A coordinator's translation of the patient's own words in one summary section."""

    __tablename__ = "section_translation"

    case_id: str = Field(primary_key=True)
    section: str = Field(primary_key=True)
    text: str
    translator: str
    at: datetime


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
    # Set when the patient withdrew this consent (/withdraw); a new consent is a new row.
    withdrawn_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """Append-only: every coordinator view, export and status change, and every data right a
    patient exercised. Entries name cases by reference and patients by a pseudonym (an HMAC
    of their account), never by name, and carry no health data, so they outlive an erasure.
    Each entry's hash covers the one before it: a changed or removed entry breaks the chain
    (`huizhen audit --verify`); the database refuses updates and deletes (migration 0004)."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str
    action: str
    subject: str = Field(index=True)
    details_json: str = "{}"
    previous_hash: str
    entry_hash: str


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
    # Taken by one worker until then (several workers share the jobs).
    claimed_until: datetime | None = None


class Document(SQLModel, table=True):
    """A stored file of a case: one the patient sent, a member of an archive they sent, or a
    preview Huizhen drew. Everything here is health data."""

    __tablename__ = "document"
    __table_args__ = (
        UniqueConstraint("file_id"),
        Index("ix_document_case_sha", "case_id", "sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    file_id: str
    case_id: str = Field(index=True)
    item: str
    sha256: str
    size: int = Field(sa_type=BigInteger)
    original_name: str
    stored_at: datetime
    # What the file is (records.classify.FileKind, or "preview" / "contact_sheet").
    kind: str = ""
    # Where it sat inside an archive or a folder ("" for a file sent on its own).
    path: str = ""
    # The archive it came from, or the series / study a preview shows.
    parent_file_id: str | None = None
    # Why it cannot be used (an unreadable DICOM, say); "" when it can.
    problem: str = ""
    # The DICOM header fields read from it, as JSON.
    details_json: str = ""


class UploadToken(SQLModel, table=True):
    """A secure upload link for one case. Only the token's sha256 is stored: the link itself
    exists in the patient's chat and nowhere else."""

    __tablename__ = "upload_token"

    token_hash: str = Field(primary_key=True)
    case_id: str = Field(index=True)
    channel: str
    user_key: str
    chat_key: str
    locale: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


class Upload(SQLModel, table=True):
    """One file arriving through the upload page, in chunks; resumable until complete."""

    __tablename__ = "upload"
    __table_args__ = (Index("ix_upload_token", "token_hash", "completed_at"),)

    id: str = Field(primary_key=True)
    token_hash: str
    case_id: str
    name: str
    relative_path: str = ""
    size: int = Field(sa_type=BigInteger)
    # The browser's own fingerprint of the file (name, size, last modified), for resuming.
    fingerprint: str = ""
    received: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime
    completed_at: datetime | None = None
    # When the chat was told about it (the page's "done", or the sweep for a closed page).
    announced_at: datetime | None = None


class WeChatUser(SQLModel, table=True):
    """A follower of the WeChat Official Account, as the channel needs them: no name and no
    message text, only what the platform's rules and the numbered options depend on."""

    __tablename__ = "wechat_user"

    openid: str = Field(primary_key=True)
    # The profile language ("zh_CN"); "" when WeChat gave none. Asked once per follower.
    language: str = ""
    language_checked: bool = False
    subscribed: bool = True
    # The follower's last message: the 48-hour customer-service window runs from it, and the
    # customer-service messages sent since count against the quota.
    last_message_at: datetime | None = None
    service_sent: int = 0
    # Customer-service delivery and the passive reply (the answer in the HTTP response) never
    # take the same reply: set while a message of theirs is being answered, when an answer
    # last took their replies, and while a customer-service message is being sent.
    replying_until: datetime | None = None
    replied_at: datetime | None = None
    sending_until: datetime | None = None
    # The options last shown, numbered: a digit (or an option's words) answers them. JSON:
    # [option id, label, the prompt it belongs to] in the order of their numbers.
    options_json: str = "[]"


class WeChatToken(SQLModel, table=True):
    """The access token of one Official Account, shared by every worker."""

    __tablename__ = "wechat_token"

    app_id: str = Field(primary_key=True)
    access_token: str = ""
    expires_at: datetime | None = None


class WeChatNonce(SQLModel, table=True):
    """Webhook calls seen in the last minutes, by timestamp and nonce: a replay is refused."""

    __tablename__ = "wechat_nonce"

    timestamp: str = Field(primary_key=True)
    nonce: str = Field(primary_key=True)
    seen_at: datetime = Field(index=True)


class WeChatReply(SQLModel, table=True):
    """The passive reply given to one message, given again if WeChat retries it."""

    __tablename__ = "wechat_reply"

    update_key: str = Field(primary_key=True)
    text: str
    created_at: datetime = Field(index=True)


class PacsKey(SQLModel, table=True):
    """The secret that de-identifies one patient's studies for specialists: the same seed
    remaps their UIDs and shifts their dates the same way in every study, so intervals
    between scans survive. It is the mapping back to the patient: it stays here, never in
    Orthanc and never in the patient's copy."""

    __tablename__ = "pacs_key"

    channel: str = Field(primary_key=True)
    user_key: str = Field(primary_key=True)
    seed: str
    created_at: datetime


class PacsStudy(SQLModel, table=True):
    """One study of a case as it goes to Orthanc: the original and the de-identified copy,
    each by its Orthanc id, and the push's retries (kept here, so they survive restarts)."""

    __tablename__ = "pacs_study"
    __table_args__ = (
        UniqueConstraint("case_id", "study_uid"),
        Index("ix_pacs_study_due", "pushed_at", "next_try_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    study_uid: str
    # Orthanc's ids of the two copies ("" until pushed): which is the specialists' is this
    # column, never a guess from Orthanc's contents.
    orthanc_original: str = ""
    orthanc_deidentified: str = ""
    deidentified_uid: str = ""
    # Text may be burned into the pixels (BurnedInAnnotation YES, a secondary capture or a
    # screenshot): de-identification cannot remove it, a coordinator must look first.
    burned_in: bool = False
    created_at: datetime
    # None while instances wait to be pushed; set when every instance known is in Orthanc.
    pushed_at: datetime | None = None
    attempts: int = 0
    next_try_at: datetime | None = None


class PacsInstance(SQLModel, table=True):
    """A checked DICOM file of a case, and whether it is in Orthanc (both copies)."""

    __tablename__ = "pacs_instance"

    file_id: str = Field(primary_key=True)
    case_id: str = Field(index=True)
    study_id: int = Field(index=True)
    sha256: str
    pushed_at: datetime | None = None
