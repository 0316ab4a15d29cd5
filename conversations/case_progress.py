"""What the patient hears as their submitted case moves through the coordinators' queue, and
the follow-up questions they may ask about the opinion.

Coordinators act outside the conversation (a card in their chat, the CLI); each action reaches
the patient as a system event (`case_update`) applied here, so the words are in the patient's
language, the state remembers where the case stands (for /status), and a repeated event
changes nothing (the pipeline dedupes it by its update key).
"""

from __future__ import annotations

import json
from datetime import datetime

from conversations.case_status import CaseStatus, patient_move
from conversations.effects import FollowUpAsked, NotifyCoordinators
from conversations.events import (
    STORE_SOURCE,
    CoordinatorNotice,
    FileRef,
    Option,
    Outbound,
    UploadLinkRequest,
)
from conversations.i18n import Translator, bilingual
from conversations.state import ConversationState, SubmittedCase
from conversations.step import Outcome
from conversations.steps.records import item_title
from conversations.transition import Transition, render
from records.checklist import ITEMS
from records.markers import N_

FOLLOWUP_PREFIX = "followup:"
MAX_FOLLOWUP_CHARS = 2000

# How each status reads to the patient in /status, with what happens next.
STATUS_TEXTS: dict[str, str] = {
    CaseStatus.SUBMITTED: N_(
        "Submitted. A coordinator will look at it soon and write to you here."
    ),
    CaseStatus.IN_REVIEW: N_(
        "A coordinator is reviewing it. They will tell you here if anything is missing."
    ),
    CaseStatus.WAITING_FOR_PATIENT: N_("Waiting for a few more records from you."),
    CaseStatus.READY_TO_SEND: N_("Complete. The coordinator is preparing it for the specialists."),
    CaseStatus.SENT_TO_SPECIALIST: N_(
        "With a specialist team in China. A written review usually takes 7 to 14 days; that is "
        "a usual time, not a promise."
    ),
    CaseStatus.OPINION_RECEIVED: N_(
        "The written opinion has arrived; the coordinator is preparing it."
    ),
    CaseStatus.OPINION_DELIVERED: N_("The written opinion was sent to you here."),
    CaseStatus.CLOSED: N_("Closed."),
    CaseStatus.DECLINED: N_("Not taken forward."),
    CaseStatus.WITHDRAWN: N_("Stopped: you withdrew your consent."),
}

DECLINE_REASONS = {
    "needs_in_person": N_(
        "The specialists could not answer your questions well from records alone; an "
        "in-person evaluation would be needed."
    ),
    "records_unavailable": N_(
        "The records a specialist needs to review your case could not be gathered."
    ),
    "outside_scope": N_("Your questions are outside what the specialists we work with review."),
    "patient_request": N_("You asked us to stop."),
    "other": N_("The coordinator explains below."),
}


def _case(state: ConversationState, case_id: str) -> SubmittedCase | None:
    return next((case for case in state.submitted if case.case_id == case_id), None)


def case_update(state: ConversationState, system: dict[str, str], t: Translator) -> Transition:
    """A coordinator's action on a submitted case, told to the patient."""
    case = _case(state, system.get("case_id", ""))
    if case is None:
        return Transition(state, via="system")
    kind = system.get("kind", "")
    case.status = system.get("status", case.status)
    reference = case.reference
    replies: list[Outbound] = []
    if kind == "requested":
        case.requested = json.loads(system.get("items", "[]"))
        case.note = system.get("note", "")
        replies.append(_request_message(state, case, t))
    elif kind == "reminder":
        items = t.join([item_title(ITEMS[i], t) for i in case.requested if i in ITEMS])
        text = t(
            "A gentle reminder about your case {reference}: the coordinator is still waiting "
            "for: {items}. If something is hard to get, just tell us here.",
            reference=reference,
            items=items,
        )
        replies.append(Outbound(text=text, locale=state.locale))
    elif kind == "opinion":
        case.followups_left = int(system.get("followups", "0"))
        replies += _opinion_messages(state, case, system, t)
    elif kind == "status":
        if case.status != CaseStatus.WAITING_FOR_PATIENT:
            case.requested, case.note = [], ""
        text = _status_message(case, system, t)
        if text:
            replies.append(Outbound(text=text, locale=state.locale))
    return Transition(state, replies, via="system")


def _request_message(state: ConversationState, case: SubmittedCase, t: Translator) -> Outbound:
    lines = [
        t(
            "For your case {reference}, the coordinator needs a few more records:",
            reference=case.reference,
        )
    ]
    for item_id in case.requested:
        item = ITEMS.get(item_id)
        if item is None:
            continue
        lines += [
            "",
            f"• {item_title(item, t)}",
            "  " + t(item.hint),
            "  " + t(item.how_to_get),
            "  " + t("You can show this sentence to hospital staff:"),
            f"  {item.request_zh}",
        ]
    if case.note:
        lines += ["", t("A note from your coordinator: {note}", note=case.note)]
    lines += ["", t("Please send them here, or through the upload page, whenever you have them.")]
    return Outbound(
        text="\n".join(lines),
        locale=state.locale,
        upload_link=UploadLinkRequest(case_id=case.case_id),
    )


def _status_message(case: SubmittedCase, system: dict[str, str], t: Translator) -> str:
    reference = case.reference
    if case.status == CaseStatus.IN_REVIEW:
        return t(
            "A coordinator is now reviewing your case {reference}. They will tell you here if "
            "anything is missing.",
            reference=reference,
        )
    if case.status == CaseStatus.READY_TO_SEND:
        return t(
            "Thank you: your case {reference} has what it needs. The coordinator is preparing it "
            "for the specialists.",
            reference=reference,
        )
    if case.status == CaseStatus.SENT_TO_SPECIALIST:
        return t(
            "Your case {reference} has been sent to a specialist team in China. A written review "
            "usually takes 7 to 14 days; that is a usual time, not a promise. We will write to "
            "you here.",
            reference=reference,
        )
    if case.status == CaseStatus.DECLINED:
        reason = DECLINE_REASONS.get(system.get("reason", ""), DECLINE_REASONS["other"])
        lines = [
            t("We are sorry: we cannot take your case {reference} further.", reference=reference),
            t(reason),
        ]
        if system.get("note"):
            lines.append(t("A note from your coordinator: {note}", note=system["note"]))
        lines.append(
            t(
                "Please keep talking with your own doctors; they know your situation best. "
                "Your records stay yours: send /status to see what we hold."
            )
        )
        return "\n\n".join(lines)
    if case.status == CaseStatus.CLOSED:
        return t(
            "Your case {reference} is now closed. Thank you for trusting us with it. If you "
            "need us again, send /newcase.",
            reference=reference,
        )
    return ""


def _opinion_messages(
    state: ConversationState, case: SubmittedCase, system: dict[str, str], t: Translator
) -> list[Outbound]:
    files = tuple(
        FileRef(source=f"{STORE_SOURCE}{sha}", name=name, mime_type="application/pdf")
        for sha, name in json.loads(system.get("files", "[]"))
    )
    text = t(
        "The written opinion for your case {reference} has arrived, with its translation. It "
        "is one expert's view, based on the records that were sent: please go through it with "
        "your own doctors before deciding anything.",
        reference=case.reference,
    )
    replies = [Outbound(text=text, files=files, locale=state.locale)]
    if case.followups_left:
        question = t.plural(
            "If something in it is unclear, you can ask {count} follow-up question.",
            "If something in it is unclear, you can ask up to {count} follow-up questions.",
            case.followups_left,
        )
        replies.append(_followup_offer(state, case, question, t))
    return replies


def _followup_offer(
    state: ConversationState, case: SubmittedCase, text: str, t: Translator
) -> Outbound:
    return Outbound(
        text=text,
        options=(Option(id=f"{FOLLOWUP_PREFIX}{case.case_id[:12]}", label=t("Ask a question")),),
        prompt_ref="side",
        locale=state.locale,
    )


def followup_choice(state: ConversationState, choice_id: str, t: Translator) -> Transition:
    short = choice_id.removeprefix(FOLLOWUP_PREFIX)
    case = next((c for c in state.submitted if c.case_id.startswith(short) and short), None)
    if case is None or case.followups_left <= 0:
        note = t("There are no follow-up questions left for this case. Send /status to see it.")
        return Transition(state, render(state, Outcome(notes=[note])), via="system")
    state.followup_case = case.case_id
    prompt = t("Please type your question about the opinion, in one message.")
    return Transition(state, [Outbound(text=prompt, locale=state.locale)], via="system")


def followup_text(state: ConversationState, text: str, now: datetime, t: Translator) -> Transition:
    """The patient's typed follow-up: back to the queue, the coordinators told."""
    case = _case(state, state.followup_case or "")
    state.followup_case = None
    if case is None or case.followups_left <= 0:
        return Transition(state, render(state, Outcome()), via="system")
    case.followups_left -= 1
    # As the coordinators' side moves it (handlers/updates/transaction.py): by the table.
    case.status = patient_move("follow_up", case.status) or case.status
    asked = FollowUpAsked(
        case_id=case.case_id,
        reference=case.reference,
        text=text[:MAX_FOLLOWUP_CHARS],
        asked_at=now,
    )
    notice = NotifyCoordinators(
        notice=CoordinatorNotice(
            case_id=case.case_id,
            case_ref=case.reference,
            text=bilingual(
                N_("Case {reference}: the patient asked a follow-up question."),
                reference=case.reference,
            ),
        )
    )
    reply = t(
        "Thank you. Your question is with the coordinator, who will bring you the answer here.",
    )
    if case.followups_left:
        reply += "\n" + t.plural(
            "You can ask {count} more.", "You can ask {count} more.", case.followups_left
        )
    return Transition(state, [Outbound(text=reply, locale=state.locale)], [asked, notice], "system")


def status_lines(state: ConversationState, t: Translator) -> list[str]:
    """/status: each submitted case, where it stands, what is missing, what comes next."""
    lines = []
    for case in state.submitted:
        lines.append(
            t(
                "Case {reference}, submitted on {date}: {status}",
                reference=case.reference,
                date=t.date(case.submitted_at.date()),
                status=t(STATUS_TEXTS.get(case.status, STATUS_TEXTS[CaseStatus.SUBMITTED])),
            )
        )
        if case.status == CaseStatus.WAITING_FOR_PATIENT and case.requested:
            items = t.join([item_title(ITEMS[i], t) for i in case.requested if i in ITEMS])
            lines.append("  " + t("Still needed: {items}", items=items))
    return lines
