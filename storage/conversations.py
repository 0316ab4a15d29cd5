"""The per-message transaction's tables: dedupe keys, conversation rows, outbox, and the rows
the patient's own actions write (consents, a submitted case, jobs, documents re-sorted).

This is the hot path, so it uses SQLAlchemy Core statements built once and executed with bound
parameters; the same statements serve SQLite and PostgreSQL. What a conversation's effects
mean (which rows, which notices) is decided above, in handlers/updates/transaction.py; here is
plain table access only, on the connection the caller's transaction holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.database import reader
from storage.models import (
    Case,
    CaseEvent,
    ConsentRecord,
    Conversation,
    Document,
    Job,
    Outbox,
    ProcessedUpdate,
    UploadToken,
)

_conversation = Conversation.__table__  # type: ignore[attr-defined]
_processed = ProcessedUpdate.__table__  # type: ignore[attr-defined]
_outbox = Outbox.__table__  # type: ignore[attr-defined]
_case = Case.__table__  # type: ignore[attr-defined]
_consent = ConsentRecord.__table__  # type: ignore[attr-defined]
_job = Job.__table__  # type: ignore[attr-defined]
_case_event = CaseEvent.__table__  # type: ignore[attr-defined]
_document = Document.__table__  # type: ignore[attr-defined]
_upload_token = UploadToken.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SavedConversation:
    """What the conversation row holds besides its key."""

    chat_key: str
    step: str
    locale: str
    state_json: str


@dataclass(frozen=True)
class CaseHeader:
    status: str
    reference: str


def outbox_row(
    channel: str, chat_key: str, audience: str, payload_json: str, now: datetime
) -> dict[str, Any]:
    """One outbox row: `audience` "user" for the chat, "coordinators" for their chat."""
    return {
        "channel": channel,
        "chat_key": chat_key,
        "audience": audience,
        "payload_json": payload_json,
        "created_at": now,
        "attempts": 0,
    }


class ConversationTables:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)  # built once: it is a new engine object per call
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._record_update = (
            dialect.insert(_processed).on_conflict_do_nothing().returning(_processed.c.update_key)
        )
        upsert = dialect.insert(_conversation)
        self._save = upsert.on_conflict_do_update(
            index_elements=[_conversation.c.channel, _conversation.c.user_key],
            set_={
                "chat_key": upsert.excluded.chat_key,
                "step": upsert.excluded.step,
                "locale": upsert.excluded.locale,
                "state_json": upsert.excluded.state_json,
                "updated_at": upsert.excluded.updated_at,
            },
        )
        # FOR UPDATE locks the row on PostgreSQL; SQLite already holds the write lock from
        # BEGIN IMMEDIATE (the lock is taken before the state is read: aiogram issue #1317).
        self._load = (
            select(_conversation.c.state_json)
            .where(
                _conversation.c.channel == bindparam("channel"),
                _conversation.c.user_key == bindparam("user_key"),
            )
            .with_for_update()
        )
        self._outbox_insert = _outbox.insert()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def record_update(self, conn: Connection, channel: str, update_key: str, now: datetime) -> bool:
        """Record an update's key; False when it was recorded before (a redelivery)."""
        values = {"channel": channel, "update_key": update_key, "processed_at": now}
        return conn.execute(self._record_update, values).first() is not None

    def first_time(self, channel: str, update_key: str, now: datetime) -> bool:
        """Record an update that is not a conversation's (a coordinator's press) in its own
        transaction; False when it was seen before."""
        with self.engine.begin() as conn:
            return self.record_update(conn, channel, update_key, now)

    def settle_jobs(self, conn: Connection, job_ids: Sequence[int], now: datetime) -> None:
        conn.execute(update(_job).where(_job.c.id.in_(list(job_ids))).values(done_at=now))

    def load_json(self, conn: Connection, channel: str, user_key: str) -> str | None:
        """The conversation's state, locked for the rest of the transaction."""
        raw: str | None = conn.execute(
            self._load, {"channel": channel, "user_key": user_key}
        ).scalar_one_or_none()
        return raw

    def read_json(self, channel: str, user_key: str) -> str | None:
        with self._reader.connect() as conn:
            return self.load_json(conn, channel, user_key)

    def save(
        self,
        conn: Connection,
        channel: str,
        user_key: str,
        saved: SavedConversation,
        now: datetime,
    ) -> None:
        conn.execute(
            self._save,
            {
                "channel": channel,
                "user_key": user_key,
                "chat_key": saved.chat_key,
                "step": saved.step,
                "locale": saved.locale,
                "state_json": saved.state_json,
                "created_at": now,
                "updated_at": now,
            },
        )

    def add_outbox(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(self._outbox_insert, list(rows))

    def enqueue(self, row: dict[str, Any]) -> None:
        """One outbox row outside any update, in its own transaction."""
        with self.engine.begin() as conn:
            self.add_outbox(conn, [row])

    # The rows a patient's own actions write, each on the caller's connection.

    def add_consent(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(_consent.insert(), values)

    def add_case(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(_case.insert(), values)

    def add_job(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(_job.insert(), values)

    def sort_file(self, conn: Connection, file_id: str, item: str) -> None:
        """File a document (and what was unpacked from it) under a checklist item."""
        conn.execute(
            update(_document)
            .where((_document.c.file_id == file_id) | (_document.c.parent_file_id == file_id))
            .values(item=item)
        )

    def withdraw_consents(
        self, conn: Connection, channel: str, user_key: str, at: datetime
    ) -> None:
        mine = (_consent.c.channel == channel) & (_consent.c.user_key == user_key)
        conn.execute(
            update(_consent).where(mine & _consent.c.withdrawn_at.is_(None)).values(withdrawn_at=at)
        )

    def revoke_links(self, conn: Connection, channel: str, user_key: str, at: datetime) -> None:
        """Every upload and download link the patient was given stops working."""
        mine = (_upload_token.c.channel == channel) & (_upload_token.c.user_key == user_key)
        conn.execute(
            update(_upload_token)
            .where(mine & _upload_token.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    def drop_pending_jobs(
        self, conn: Connection, channel: str, user_key: str, kind: str, at: datetime
    ) -> None:
        """Jobs of this kind not yet run are marked done without running."""
        conn.execute(
            update(_job)
            .where(
                (_job.c.channel == channel)
                & (_job.c.user_key == user_key)
                & (_job.c.kind == kind)
                & _job.c.done_at.is_(None)
            )
            .values(done_at=at)
        )

    def case_header(self, conn: Connection, case_id: str) -> CaseHeader | None:
        found = conn.execute(
            select(_case.c.status, _case.c.reference).where(_case.c.id == case_id)
        ).first()
        return None if found is None else CaseHeader(found.status, found.reference)

    def set_case_status(
        self, conn: Connection, case_id: str, status: str, at: datetime, **more: Any
    ) -> None:
        conn.execute(
            update(_case)
            .where(_case.c.id == case_id)
            .values(status=status, status_changed_at=at, updated_at=at, **more)
        )

    def add_case_event(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(_case_event.insert(), {"note": "", "details_json": "{}", **values})
