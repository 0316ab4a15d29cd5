"""Review everything on one card, edit any section, and submit."""

from __future__ import annotations

from conversations.effects import CaseSubmitted, NotifyCoordinators
from conversations.events import CoordinatorNotice
from conversations.fit import REASONS, VERDICT_TITLES, assess
from conversations.i18n import Translator, bilingual
from conversations.reference import case_reference
from conversations.state import ConversationState, SubmittedCase
from conversations.step import Choice, Context, Outcome, Step
from conversations.steps import history, patient
from conversations.steps.case_details import question_text
from conversations.steps.people import RELATIONSHIPS
from conversations.steps.records import draft_readiness
from records.checklist import AREAS, ONCOLOGY_KINDS, checklist_for
from records.markers import N_

# Review section -> the step that starts it.
SECTION_STARTS: dict[str, str] = {
    "who": "for_whom",
    "patient": patient.FIRST,
    "history": history.FIRST,
    "fit": "fit_reasons",
    "area": "area",
    "complaint": "complaint",
    "questions": "questions",
    "timeline": "timeline",
    "records": "records",
}

_ITEM_STATUS = {
    "uploaded": N_("sent"),
    "later": N_("later"),
    "not_applicable": N_("doesn't apply"),
    "pending": N_("not answered"),
}


def readiness_score(state: ConversationState) -> int:
    return draft_readiness(state).score


def case_card(state: ConversationState, t: Translator) -> str:
    """The whole case on one card, in the reader's language; the patient's words verbatim."""
    draft = state.draft
    if draft.for_whom == "self":
        who = t("For me")
    else:
        relation = draft.relationship or ""
        who = t("For a family member or friend") + (
            f": {t(RELATIONSHIPS[relation]) if relation in RELATIONSHIPS else relation}"
            if relation
            else ""
        )
    area = t(AREAS[draft.area]) if draft.area in AREAS else "—"
    if draft.subarea in ONCOLOGY_KINDS:
        area += f" — {t(ONCOLOGY_KINDS[draft.subarea])}"
    fit = assess(draft)
    lines = [
        t("Your case"),
        "",
        t("Who: {value}", value=who),
        *patient.card_lines(draft.patient, t),
        *history.card_lines(state, t),
        t("Reasons: {value}", value=t.join([t(REASONS[r]) for r in draft.fit_reasons]) or "—"),
        t("Assessment: {value}", value=t(VERDICT_TITLES[fit.verdict])),
        t("Area: {value}", value=area),
        t("Diagnosis: {value}", value=draft.diagnosis or t("No diagnosis yet")),
        t("Main worry:") + " " + history.value_text(draft.complaint, t),
        "",
        t("Questions:"),
        *[f"{i}. {t.isolate(question_text(q, t))}" for i, q in enumerate(draft.questions, 1)],
        "",
        t("Timeline:"),
        *[f"• {t.isolate(e.when)} — {t.isolate(e.what)}" for e in draft.timeline],
        "",
        t("Records, ready for review: {score}%", score=readiness_score(state)),
    ]
    for item in checklist_for(draft.area):
        record = draft.records.get(item.id)
        status = record.status if record else "pending"
        count = len(record.files) if record else 0
        files = " " + t.plural("({count} file)", "({count} files)", count) if count else ""
        lines.append(f"• {t(item.label)}: {t(_ITEM_STATUS[status])}{files}")
    if draft.unsorted_files:
        lines.append(
            "• " + t.plural("{count} other file", "{count} other files", len(draft.unsorted_files))
        )
    return "\n".join(lines)


def _review_prompt(state: ConversationState, t: Translator) -> str:
    return (
        case_card(state, t)
        + "\n\n"
        + t("Please check everything. You can change any part, or submit the case.")
    )


def _review_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    if choice == "submit":
        return _submit(state, ctx)
    section = choice.removeprefix("edit_")
    if section in SECTION_STARTS:
        state.returning_to_review = True
        if section == "records":
            state.draft.record_cursor = 0
        return Outcome(goto=SECTION_STARTS[section])
    return Outcome()


def _submit(state: ConversationState, ctx: Context) -> Outcome:
    draft = state.draft
    assert draft.case_id is not None
    reference = case_reference(draft.case_id)
    fit = assess(draft)
    score = readiness_score(state)
    state.submitted.append(
        SubmittedCase(case_id=draft.case_id, reference=reference, submitted_at=ctx.now)
    )
    state.returning_to_review = False
    return Outcome(
        goto="submitted",
        effects=[
            CaseSubmitted(
                case_id=draft.case_id,
                reference=reference,
                locale=state.locale,
                area=draft.area or "other",
                verdict=fit.verdict,
                readiness=score,
                answers_json=draft.model_dump_json(),
                submitted_at=ctx.now,
            ),
            NotifyCoordinators(
                notice=CoordinatorNotice(
                    case_id=draft.case_id,
                    case_ref=reference,
                    # No health data here: it may pass through logs; the card comes from the queue.
                    text=bilingual(
                        "New case {reference} submitted (language: {locale}), readiness {score}%.",
                        reference=reference,
                        locale=state.locale,
                        score=score,
                    ),
                )
            ),
        ],
    )


REVIEW = Step(
    id="review",
    description=N_("the review"),
    prompt=_review_prompt,
    choices=(
        Choice("submit", N_("Submit the case")),
        Choice("edit_who", N_("Change who it's for")),
        Choice("edit_patient", N_("Change the patient's details")),
        Choice("edit_history", N_("Change the medical background")),
        Choice("edit_fit", N_("Change reasons and situation")),
        Choice("edit_area", N_("Change area and diagnosis")),
        Choice("edit_complaint", N_("Change the main worry")),
        Choice("edit_questions", N_("Change questions")),
        Choice("edit_timeline", N_("Change timeline")),
        Choice("edit_records", N_("Change records")),
    ),
    on_choice=_review_choice,
    edges=("submitted", *SECTION_STARTS.values()),
)


def _submitted_prompt(state: ConversationState, t: Translator) -> str:
    reference = state.submitted[-1].reference if state.submitted else "—"
    return t(
        "Thank you. Your case has been submitted.\n\nYour case reference is {reference}. "
        "Please keep it.\n\nA coordinator will check your case and contact you here. "
        "Finding a suitable specialist typically takes 1 to 3 weeks, and a written review "
        "7 to 14 days once the case is complete. These are "
        "typical times, not promises.\n\nIf anything gets worse, please see a doctor locally "
        "without waiting. Send /status at any time, or /newcase to start another case.",
        reference=reference,
    )


SUBMITTED = Step(
    id="submitted",
    description=N_("submitted"),
    prompt=_submitted_prompt,
    edges=(),
)

STEPS = (REVIEW, SUBMITTED)
