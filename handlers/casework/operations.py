"""The coordinators' work on a case, whichever way they act (buttons on the case card in
their chat, or the CLI): moves between statuses (each checked against the one table in
conversations/case_status.py), requests for missing items, the opinion, translations,
reminders, and cases left idle.

Every action is checked (only coordinators act), recorded as a case event (who, when, from,
to), told to the patient in their language (a system event their conversation applies, see
conversations/case_progress.py) and shown to coordinators (their card is redrawn).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from conversations.case_progress import DECLINE_REASONS
from conversations.case_status import FINISHED, PREPARING, VALUES, CaseStatus, can_move
from conversations.events import CoordinatorNotice, Inbound, InboundKind
from conversations.i18n import bilingual
from handlers.updates.pipeline import Pipeline
from records.checklist import ITEMS
from records.markers import N_
from storage.audit import AuditLog
from storage.documents import DocumentRow, DocumentStore
from storage.files import FileStore
from storage.models import Case, CaseEvent, CoordinatorAction, Outbox, SectionTranslation

log = logging.getLogger(__name__)

# Statuses waiting on the patient or on the specialists are not idle when quiet for days.
IDLE_FACTOR: dict[str, int] = {CaseStatus.WAITING_FOR_PATIENT: 3, CaseStatus.SENT_TO_SPECIALIST: 5}


class CaseworkRefused(Exception):
    """An action that cannot be done; the message says why, for the coordinator."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a coordinator's account id, from the chat or given to the CLI."""

    id: str
    via: str  # "chat" or "cli"

    @property
    def label(self) -> str:
        return f"{self.via}:{self.id}"


class Casework:
    def __init__(
        self,
        engine: Engine,
        pipeline: Pipeline,
        files: FileStore,
        documents: DocumentStore,
        coordinator_ids: frozenset[str],
        audit: AuditLog,
        clock: Callable[[], datetime],
        followup_questions: int = 3,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.pipeline = pipeline
        self.files = files
        self.documents = documents
        self.coordinator_ids = coordinator_ids
        self.clock = clock
        self.followup_questions = followup_questions

    # --- who may act -------------------------------------------------------------------------

    def authorise(self, actor: Actor, action: str, reference: str) -> None:
        """Only listed coordinators act in chat; the CLI runs on the server, but an `--as`
        that names an account must name a listed one. Every attempt is recorded."""
        allowed = actor.id in self.coordinator_ids or (
            actor.via == "cli" and not self.coordinator_ids
        )
        with Session(self.engine) as session:
            session.add(
                CoordinatorAction(
                    actor=actor.label,
                    action=action,
                    case_reference=reference,
                    allowed=allowed,
                    at=self.clock(),
                )
            )
            session.commit()
        if not allowed:
            log.warning("refused a case action from an account not listed")
            raise CaseworkRefused(bilingual(N_("Only coordinators can act on cases.")))

    # --- reading -------------------------------------------------------------------------

    def case(self, reference: str) -> Case:
        with Session(self.engine) as session:
            found = session.exec(select(Case).where(Case.reference == reference.upper())).first()
        if found is None:
            raise CaseworkRefused(
                bilingual(N_("No case has the reference {reference}."), reference=reference)
            )
        return found

    def events(self, case_id: str) -> list[CaseEvent]:
        with Session(self.engine) as session:
            query = (
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.id))
            )
            return list(session.exec(query).all())

    def translations(self, case_id: str) -> dict[str, str]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(SectionTranslation).where(SectionTranslation.case_id == case_id)
            ).all()
            return {row.section: row.text for row in rows}

    # --- acting --------------------------------------------------------------------------

    def claim(self, reference: str, actor: Actor) -> Case:
        self.authorise(actor, "claim", reference)
        case = self.case(reference)
        if case.status != CaseStatus.SUBMITTED:
            raise CaseworkRefused(bilingual(N_("This case was already claimed.")))
        return self._move(case, CaseStatus.IN_REVIEW, actor, coordinator=actor.id)

    def move(
        self, reference: str, status: str, actor: Actor, note: str = "", reason: str = ""
    ) -> Case:
        self.authorise(actor, f"status:{status}", reference)
        case = self.case(reference)
        if status not in VALUES:
            known = ", ".join(CaseStatus)
            raise CaseworkRefused(f"unknown status {status}; one of: {known}")
        _check_move(case.status, status)
        if status == CaseStatus.DECLINED and reason not in DECLINE_REASONS:
            reason = "other"
        if status == CaseStatus.OPINION_DELIVERED:
            raise CaseworkRefused(bilingual(N_("Attach the opinion to deliver it.")))
        # A claim handed back: the case is anyone's again.
        unclaimed = status == CaseStatus.SUBMITTED
        changes: dict[str, object] = {"coordinator": None} if unclaimed else {}
        return self._move(case, status, actor, note=note, reason=reason, changes=changes)

    def request(self, reference: str, items: Sequence[str], actor: Actor, note: str = "") -> Case:
        """Ask the patient for checklist items: what is needed, why, how to get it."""
        self.authorise(actor, "request", reference)
        case = self.case(reference)
        unknown = [item for item in items if item not in ITEMS]
        if not items or unknown:
            raise CaseworkRefused(
                f"unknown checklist items: {', '.join(unknown) or '(none given)'}; "
                f"known: {', '.join(ITEMS)}"
            )
        if case.status not in PREPARING:
            raise CaseworkRefused(bilingual(N_("Claim the case before requesting items.")))
        now = self.clock()
        return self._move(
            case,
            CaseStatus.WAITING_FOR_PATIENT,
            actor,
            note=note,
            kind="requested",
            details={"items": list(items)},
            changes={
                "requested_json": json.dumps(list(items)),
                "requested_at": now,
                "reminders_sent": 0,
            },
        )

    def attach_opinion(
        self, reference: str, original: Path, translation: Path | None, actor: Actor
    ) -> Case:
        """Store the specialist's written opinion (and its translation) with the case and
        deliver both to the patient."""
        self.authorise(actor, "opinion", reference)
        case = self.case(reference)
        if case.status not in (CaseStatus.SENT_TO_SPECIALIST, CaseStatus.OPINION_RECEIVED):
            raise CaseworkRefused(bilingual(N_("Send the case to a specialist first.")))
        stored: list[tuple[str, str]] = []
        rows = []
        for kind, path in (("opinion", original), ("opinion_translation", translation)):
            if path is None:
                continue
            with path.open("rb") as source:
                kept = self.files.put(source)
            stored.append((kept.sha256, path.name))
            rows.append(
                DocumentRow(
                    file_id=f"{case.id}:{kind}:{kept.sha256[:16]}",
                    case_id=case.id,
                    item="opinion",
                    sha256=kept.sha256,
                    size=kept.size,
                    original_name=path.name,
                    stored_at=self.clock(),
                    kind=kind,
                )
            )
        self.documents.add(rows)
        if case.status == CaseStatus.SENT_TO_SPECIALIST:
            case = self._move(case, CaseStatus.OPINION_RECEIVED, actor)
        details: dict[str, object] = {
            "files": json.dumps(stored),
            "followups": str(self.followup_questions),
        }
        return self._move(
            case, CaseStatus.OPINION_DELIVERED, actor, kind="opinion", details=details
        )

    def translate(self, reference: str, section: str, text: str, actor: Actor) -> None:
        self.authorise(actor, f"translate:{section}", reference)
        case = self.case(reference)
        now = self.clock()
        with Session(self.engine) as session:
            row = session.get(SectionTranslation, (case.id, section))
            if row is None:
                row = SectionTranslation(
                    case_id=case.id, section=section, text=text, translator=actor.label, at=now
                )
            else:
                row.text, row.translator, row.at = text, actor.label, now
            session.add(row)
            session.add(self._event(case, actor, "translation", details={"section": section}))
            self._audit(session, actor, "translation", case.reference, {"section": section})
            session.commit()

    def record_export(self, reference: str, out: Path, actor: Actor) -> None:
        case = self.case(reference)
        with Session(self.engine) as session:
            session.add(self._event(case, actor, "export", details={"file": out.name}))
            self._audit(session, actor, "export", case.reference)
            session.commit()

    def record_view(self, reference: str, actor: Actor) -> Case:
        """A coordinator read the whole case (`huizhen queue show`): audited."""
        case = self.case(reference)
        with Session(self.engine) as session:
            self._audit(session, actor, "view", case.reference)
            session.commit()
        return case

    def _audit(
        self,
        session: Session,
        actor: Actor,
        action: str,
        reference: str,
        details: dict[str, object] | None = None,
    ) -> None:
        self.audit.append(
            session.connection(),
            at=self.clock(),
            actor=actor.label,
            action=action,
            subject=reference,
            details=details,
        )

    # --- scheduled: reminders and idle cases ---------------------------------------------

    def remind(self, reminder_days: int, max_reminders: int) -> int:
        """Remind patients who were asked for items; the schedule is read from the cases, so
        it survives restarts and a reminder is never sent twice."""
        now = self.clock()
        sent = 0
        with Session(self.engine) as session:
            waiting = session.exec(
                select(Case).where(Case.status == CaseStatus.WAITING_FOR_PATIENT)
            ).all()
        for case in waiting:
            if case.requested_at is None or case.reminders_sent >= max_reminders:
                continue
            due = case.requested_at + timedelta(days=reminder_days * (case.reminders_sent + 1))
            if _naive(due) > _naive(now):
                continue
            number = case.reminders_sent + 1
            with Session(self.engine) as session:
                fresh = session.get(Case, case.id)
                if fresh is None or fresh.reminders_sent != case.reminders_sent:
                    continue  # another worker got there first
                fresh.reminders_sent = number
                session.add(fresh)
                session.add(self._event(fresh, Actor("huizhen", "schedule"), "reminder"))
                session.commit()
            self._tell_patient(case, f"reminder:{case.id}:{number}", {"kind": "reminder"})
            sent += 1
        return sent

    def surface_idle(self, idle_days: int) -> list[str]:
        """Cases left too long in one status: coordinators are told once per status."""
        now = self.clock()
        told = []
        with Session(self.engine) as session:
            cases = session.exec(select(Case)).all()
            for case in cases:
                if case.status in FINISHED or case.status_changed_at is None:
                    continue
                limit = timedelta(days=idle_days * IDLE_FACTOR.get(case.status, 1))
                since = _naive(case.status_changed_at)
                if _naive(now) - since < limit:
                    continue
                if case.idle_noticed_at is not None and _naive(case.idle_noticed_at) >= since:
                    continue
                case.idle_noticed_at = now
                session.add(case)
                days = (_naive(now) - since).days
                text = bilingual(
                    N_("Case {reference} has been {status} for {days} days."),
                    reference=case.reference,
                    status=case.status,
                    days=days,
                )
                session.add(self._notice_row(case, text))
                told.append(case.reference)
            session.commit()
        return told

    # --- the mechanism ---------------------------------------------------------------------

    def _move(
        self,
        case: Case,
        status: str,
        actor: Actor,
        *,
        note: str = "",
        reason: str = "",
        kind: str = "status",
        coordinator: str | None = None,
        details: dict[str, object] | None = None,
        changes: dict[str, object] | None = None,
    ) -> Case:
        now = self.clock()
        with Session(self.engine) as session:
            fresh = session.get(Case, case.id)
            assert fresh is not None
            if fresh.status != case.status:
                raise CaseworkRefused(bilingual(N_("Someone else changed this case just now.")))
            if status != fresh.status:  # a second request keeps the case where it is
                _check_move(fresh.status, status)
            event = self._event(
                fresh,
                actor,
                kind,
                to_status=status,
                note=note,
                details={**(details or {}), **({"reason": reason} if reason else {})},
            )
            self._audit(
                session,
                actor,
                "status",
                fresh.reference,
                {"from": fresh.status, "to": status, "kind": kind},
            )
            fresh.status = status
            fresh.status_changed_at = now
            fresh.updated_at = now
            fresh.card_mode = ""
            fresh.card_picks_json = "[]"
            if coordinator is not None:
                fresh.coordinator = coordinator
            for name, value in (changes or {}).items():
                setattr(fresh, name, value)
            session.add(fresh)
            session.add(event)
            session.add(self._notice_row(fresh, ""))
            session.commit()
            session.refresh(fresh)
            session.refresh(event)
        system = {"kind": kind, "status": status, "note": note, "reason": reason}
        system.update({key: _text(value) for key, value in (details or {}).items()})
        self._tell_patient(fresh, f"case-event:{event.id}", system)
        return fresh

    def _event(
        self,
        case: Case,
        actor: Actor,
        kind: str,
        *,
        to_status: str = "",
        note: str = "",
        details: dict[str, object] | None = None,
    ) -> CaseEvent:
        return CaseEvent(
            case_id=case.id,
            at=self.clock(),
            actor=actor.label,
            kind=kind,
            from_status=case.status,
            to_status=to_status,
            note=note,
            details_json=json.dumps(details or {}, ensure_ascii=False),
        )

    def _notice_row(self, case: Case, text: str) -> Outbox:
        """The coordinators' card is redrawn (and `text`, if any, posted) by whichever
        process delivers the outbox."""
        notice = CoordinatorNotice(case_id=case.id, case_ref=case.reference, text=text)
        return Outbox(
            channel=case.channel,
            chat_key="",
            audience="coordinators",
            payload_json=notice.model_dump_json(),
            created_at=self.clock(),
        )

    def _tell_patient(self, case: Case, update_key: str, system: dict[str, str]) -> None:
        self.pipeline.handle(
            Inbound(
                channel=case.channel,
                user_key=case.user_key,
                chat_key=case.chat_key,
                update_key=update_key,
                kind=InboundKind.SYSTEM,
                system={"event": "case_update", "case_id": case.id, **system},
            )
        )


def _check_move(before: str, after: str) -> None:
    """Every coordinator's move, whichever action makes it, goes by the one table."""
    if not can_move(before, after):
        raise CaseworkRefused(
            bilingual(
                N_("A case cannot go from {current} to {wanted}."), current=before, wanted=after
            )
        )


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _naive(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (UTC); compare everything that way."""
    return moment.replace(tzinfo=None)
