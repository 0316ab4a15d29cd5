"""The medical background in plain questions, each skippable: other illnesses and operations,
current medicines with doses, allergies, and (for cancer only) what the patient can do day to
day; then the main worry in one sentence, for the summary's 主诉.

Illnesses, medicines and allergies follow the patient's details. What the patient can do day to
day matters only in cancer, and the area is asked later (after the fit assessment), so that
question follows the diagnosis, in the area's section: changing the area to cancer from the
review asks it too.
"""

from __future__ import annotations

from conversations.i18n import Translator
from conversations.state import ConversationState, MedicalHistory
from conversations.step import Choice, Context, Outcome, Step
from conversations.steps.patient import KEEP, NOT_GIVEN, SKIP, TextQuestion, text_step, worded
from records.markers import N_

SECTION = "history"
FIRST = "history_illnesses"
AFTER = "fit_reasons"
DESCRIPTION = N_("the medical background")
MAX_ANSWER_LENGTH = 1000


def _history(state: ConversationState) -> MedicalHistory:
    return state.draft.history


def _words(text: str, ctx: Context) -> str | None:
    return " ".join(text.split())[:MAX_ANSWER_LENGTH] or None


def _history_step(id: str, field: str, own: str, relative: str, next: str) -> Step:
    return text_step(
        TextQuestion(
            id=id,
            field=field,
            prompt=worded(own, relative),
            read=_words,
            retry=N_("Please type the answer, or press Skip."),
            next=next,
            skip=SKIP,
            section=SECTION,
            holder=_history,
        ),
        description=DESCRIPTION,
    )


ILLNESSES = _history_step(
    "history_illnesses",
    "illnesses",
    N_(
        "Now your medical background. Do you have any other illnesses, or have you had "
        "operations? Please list them, with the year if you know it. For example: diabetes "
        "since 2015, gallbladder removed in 2019."
    ),
    N_(
        "Now the patient's medical background. Does the patient have any other illnesses, or "
        "have they had operations? Please list them, with the year if you know it. For "
        "example: diabetes since 2015, gallbladder removed in 2019."
    ),
    "history_medicines",
)

MEDICINES = _history_step(
    "history_medicines",
    "medicines",
    N_(
        "Which medicines do you take now, and how much of each? For example: metformin "
        "500 mg twice a day."
    ),
    N_(
        "Which medicines does the patient take now, and how much of each? For example: "
        "metformin 500 mg twice a day."
    ),
    "history_allergies",
)

ALLERGIES = _history_step(
    "history_allergies",
    "allergies",
    N_("Do you have any allergies, to medicines or anything else?"),
    N_("Does the patient have any allergies, to medicines or anything else?"),
    AFTER,
)


# --- what the patient can do day to day (cancer only) -----------------------------------

# Option id -> the plain words; PERFORMANCE_GRADES gives the ECOG grade for the summary.
PERFORMANCE: dict[str, str] = {
    "perf:0_1": N_("Up and about, works or does normal activities"),
    "perf:2": N_("Up and about, cannot work"),
    "perf:3": N_("In bed or a chair more than half the day"),
    "perf:4": N_("Mostly in bed"),
}
PERFORMANCE_GRADES: dict[str, str] = {
    "perf:0_1": "0–1",
    "perf:2": "2",
    "perf:3": "3",
    "perf:4": "4",
}


def asks_performance(state: ConversationState) -> bool:
    return state.draft.area == "oncology"


def after_diagnosis(state: ConversationState) -> str:
    return "performance_status" if asks_performance(state) else "complaint"


def _performance_choices(state: ConversationState) -> tuple[Choice, ...]:
    chosen = state.draft.history.performance if state.returning_to_review else None
    options = tuple(Choice(key, label, marked=chosen == key) for key, label in PERFORMANCE.items())
    return (*options, SKIP)


def _performance(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    if choice in PERFORMANCE:
        state.draft.history.performance = choice
    elif choice == "skip":
        state.draft.history.performance = ""
    return Outcome(goto="complaint")


PERFORMANCE_STATUS = Step(
    id="performance_status",
    description=DESCRIPTION,
    prompt=worded(
        N_("These days, what can you do on a usual day?"),
        N_("These days, what can the patient do on a usual day?"),
    ),
    choices=_performance_choices,
    on_choice=_performance,
    edges=("complaint",),
    section="area",
)


# --- the main worry (主诉) ---------------------------------------------------------------

MAX_COMPLAINT_LENGTH = 300


def _complaint_choices(state: ConversationState) -> tuple[Choice, ...]:
    return (KEEP,) if state.returning_to_review and state.draft.complaint else ()


def _complaint_text(state: ConversationState, text: str, ctx: Context, t: Translator) -> Outcome:
    state.draft.complaint = " ".join(text.split())[:MAX_COMPLAINT_LENGTH]
    return Outcome(goto="questions")


def _complaint_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    return Outcome(goto="questions")


COMPLAINT = Step(
    id="complaint",
    description=N_("the main worry"),
    prompt=worded(
        N_(
            "In one sentence: what worries you most, and since when? For example: "
            '"a lump in my liver since May; the doctors disagree about surgery".'
        ),
        N_(
            "In one sentence: what worries the patient most, and since when? For example: "
            '"a lump in the liver since May; the doctors disagree about surgery".'
        ),
    ),
    choices=_complaint_choices,
    on_choice=_complaint_choice,
    on_text=_complaint_text,
    edges=("questions",),
    section="complaint",
    accepts_text=True,
)

STEPS = (ILLNESSES, MEDICINES, ALLERGIES)
LATER_STEPS = (PERFORMANCE_STATUS, COMPLAINT)


# --- how the answers read (the review card, the case summary) ---------------------------


def value_text(value: str | None, t: Translator) -> str:
    return t.isolate(value) if value else t(NOT_GIVEN)


def performance_text(history: MedicalHistory, t: Translator) -> str:
    label = PERFORMANCE.get(history.performance or "")
    return t(label) if label else t(NOT_GIVEN)


def card_lines(state: ConversationState, t: Translator) -> list[str]:
    """The medical background on the review card, in the reader's language."""
    history = state.draft.history
    # The labels are the summary's too: one translation each. (Calls outside f-strings, where
    # Babel's extractor finds them.)
    answers = [
        (t("Other illnesses and operations:"), value_text(history.illnesses, t)),
        (t("Medicines:"), value_text(history.medicines, t)),
        (t("Allergies:"), value_text(history.allergies, t)),
    ]
    if asks_performance(state):
        answers.append((t("Day to day:"), performance_text(history, t)))
    return [f"{label} {value}" for label, value in answers]
