"""The per-update transaction: dedupe, lock and load, apply, save, and carry out what follows.

One inbound runs in ONE database transaction: its update key is recorded (a redelivery stops
here), the conversation row is locked and loaded, the engine's step is applied, the new state
is saved, and the transition's replies and effects (consents, a submitted case, files to store,
coordinator notices, a withdrawal) are written beside it. The tables themselves are plain
access in storage/conversations.py; what each effect means lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from conversations.case_status import CaseStatus, patient_move
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
from conversations.events import CoordinatorNotice, Inbound, Outbound
from conversations.i18n import bilingual
from conversations.state import ConversationKey, ConversationState
from conversations.transition import Transition
from records.markers import N_
from storage.audit import AuditLog
from storage.conversations import ConversationTables, SavedConversation, outbox_row

Apply = Callable[[ConversationState | None], Transition]


def for_coordinators(channel: str, notice: CoordinatorNotice, now: datetime) -> dict[str, Any]:
    """An outbox row for the coordinators' chat."""
    return outbox_row(channel, "", "coordinators", notice.model_dump_json(), now)


def for_user(channel: str, chat_key: str, message: Outbound, now: datetime) -> dict[str, Any]:
    return outbox_row(
        channel, chat_key, "user", message.model_dump_json(exclude_defaults=True), now
    )


class ConversationStore:
    """Conversations as the pipeline sees them: one transaction per inbound."""

    def __init__(self, tables: ConversationTables, audit: AuditLog) -> None:
        self.tables = tables
        self.engine = tables.engine
        self.audit = audit

    def process(
        self, inbound: Inbound, now: datetime, apply: Apply, settles: Sequence[int] = ()
    ) -> Transition | None:
        """Run one inbound in one transaction. None when the update was seen before.
        `settles`: jobs this inbound reports on (a batch of checked files), marked done in
        the same transaction, so a crash cannot leave them to be reported a second time."""
        with self.tables.transaction() as conn:
            if settles:
                self.tables.settle_jobs(conn, settles, now)
            if not self.tables.record_update(conn, inbound.channel, inbound.update_key, now):
                return None
            key = ConversationKey(inbound.channel, inbound.user_key)
            raw = self.tables.load_json(conn, key.channel, key.user_key)
            state = None if raw is None else ConversationState.model_validate_json(raw)
            transition = apply(state)
            self._write(conn, key, inbound.chat_key, transition, now)
            return transition

    def first_time(self, channel: str, update_key: str, now: datetime) -> bool:
        """Record an update that is not a conversation's (a coordinator's press); False when
        it was seen before, so a platform's redelivery has no second effect."""
        return self.tables.first_time(channel, update_key, now)

    def load(self, key: ConversationKey) -> ConversationState | None:
        raw = self.tables.read_json(key.channel, key.user_key)
        return None if raw is None else ConversationState.model_validate_json(raw)

    def enqueue(self, channel: str, chat_key: str, message: Outbound, now: datetime) -> None:
        """A message outside any update (progress while files are checked)."""
        self.tables.enqueue(for_user(channel, chat_key, message, now))

    def _write(
        self,
        conn: Connection,
        key: ConversationKey,
        chat_key: str,
        transition: Transition,
        now: datetime,
    ) -> None:
        state = transition.state
        saved = SavedConversation(chat_key, state.step, state.locale, state.model_dump_json())
        self.tables.save(conn, key.channel, key.user_key, saved, now)
        rows = [for_user(key.channel, chat_key, reply, now) for reply in transition.replies]
        rows += self._apply_effects(conn, key, chat_key, transition.effects, now)
        self.tables.add_outbox(conn, rows)

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
                self.tables.add_consent(
                    conn,
                    {
                        **who,
                        "scope": effect.scope,
                        "version": effect.version,
                        "given_at": effect.given_at,
                    },
                )
            elif isinstance(effect, CaseSubmitted):
                self.tables.add_case(
                    conn,
                    {
                        **who,
                        "id": effect.case_id,
                        "reference": effect.reference,
                        "chat_key": chat_key,
                        "status": CaseStatus.SUBMITTED,
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
                    conn, now, effect.reference, "", CaseStatus.SUBMITTED, person=person
                )
            elif isinstance(effect, IngestFile | DataRightRequested):
                kind = effect.kind if isinstance(effect, IngestFile) else effect.right
                self.tables.add_job(
                    conn,
                    {
                        **who,
                        "kind": kind,
                        "chat_key": chat_key,
                        "payload_json": effect.model_dump_json(),
                        "created_at": now,
                        "attempts": 0,
                    },
                )
                if isinstance(effect, DataRightRequested):
                    action = "export_requested" if effect.right == "export" else "erasure_requested"
                    self.audit.append(conn, at=now, actor="patient", action=action, subject=person)
                if isinstance(effect, DataRightRequested) and effect.right == "erase":
                    # At once, not when the erasure job runs: nothing more arrives meanwhile.
                    self.tables.revoke_links(conn, key.channel, key.user_key, now)
            elif isinstance(effect, NotifyCoordinators):
                outbox_rows.append(for_coordinators(key.channel, effect.notice, now))
            elif isinstance(effect, FollowUpAsked):
                self._follow_up(conn, effect)
            elif isinstance(effect, ConsentWithdrawn):
                outbox_rows += self._withdraw(conn, key, person, effect)
            elif isinstance(effect, FileSorted):
                self.tables.sort_file(conn, effect.file_id, effect.item)
        return outbox_rows

    def _withdraw(
        self, conn: Connection, key: ConversationKey, person: str, effect: ConsentWithdrawn
    ) -> list[dict[str, Any]]:
        """Processing stops in this transaction: consents marked withdrawn, upload and download
        links revoked, files not yet stored dropped, open cases stopped with coordinators
        told. Returns their notices."""
        self.tables.withdraw_consents(conn, key.channel, key.user_key, effect.at)
        self.tables.revoke_links(conn, key.channel, key.user_key, effect.at)
        self.tables.drop_pending_jobs(conn, key.channel, key.user_key, "ingest_file", effect.at)
        self.audit.append(
            conn, at=effect.at, actor="patient", action="consent_withdrawn", subject=person
        )
        notices = []
        for case_id in effect.case_ids:
            found = self.tables.case_header(conn, case_id)
            withdrawn = None if found is None else patient_move("withdraw", found.status)
            if found is None or withdrawn is None:
                continue
            self.tables.set_case_status(
                conn, case_id, withdrawn, effect.at, card_mode="", card_picks_json="[]"
            )
            self.tables.add_case_event(
                conn,
                {
                    "case_id": case_id,
                    "at": effect.at,
                    "actor": "patient",
                    "kind": "withdrawn",
                    "from_status": found.status,
                    "to_status": withdrawn,
                },
            )
            self._status_changed(
                conn, effect.at, found.reference, found.status, withdrawn, person=person
            )
            text = bilingual(
                N_("The patient withdrew consent for case {reference}: please stop work on it."),
                reference=found.reference,
            )
            notice = CoordinatorNotice(case_id=case_id, case_ref=found.reference, text=text)
            notices.append(for_coordinators(key.channel, notice, effect.at))
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
        found = self.tables.case_header(conn, effect.case_id)
        if found is None:
            return
        # The question is kept whatever the status; the case moves only where the table says.
        target = patient_move("follow_up", found.status) or found.status
        if target != found.status:
            self._status_changed(
                conn, effect.asked_at, found.reference, found.status, target, kind="follow_up"
            )
        self.tables.add_case_event(
            conn,
            {
                "case_id": effect.case_id,
                "at": effect.asked_at,
                "actor": "patient",
                "kind": "follow_up",
                "from_status": found.status,
                "to_status": target,
                "note": effect.text,
            },
        )
        if target != found.status:
            self.tables.set_case_status(conn, effect.case_id, target, effect.asked_at)
