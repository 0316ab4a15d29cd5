"""The per-message transaction: dedupe, lock and load, apply, save, and queue what follows.

This is the hot path, so it uses SQLAlchemy Core statements built once and executed with bound
parameters; the same statements serve SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from conversations.effects import (
    CaseSubmitted,
    ConsentGiven,
    Effect,
    FileSorted,
    FollowUpAsked,
    IngestFile,
    NotifyCoordinators,
)
from conversations.state import ConversationKey, ConversationState
from conversations.transition import Transition
from handlers.events import Inbound, Outbound
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
)

CASE_STATUS_SUBMITTED = "submitted"

_conversation = Conversation.__table__  # type: ignore[attr-defined]
_processed = ProcessedUpdate.__table__  # type: ignore[attr-defined]
_outbox = Outbox.__table__  # type: ignore[attr-defined]
_case = Case.__table__  # type: ignore[attr-defined]
_consent = ConsentRecord.__table__  # type: ignore[attr-defined]
_job = Job.__table__  # type: ignore[attr-defined]
_case_event = CaseEvent.__table__  # type: ignore[attr-defined]
_document = Document.__table__  # type: ignore[attr-defined]

Apply = Callable[[ConversationState | None], Transition]


class ConversationStore:
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

    def process(self, inbound: Inbound, now: datetime, apply: Apply) -> Transition | None:
        """Run one inbound in one transaction. None when the update was seen before."""
        with self.engine.begin() as conn:
            first = conn.execute(
                self._record_update,
                {"channel": inbound.channel, "update_key": inbound.update_key, "processed_at": now},
            ).first()
            if first is None:
                return None
            key = ConversationKey(inbound.channel, inbound.user_key)
            state = self._load_state(conn, key)
            transition = apply(state)
            self._write(conn, key, inbound.chat_key, transition, now, created=state is None)
            return transition

    def load(self, key: ConversationKey) -> ConversationState | None:
        with self._reader.connect() as conn:
            return self._load_state(conn, key)

    def _load_state(self, conn: Connection, key: ConversationKey) -> ConversationState | None:
        raw = conn.execute(
            self._load, {"channel": key.channel, "user_key": key.user_key}
        ).scalar_one_or_none()
        return None if raw is None else ConversationState.model_validate_json(raw)

    def enqueue(self, channel: str, chat_key: str, message: Outbound, now: datetime) -> None:
        """A message outside any update (progress while files are checked)."""
        row = {
            "channel": channel,
            "chat_key": chat_key,
            "audience": "user",
            "payload_json": message.model_dump_json(exclude_defaults=True),
            "created_at": now,
            "attempts": 0,
        }
        with self.engine.begin() as conn:
            conn.execute(_outbox.insert(), [row])

    def _write(
        self,
        conn: Connection,
        key: ConversationKey,
        chat_key: str,
        transition: Transition,
        now: datetime,
        created: bool,
    ) -> None:
        state = transition.state
        conn.execute(
            self._save,
            {
                "channel": key.channel,
                "user_key": key.user_key,
                "chat_key": chat_key,
                "step": state.step,
                "locale": state.locale,
                "state_json": state.model_dump_json(),
                "created_at": now,
                "updated_at": now,
            },
        )
        rows = [
            {
                "channel": key.channel,
                "chat_key": chat_key,
                "audience": "user",
                "payload_json": reply.model_dump_json(exclude_defaults=True),
                "created_at": now,
                "attempts": 0,
            }
            for reply in transition.replies
        ]
        rows += self._apply_effects(conn, key, chat_key, transition.effects, now)
        if rows:
            conn.execute(_outbox.insert(), rows)

    def _apply_effects(
        self,
        conn: Connection,
        key: ConversationKey,
        chat_key: str,
        effects: list[Effect],
        now: datetime,
    ) -> list[dict[str, Any]]:
        """Carry out effects inside the transaction; return the outbox rows they add."""
        outbox_rows: list[dict[str, Any]] = []
        who = {"channel": key.channel, "user_key": key.user_key}
        for effect in effects:
            if isinstance(effect, ConsentGiven):
                conn.execute(
                    _consent.insert(),
                    {
                        **who,
                        "scope": effect.scope,
                        "version": effect.version,
                        "given_at": effect.given_at,
                    },
                )
            elif isinstance(effect, CaseSubmitted):
                conn.execute(
                    _case.insert(),
                    {
                        **who,
                        "id": effect.case_id,
                        "reference": effect.reference,
                        "chat_key": chat_key,
                        "status": CASE_STATUS_SUBMITTED,
                        "locale": effect.locale,
                        "area": effect.area,
                        "verdict": effect.verdict,
                        "readiness": effect.readiness,
                        "answers_json": effect.answers_json,
                        "submitted_at": effect.submitted_at,
                        "updated_at": now,
                        "status_changed_at": now,
                    },
                )
            elif isinstance(effect, IngestFile):
                conn.execute(
                    _job.insert(),
                    {
                        **who,
                        "kind": effect.kind,
                        "chat_key": chat_key,
                        "payload_json": effect.model_dump_json(),
                        "created_at": now,
                        "attempts": 0,
                    },
                )
            elif isinstance(effect, NotifyCoordinators):
                outbox_rows.append(
                    {
                        "channel": key.channel,
                        "chat_key": "",
                        "audience": "coordinators",
                        "payload_json": effect.notice.model_dump_json(),
                        "created_at": now,
                        "attempts": 0,
                    }
                )
            elif isinstance(effect, FollowUpAsked):
                self._follow_up(conn, effect)
            elif isinstance(effect, FileSorted):
                conn.execute(
                    update(_document)
                    .where(
                        (_document.c.file_id == effect.file_id)
                        | (_document.c.parent_file_id == effect.file_id)
                    )
                    .values(item=effect.item)
                )
        return outbox_rows

    @staticmethod
    def _follow_up(conn: Connection, effect: FollowUpAsked) -> None:
        """The question joins the case's history and the case returns to the queue."""
        current = conn.execute(
            select(_case.c.status).where(_case.c.id == effect.case_id)
        ).scalar_one_or_none()
        if current is None:
            return
        conn.execute(
            _case_event.insert(),
            {
                "case_id": effect.case_id,
                "at": effect.asked_at,
                "actor": "patient",
                "kind": "follow_up",
                "from_status": current,
                "to_status": "in_review",
                "note": effect.text,
                "details_json": "{}",
            },
        )
        conn.execute(
            update(_case)
            .where(_case.c.id == effect.case_id)
            .values(
                status="in_review", status_changed_at=effect.asked_at, updated_at=effect.asked_at
            )
        )
