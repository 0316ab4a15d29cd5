"""The per-message transaction: dedupe, lock and load, apply, save, and queue what follows.

This is the hot path, so it uses SQLAlchemy Core statements built once and executed with bound
parameters; the same statements serve SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from conversations.effects import (
    CaseSubmitted,
    ConsentGiven,
    ConsentWithdrawn,
    DataRightRequested,
    Effect,
    FileSorted,
    FollowUpAsked,
    IngestFile,
    NotifyCoordinators,
)
from conversations.i18n import N_, bilingual
from conversations.state import ConversationKey, ConversationState
from conversations.transition import Transition
from handlers.events import CoordinatorNotice, Inbound, Outbound
from storage.audit import AuditLog
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
CASE_STATUS_WITHDRAWN = "withdrawn"
# Coordinators have finished with a case in these: a withdrawal leaves it as it is.
FINISHED_STATUSES = ("opinion_delivered", "closed", "declined", CASE_STATUS_WITHDRAWN)

_conversation = Conversation.__table__  # type: ignore[attr-defined]
_processed = ProcessedUpdate.__table__  # type: ignore[attr-defined]
_outbox = Outbox.__table__  # type: ignore[attr-defined]
_case = Case.__table__  # type: ignore[attr-defined]
_consent = ConsentRecord.__table__  # type: ignore[attr-defined]
_job = Job.__table__  # type: ignore[attr-defined]
_case_event = CaseEvent.__table__  # type: ignore[attr-defined]
_document = Document.__table__  # type: ignore[attr-defined]

Apply = Callable[[ConversationState | None], Transition]


def _for_coordinators(channel: str, notice: CoordinatorNotice, now: datetime) -> dict[str, Any]:
    """An outbox row for the coordinators' chat."""
    return {
        "channel": channel,
        "chat_key": "",
        "audience": "coordinators",
        "payload_json": notice.model_dump_json(),
        "created_at": now,
        "attempts": 0,
    }


class ConversationStore:
    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit
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

    def process(
        self, inbound: Inbound, now: datetime, apply: Apply, settles: Sequence[int] = ()
    ) -> Transition | None:
        """Run one inbound in one transaction. None when the update was seen before.
        `settles`: jobs this inbound reports on (a batch of checked files), marked done in
        the same transaction, so a crash cannot leave them to be reported a second time."""
        with self.engine.begin() as conn:
            if settles:
                conn.execute(update(_job).where(_job.c.id.in_(list(settles))).values(done_at=now))
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

    def first_time(self, channel: str, update_key: str, now: datetime) -> bool:
        """Record an update that is not a conversation's (a coordinator's press); False when
        it was seen before, so a platform's redelivery has no second effect."""
        with self.engine.begin() as conn:
            values = {"channel": channel, "update_key": update_key, "processed_at": now}
            return conn.execute(self._record_update, values).first() is not None

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
        person = self.audit.pseudonym(key.channel, key.user_key)
        for effect in effects:
            if isinstance(effect, ConsentGiven):
                self.audit.append(
                    conn,
                    at=effect.given_at,
                    actor="patient",
                    action="consent_given",
                    subject=person,
                    details={"scope": effect.scope, "version": effect.version},
                )
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
                self._status_changed(
                    conn, now, effect.reference, "", CASE_STATUS_SUBMITTED, person=person
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
                outbox_rows.append(_for_coordinators(key.channel, effect.notice, now))
            elif isinstance(effect, FollowUpAsked):
                self._follow_up(conn, effect)
            elif isinstance(effect, ConsentWithdrawn):
                outbox_rows += self._withdraw(conn, key, person, effect)
            elif isinstance(effect, DataRightRequested):
                conn.execute(
                    _job.insert(),
                    {
                        **who,
                        "kind": effect.right,
                        "chat_key": chat_key,
                        "payload_json": effect.model_dump_json(),
                        "created_at": now,
                        "attempts": 0,
                    },
                )
                action = "export_requested" if effect.right == "export" else "erasure_requested"
                self.audit.append(conn, at=now, actor="patient", action=action, subject=person)
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

    def _withdraw(
        self, conn: Connection, key: ConversationKey, person: str, effect: ConsentWithdrawn
    ) -> list[dict[str, Any]]:
        """Processing stops in this transaction: consents marked withdrawn, files not yet
        stored dropped, open cases stopped with coordinators told. Returns their notices."""
        mine = (_consent.c.channel == key.channel) & (_consent.c.user_key == key.user_key)
        conn.execute(
            update(_consent)
            .where(mine & _consent.c.withdrawn_at.is_(None))
            .values(withdrawn_at=effect.at)
        )
        conn.execute(
            update(_job)
            .where(
                (_job.c.channel == key.channel)
                & (_job.c.user_key == key.user_key)
                & (_job.c.kind == "ingest_file")
                & _job.c.done_at.is_(None)
            )
            .values(done_at=effect.at)
        )
        self.audit.append(
            conn, at=effect.at, actor="patient", action="consent_withdrawn", subject=person
        )
        notices = []
        for case_id in effect.case_ids:
            found = conn.execute(
                select(_case.c.status, _case.c.reference).where(_case.c.id == case_id)
            ).first()
            if found is None or found.status in FINISHED_STATUSES:
                continue
            conn.execute(
                update(_case)
                .where(_case.c.id == case_id)
                .values(
                    status=CASE_STATUS_WITHDRAWN,
                    status_changed_at=effect.at,
                    updated_at=effect.at,
                    card_mode="",
                    card_picks_json="[]",
                )
            )
            conn.execute(
                _case_event.insert(),
                {
                    "case_id": case_id,
                    "at": effect.at,
                    "actor": "patient",
                    "kind": "withdrawn",
                    "from_status": found.status,
                    "to_status": CASE_STATUS_WITHDRAWN,
                    "note": "",
                    "details_json": "{}",
                },
            )
            self._status_changed(
                conn, effect.at, found.reference, found.status, CASE_STATUS_WITHDRAWN, person=person
            )
            text = bilingual(
                N_("The patient withdrew consent for case {reference}: please stop work on it."),
                reference=found.reference,
            )
            notice = CoordinatorNotice(case_id=case_id, case_ref=found.reference, text=text)
            notices.append(_for_coordinators(key.channel, notice, effect.at))
        return notices

    def _status_changed(
        self,
        conn: Connection,
        at: datetime,
        reference: str,
        before: str,
        after: str,
        **details: str,
    ) -> None:
        """A case's status changed by the patient's doing, in the audit log."""
        self.audit.append(
            conn,
            at=at,
            actor="patient",
            action="status",
            subject=reference,
            details={"from": before, "to": after, **details},
        )

    def _follow_up(self, conn: Connection, effect: FollowUpAsked) -> None:
        """The question joins the case's history and the case returns to the queue."""
        found = conn.execute(
            select(_case.c.status, _case.c.reference).where(_case.c.id == effect.case_id)
        ).first()
        if found is None:
            return
        current = found.status
        self._status_changed(
            conn, effect.asked_at, found.reference, current, "in_review", kind="follow_up"
        )
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
