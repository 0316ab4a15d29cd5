"""The per-message transaction: dedupe, lock and load, apply, save, and queue what follows.

This is the hot path, so it uses SQLAlchemy Core statements compiled once for the engine's
dialect and run on a DBAPI cursor (storage/database.py `Prepared`); the same statements serve
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPICursor

from conversations.effects import (
    CaseSubmitted,
    ConsentGiven,
    Effect,
    IngestFile,
    NotifyCoordinators,
)
from conversations.state import ConversationKey, ConversationState
from conversations.transition import Transition
from handlers.events import Inbound
from storage.database import Prepared, hot_connections
from storage.models import Case, ConsentRecord, Conversation, Job, Outbox, ProcessedUpdate

CASE_STATUS_SUBMITTED = "submitted"

_conversation = Conversation.__table__  # type: ignore[attr-defined]
_processed = ProcessedUpdate.__table__  # type: ignore[attr-defined]
_outbox = Outbox.__table__  # type: ignore[attr-defined]
_case = Case.__table__  # type: ignore[attr-defined]
_consent = ConsentRecord.__table__  # type: ignore[attr-defined]
_job = Job.__table__  # type: ignore[attr-defined]

Apply = Callable[[ConversationState | None], Transition]


class ConversationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._db = hot_connections(engine)
        dialect = engine.dialect
        sql = postgresql if dialect.name == "postgresql" else sqlite
        self._record_update = Prepared(
            sql.insert(_processed).on_conflict_do_nothing().returning(_processed.c.update_key),
            dialect,
        )
        upsert = sql.insert(_conversation)
        self._save = Prepared(
            upsert.on_conflict_do_update(
                index_elements=[_conversation.c.channel, _conversation.c.user_key],
                set_={
                    "chat_key": upsert.excluded.chat_key,
                    "step": upsert.excluded.step,
                    "locale": upsert.excluded.locale,
                    "state_json": upsert.excluded.state_json,
                    "updated_at": upsert.excluded.updated_at,
                },
            ),
            dialect,
        )
        # FOR UPDATE locks the row on PostgreSQL; SQLite already holds the write lock from
        # BEGIN IMMEDIATE (the lock is taken before the state is read: aiogram issue #1317).
        self._load = Prepared(
            select(_conversation.c.state_json)
            .where(
                _conversation.c.channel == bindparam("channel"),
                _conversation.c.user_key == bindparam("user_key"),
            )
            .with_for_update(),
            dialect,
        )
        self._add_outbox = Prepared(
            _outbox.insert(),
            dialect,
            ["channel", "chat_key", "audience", "payload_json", "created_at", "attempts"],
        )
        self._add_consent = Prepared(
            _consent.insert(), dialect, ["channel", "user_key", "scope", "version", "given_at"]
        )
        self._add_case = Prepared(
            _case.insert(),
            dialect,
            [
                "id", "reference", "channel", "user_key", "chat_key", "status", "locale", "area",
                "verdict", "readiness", "answers_json", "submitted_at", "updated_at",
            ],
        )
        self._add_job = Prepared(
            _job.insert(),
            dialect,
            ["kind", "channel", "user_key", "chat_key", "payload_json", "created_at", "attempts"],
        )

    def process(self, inbound: Inbound, now: datetime, apply: Apply) -> Transition | None:
        """Run one inbound in one transaction. None when the update was seen before."""
        with self._db.transaction() as cursor:
            first = self._record_update.execute(
                cursor,
                {"channel": inbound.channel, "update_key": inbound.update_key, "processed_at": now},
            ).fetchone()
            if first is None:
                return None
            key = ConversationKey(inbound.channel, inbound.user_key)
            state = self._load_state(cursor, key)
            transition = apply(state)
            self._write(cursor, key, inbound.chat_key, transition, now)
            return transition

    def load(self, key: ConversationKey) -> ConversationState | None:
        with self._db.reading() as cursor:
            return self._load_state(cursor, key)

    def _load_state(self, cursor: DBAPICursor, key: ConversationKey) -> ConversationState | None:
        row = self._load.execute(
            cursor, {"channel": key.channel, "user_key": key.user_key}
        ).fetchone()
        return None if row is None else ConversationState.model_validate_json(row[0])

    def _write(
        self,
        cursor: DBAPICursor,
        key: ConversationKey,
        chat_key: str,
        transition: Transition,
        now: datetime,
    ) -> None:
        state = transition.state
        self._save.execute(
            cursor,
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
        if transition.effects:
            rows += self._apply_effects(cursor, key, chat_key, transition.effects, now)
        if len(rows) == 1:
            self._add_outbox.execute(cursor, rows[0])
        elif rows:
            self._add_outbox.executemany(cursor, rows)

    def _apply_effects(
        self,
        cursor: DBAPICursor,
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
                self._add_consent.execute(
                    cursor,
                    {**who, "scope": effect.scope, "version": effect.version,
                     "given_at": effect.given_at},
                )
            elif isinstance(effect, CaseSubmitted):
                self._add_case.execute(
                    cursor,
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
                    },
                )
            elif isinstance(effect, IngestFile):
                self._add_job.execute(
                    cursor,
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
        return outbox_rows
