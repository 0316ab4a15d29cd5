"""Coordinator actions from a chat: platform-neutral rendering of case cards and the rules
for who may act. Only accounts listed in COORDINATOR_IDS act; every attempt is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from conversations.fit import VERDICT_TITLES
from conversations.i18n import COORDINATOR_LOCALES, N_, bilingual, translator
from conversations.state import ConversationState, IntakeDraft
from conversations.steps.records import draft_readiness
from records.checklist import AREAS
from storage.models import Case, CoordinatorAction

CLAIM = N_("Claim")


@dataclass(frozen=True)
class CaseCard:
    reference: str
    text: str
    # (label, action id) pairs; the action id is "claim:<reference>".
    actions: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ActionResult:
    allowed: bool
    answer: str
    card: CaseCard | None = None


def render_card(case: Case, now: datetime) -> CaseCard:
    draft = IntakeDraft.model_validate_json(case.answers_json)
    result = draft_readiness(ConversationState(step="submitted", locale=case.locale, draft=draft))
    waited = now.replace(tzinfo=None) - case.updated_at.replace(tzinfo=None)
    hours = max(0, int(waited.total_seconds() // 3600))
    blocks = []
    for locale in COORDINATOR_LOCALES:
        t = translator(locale)
        missing = t.join([t(item.label) for item in result.missing_critical]) or t("none")
        lines = [
            t("Case {reference}", reference=case.reference),
            t("Status: {status} (for {hours} h)", status=case.status, hours=hours),
            t("Language: {locale}", locale=case.locale),
            t("Area: {value}", value=t(AREAS.get(case.area, case.area))),
            t("Assessment: {value}", value=t(VERDICT_TITLES.get(case.verdict, case.verdict))),
            t("Readiness: {score}%", score=case.readiness),
            t("Missing: {items}", items=missing),
        ]
        if case.coordinator:
            lines.append(t("Claimed by: {coordinator}", coordinator=case.coordinator))
        blocks.append("\n".join(lines))
    actions: tuple[tuple[str, str], ...] = ()
    if case.status == "submitted":
        label = " / ".join(translator(locale)(CLAIM) for locale in COORDINATOR_LOCALES)
        actions = ((label, f"claim:{case.reference}"),)
    return CaseCard(case.reference, "\n\n".join(blocks), actions)


class CoordinatorDesk:
    def __init__(self, engine: Engine, coordinator_ids: frozenset[str]) -> None:
        self.engine = engine
        self.coordinator_ids = coordinator_ids

    def card(self, reference: str, now: datetime) -> CaseCard | None:
        with Session(self.engine) as session:
            case = session.exec(select(Case).where(Case.reference == reference)).first()
            return None if case is None else render_card(case, now)

    def remember_card(self, reference: str, message_ref: str) -> None:
        with Session(self.engine) as session:
            case = session.exec(select(Case).where(Case.reference == reference)).first()
            if case is not None:
                case.card_message_ref = message_ref
                session.add(case)
                session.commit()

    def card_message_ref(self, reference: str) -> str | None:
        with Session(self.engine) as session:
            case = session.exec(select(Case).where(Case.reference == reference)).first()
            return None if case is None else case.card_message_ref

    def act(self, actor: str, action_id: str, now: datetime) -> ActionResult:
        action, _, reference = action_id.partition(":")
        allowed = actor in self.coordinator_ids
        with Session(self.engine) as session:
            session.add(
                CoordinatorAction(
                    actor=actor, action=action, case_reference=reference, allowed=allowed, at=now
                )
            )
            case = session.exec(select(Case).where(Case.reference == reference)).first()
            if not allowed:
                session.commit()
                return ActionResult(False, bilingual("Only coordinators can act on cases."))
            if case is None or action != "claim":
                session.commit()
                return ActionResult(True, bilingual("That case or action is not known."))
            if case.status != "submitted":
                session.commit()
                return ActionResult(
                    True, bilingual("This case was already claimed."), render_card(case, now)
                )
            case.status = "in_review"
            case.coordinator = actor
            case.updated_at = now
            session.add(case)
            session.commit()
            session.refresh(case)
            return ActionResult(
                True, bilingual("You have claimed this case."), render_card(case, now)
            )
