"""The case card in the coordinators' chat: platform-neutral text and buttons, and what each
button does. The card is one message, edited in place as the case moves; choosing items to
request or a reason to decline happens on the card itself (a picker), then the card returns.

Button ids are `<action>:<reference>[:<value>]`, well inside Telegram's 64 bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from conversations.case_progress import DECLINE_REASONS
from conversations.case_status import PREPARING, VALUES, CaseStatus
from conversations.fit import VERDICT_TITLES
from conversations.i18n import COORDINATOR_LOCALES, bilingual, translator
from conversations.state import ConversationState, IntakeDraft
from conversations.steps.records import draft_readiness
from handlers.casework.operations import Actor, Casework, CaseworkRefused
from handlers.documents.summary import SECTIONS
from records import directions
from records.checklist import AREAS, ITEMS, checklist_for
from records.markers import N_
from storage.models import Case, CaseEvent

S = CaseStatus

STATUS_LABELS: dict[CaseStatus, str] = {
    S.SUBMITTED: N_("submitted"),
    S.IN_REVIEW: N_("in review"),
    S.WAITING_FOR_PATIENT: N_("waiting for the patient"),
    S.READY_TO_SEND: N_("ready to send"),
    S.SENT_TO_SPECIALIST: N_("sent to a specialist"),
    S.OPINION_RECEIVED: N_("opinion received"),
    S.OPINION_DELIVERED: N_("opinion delivered"),
    S.CLOSED: N_("closed"),
    S.DECLINED: N_("declined"),
    S.WITHDRAWN: N_("consent withdrawn by the patient"),
}


@dataclass(frozen=True)
class Button:
    """A card button: what it does, the status it leads to (by the table in
    conversations/case_status.py), and its label."""

    # "claim"; "move" to `target`; "pick" items to request; "decline" with a reason.
    action: str
    target: CaseStatus
    label: str

    def action_id(self, reference: str) -> str:
        # Only a plain move names its target; the others lead to theirs by what they do.
        return f"{self.action}:{reference}" + (f":{self.target}" if self.action == "move" else "")


# Buttons per status; a status no coordinator moves from here has none.
BUTTONS: dict[CaseStatus, tuple[Button, ...]] = {
    S.SUBMITTED: (
        Button("claim", S.IN_REVIEW, N_("Claim")),
        Button("decline", S.DECLINED, N_("Decline")),
    ),
    S.IN_REVIEW: (
        Button("pick", S.WAITING_FOR_PATIENT, N_("Request items")),
        Button("move", S.READY_TO_SEND, N_("Ready to send")),
        Button("decline", S.DECLINED, N_("Decline")),
        Button("move", S.SUBMITTED, N_("Unclaim")),
    ),
    S.WAITING_FOR_PATIENT: (
        Button("move", S.READY_TO_SEND, N_("Ready to send")),
        Button("pick", S.WAITING_FOR_PATIENT, N_("Request items")),
        Button("move", S.IN_REVIEW, N_("Back to review")),
    ),
    S.READY_TO_SEND: (
        Button("move", S.SENT_TO_SPECIALIST, N_("Sent to specialist")),
        Button("move", S.IN_REVIEW, N_("Back to review")),
    ),
    S.SENT_TO_SPECIALIST: (Button("move", S.READY_TO_SEND, N_("Not sent after all")),),
    # The opinion arrives as files, through the CLI: no button delivers it.
    S.OPINION_RECEIVED: (),
    S.OPINION_DELIVERED: (
        Button("move", S.CLOSED, N_("Close")),
        Button("move", S.IN_REVIEW, N_("Reopen")),
    ),
    S.CLOSED: (Button("move", S.IN_REVIEW, N_("Reopen")),),
    S.DECLINED: (Button("move", S.IN_REVIEW, N_("Reopen")),),
    S.WITHDRAWN: (),
}
MAX_FOLLOWUP_SHOWN = 600


@dataclass(frozen=True)
class CaseCard:
    reference: str
    text: str
    # (label, action id) pairs.
    actions: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ActionResult:
    allowed: bool
    answer: str
    card: CaseCard | None = None


def _both(message: str) -> str:
    """A short label in every coordinator language, for buttons."""
    return " / ".join(translator(locale)(message) for locale in COORDINATOR_LOCALES)


def _duration(case: Case, now: datetime) -> tuple[int, str]:
    since = case.status_changed_at or case.updated_at
    hours = max(0, int((now.replace(tzinfo=None) - since.replace(tzinfo=None)).total_seconds()))
    hours //= 3600
    return (hours // 24, "d") if hours >= 48 else (hours, "h")


def render_card(case: Case, now: datetime, events: list[CaseEvent] | None = None) -> CaseCard:
    draft = IntakeDraft.model_validate_json(case.answers_json)
    result = draft_readiness(ConversationState(step="submitted", locale=case.locale, draft=draft))
    amount, unit = _duration(case, now)
    requested = [ITEMS[i] for i in json.loads(case.requested_json or "[]") if i in ITEMS]
    followups = [e for e in events or [] if e.kind == "follow_up"]
    blocks = []
    for locale in COORDINATOR_LOCALES:
        t = translator(locale)
        missing = t.join([t(item.label) for item in result.missing_critical]) or t("none")
        status = t(STATUS_LABELS[S(case.status)]) if case.status in VALUES else case.status
        lines = [
            t("Case {reference}", reference=case.reference),
            t(
                "Status: {status} (for {amount} {unit})",
                status=status,
                amount=amount,
                unit=t("days") if unit == "d" else t("hours"),
            ),
            t("Language: {locale}", locale=case.locale),
            t("Area: {value}", value=t(AREAS.get(case.area, case.area))),
            t("Assessment: {value}", value=t(VERDICT_TITLES.get(case.verdict, case.verdict))),
            t("Readiness: {score}%", score=case.readiness),
            t("Missing: {items}", items=missing),
        ]
        if requested:
            lines.append(t("Requested: {items}", items=t.join([t(i.label) for i in requested])))
        if case.coordinator:
            lines.append(t("Claimed by: {coordinator}", coordinator=case.coordinator))
        found = directions.for_area(case.area)
        if found and case.status in PREPARING:
            chinese = locale.startswith("zh")
            names = [
                f"{d.hospital} ({d.city}, {d.strength_zh if chinese else d.strength_en})"
                for d in found
            ]
            lines.append(
                t(
                    "Directions to consider (you decide; never promised to the patient): {list}",
                    list="; ".join(names),
                )
            )
        blocks.append("\n".join(lines))
    if followups:
        question = followups[-1].note[:MAX_FOLLOWUP_SHOWN]
        blocks.append(bilingual(N_("Follow-up question from the patient:")) + f"\n{question}")
    return CaseCard(case.reference, "\n\n".join(blocks), _actions(case))


def _actions(case: Case) -> tuple[tuple[str, str], ...]:
    ref = case.reference
    if case.card_mode == "pick":
        picked = set(json.loads(case.card_picks_json or "[]"))
        draft = IntakeDraft.model_validate_json(case.answers_json)
        items = tuple(
            (("✓ " if item.id in picked else "") + _both(item.label), f"toggle:{ref}:{item.id}")
            for item in checklist_for(draft.area)
        )
        return (
            *items,
            (_both(N_("Send the request")), f"send:{ref}"),
            (_both(N_("Cancel")), f"cancel:{ref}"),
        )
    if case.card_mode == "decline":
        reasons = tuple(
            (_both(text), f"declined:{ref}:{reason}") for reason, text in DECLINE_REASONS.items()
        )
        return (*reasons, (_both(N_("Cancel")), f"cancel:{ref}"))
    buttons = BUTTONS[S(case.status)] if case.status in VALUES else ()
    return tuple((_both(button.label), button.action_id(ref)) for button in buttons)


class CoordinatorDesk:
    """The card and its buttons, over Casework; used by every coordinators' chat channel."""

    def __init__(self, casework: Casework) -> None:
        self.casework = casework

    def card(self, reference: str, now: datetime) -> CaseCard | None:
        try:
            case = self.casework.case(reference)
        except CaseworkRefused:
            return None
        return render_card(case, now, self.casework.events(case.id))

    def remember_card(self, reference: str, message_ref: str) -> None:
        self._set(reference, card_message_ref=message_ref)

    def card_message_ref(self, reference: str) -> str | None:
        try:
            return self.casework.case(reference).card_message_ref
        except CaseworkRefused:
            return None

    def act(self, actor_id: str, action_id: str, message_ref: str, now: datetime) -> ActionResult:
        """A press on the card in message `message_ref`. Button data comes from the client and
        can be forged: it is obeyed only when it names the case whose card that message is,
        and a refused press redraws nothing (a forged press once redrew a card as another
        case's, for anyone in the group to read)."""
        action, _, rest = action_id.partition(":")
        reference, _, value = rest.partition(":")
        listed = actor_id in self.casework.coordinator_ids
        card_ref = self.card_message_ref(reference)
        if not message_ref or card_ref != message_ref:
            return ActionResult(listed, bilingual(N_("That button is not on this case's card.")))
        actor = Actor(actor_id, "chat")
        try:
            answer = self._do(action, reference, value, actor)
        except CaseworkRefused as refused:
            # A coordinator's refused move redraws the card as it now stands; anyone else's
            # press changes nothing on screen.
            card = self.card(reference, now) if listed else None
            return ActionResult(listed, str(refused), card)
        return ActionResult(True, answer, self.card(reference, now))

    def translate(self, actor_id: str, args: str) -> str:
        """`/translate REF SECTION text` in the coordinators' chat."""
        reference, section, text = [*args.split(maxsplit=2), "", "", ""][:3]
        section_ids = [spec.id for spec in SECTIONS]
        if section not in section_ids or not text.strip():
            return bilingual(
                N_("Write: /translate REFERENCE SECTION text. Sections: {sections}"),
                sections=", ".join(section_ids),
            )
        try:
            self.casework.translate(reference, section, text.strip(), Actor(actor_id, "chat"))
        except CaseworkRefused as refused:
            return str(refused)
        return bilingual(N_("Translation saved for {reference}."), reference=reference.upper())

    def _do(self, action: str, reference: str, value: str, actor: Actor) -> str:
        work = self.casework
        if action == "claim":
            work.claim(reference, actor)
            return bilingual(N_("You have claimed this case."))
        if action == "move":
            work.move(reference, value, actor)
            return bilingual(N_("Done."))
        if action == "declined":
            work.move(reference, CaseStatus.DECLINED, actor, reason=value)
            return bilingual(N_("The case is declined; the patient has been told kindly."))
        # The pickers: only coordinators open them, and nothing is sent until confirmed.
        work.authorise(actor, action, reference)
        case = work.case(reference)
        if action == "pick":
            self._set(reference, card_mode="pick", card_picks_json="[]")
        elif action == "decline":
            self._set(reference, card_mode="decline")
        elif action == "toggle" and case.card_mode == "pick" and value in ITEMS:
            picked = set(json.loads(case.card_picks_json or "[]")) ^ {value}
            self._set(reference, card_picks_json=json.dumps(sorted(picked)))
        elif action == "send" and case.card_mode == "pick":
            picked = json.loads(case.card_picks_json or "[]")
            if not picked:
                return bilingual(N_("Choose at least one item first."))
            work.request(reference, picked, actor)
            return bilingual(N_("The patient has been asked, in their language."))
        elif action == "cancel":
            self._set(reference, card_mode="", card_picks_json="[]")
        else:
            return bilingual(N_("That case or action is not known."))
        return ""

    def _set(self, reference: str, **values: str) -> None:
        try:
            case = self.casework.case(reference)
        except CaseworkRefused:
            return
        with Session(self.casework.engine) as session:
            fresh = session.get(Case, case.id)
            if fresh is None:
                return
            for name, value in values.items():
                setattr(fresh, name, value)
            session.add(fresh)
            session.commit()
