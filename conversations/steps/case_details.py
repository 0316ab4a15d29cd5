"""Area of medicine, the diagnosis in the patient's words, the questions and the timeline."""

from __future__ import annotations

from conversations.i18n import Translator
from conversations.questions import (
    ALL_SUGGESTIONS,
    MAX_QUESTION_LENGTH,
    MAX_QUESTIONS,
    MIN_QUESTIONS,
    is_vague,
    suggestions_for,
)
from conversations.state import ConversationState, Question, TimelineEntry
from conversations.step import Choice, Context, Outcome, Step
from conversations.steps.history import after_diagnosis
from conversations.timeline import parse_lines
from records.checklist import AREAS, ONCOLOGY_KINDS
from records.markers import N_

# /status for both questions about the area.
AREA_DESCRIPTION = N_("the area of medicine")

MAX_DIAGNOSIS_LENGTH = 1000
MAX_TIMELINE_ENTRIES = 60


def _area(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    state.draft.area = choice
    if choice == "oncology":
        return Outcome(goto="oncology_kind")
    state.draft.subarea = None
    return Outcome(goto="diagnosis")


AREA = Step(
    id="area",
    description=AREA_DESCRIPTION,
    prompt=N_("Which area of medicine is this about?"),
    choices=tuple(Choice(key, label) for key, label in AREAS.items()),
    on_choice=_area,
    edges=("oncology_kind", "diagnosis"),
    section="area",
)


def _oncology_kind(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    state.draft.subarea = choice
    return Outcome(goto="diagnosis")


ONCOLOGY_KIND = Step(
    id="oncology_kind",
    description=AREA_DESCRIPTION,
    prompt=N_("Which kind of cancer or tumour?"),
    choices=tuple(Choice(key, label) for key, label in ONCOLOGY_KINDS.items()),
    on_choice=_oncology_kind,
    edges=("diagnosis",),
    section="area",
)


def _diagnosis_text(state: ConversationState, text: str, ctx: Context, t: Translator) -> Outcome:
    state.draft.diagnosis = text.strip()[:MAX_DIAGNOSIS_LENGTH]
    return Outcome(goto=after_diagnosis(state))


def _diagnosis_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    state.draft.diagnosis = ""
    return Outcome(goto=after_diagnosis(state))


DIAGNOSIS = Step(
    id="diagnosis",
    description=N_("the diagnosis"),
    prompt=N_(
        "In your own words, what diagnosis has been given so far? For example: "
        '"liver cancer, about 4 cm, doctors suggest surgery".'
    ),
    choices=(Choice("no_diagnosis", N_("No diagnosis yet")),),
    on_choice=_diagnosis_choice,
    on_text=_diagnosis_text,
    edges=("performance_status", "complaint"),
    section="area",
    accepts_text=True,
)


# --- questions -----------------------------------------------------------------------------


def _questions_prompt(state: ConversationState, t: Translator) -> str:
    questions = state.draft.questions
    if state.question_mode == "typing" and state.editing_question is not None:
        current = question_text(questions[state.editing_question], t)
        return t("Type the new wording for this question:") + f"\n\n{current}"
    if state.question_mode in ("pick_edit", "pick_remove"):
        lines = [
            t("Which question would you like to change?")
            if state.question_mode == "pick_edit"
            else t("Which question would you like to remove?")
        ]
        lines += [f"{i}. {question_text(q, t)}" for i, q in enumerate(questions, start=1)]
        return "\n".join(lines)
    lines = [
        t(
            "What would you like the specialist to answer? Specific questions get useful "
            "answers. Choose a suggestion or type your own, {minimum} to {maximum} in all.",
            minimum=MIN_QUESTIONS,
            maximum=MAX_QUESTIONS,
        )
    ]
    if questions:
        lines += ["", t("Your questions so far:")]
        lines += [f"{i}. {question_text(q, t)}" for i, q in enumerate(questions, start=1)]
    if len(questions) >= MIN_QUESTIONS:
        lines += ["", t("Press Done when the list is right.")]
    return "\n".join(lines)


SUGGESTIONS_SHOWN = 3


def _questions_choices(state: ConversationState) -> tuple[Choice, ...]:
    questions = state.draft.questions
    if state.question_mode == "typing":
        return (Choice("cancel_edit", N_("Keep it as it is")),)
    if state.question_mode in ("pick_edit", "pick_remove"):
        # Ids name the action, so a button from an older picker cannot do the other one.
        action = "edit" if state.question_mode == "pick_edit" else "remove"
        picks = tuple(
            Choice(f"{action}:{i}", N_("Question {number}"), values=(("number", i + 1),))
            for i in range(len(questions))
        )
        return (*picks, Choice("cancel_edit", N_("Cancel")))
    asked = {q.suggestion for q in questions}
    choices: list[Choice] = []
    if len(questions) < MAX_QUESTIONS:
        choices += [
            Choice(key, label)
            for key, label in suggestions_for(state.draft.area).items()
            if key not in asked
        ][:SUGGESTIONS_SHOWN]
    if len(questions) >= MIN_QUESTIONS:
        choices.append(Choice("done", N_("Done")))
    if questions:
        choices.append(Choice("edit", N_("Change a question")))
        choices.append(Choice("remove", N_("Remove a question")))
    return tuple(choices)


def _questions_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    questions = state.draft.questions
    if choice == "cancel_edit":
        state.question_mode = state.editing_question = None
        return Outcome()
    if choice == "done":
        return Outcome(goto="timeline") if len(questions) >= MIN_QUESTIONS else Outcome()
    if choice in ("edit", "remove"):
        state.question_mode = "pick_edit" if choice == "edit" else "pick_remove"
        return Outcome()
    action, _, index_text = choice.partition(":")
    if index_text.isdigit() and int(index_text) < len(questions):
        if action == "remove" and state.question_mode == "pick_remove":
            questions.pop(int(index_text))
            state.question_mode = None
        elif action == "edit" and state.question_mode == "pick_edit":
            state.question_mode, state.editing_question = "typing", int(index_text)
        return Outcome()
    asked = {q.suggestion for q in questions}
    offered = choice in suggestions_for(state.draft.area)
    if offered and choice not in asked and len(questions) < MAX_QUESTIONS:
        # Kept by id, so it reads in whichever language the case is read in.
        questions.append(Question(suggestion=choice))
    return Outcome()


def question_text(question: Question, t: Translator) -> str:
    if question.suggestion:
        return t(ALL_SUGGESTIONS.get(question.suggestion, question.suggestion))
    return question.text


def _questions_text(state: ConversationState, text: str, ctx: Context, t: Translator) -> Outcome:
    question = " ".join(text.split())[:MAX_QUESTION_LENGTH]
    questions = state.draft.questions
    if is_vague(question):
        return Outcome(
            notes=[
                t(
                    "That question is quite open, and open questions get general answers. "
                    'Could you make it more specific? For example: "Is surgery necessary, or '
                    'is there a non-surgical option?" or "Do my scans show the tumour has '
                    'spread?"'
                )
            ],
            prompt=False,
        )
    if state.question_mode == "typing" and state.editing_question is not None:
        questions[state.editing_question] = Question(text=question)
        state.question_mode = state.editing_question = None
        return Outcome()
    state.question_mode = None
    if any(q.text == question for q in questions):
        return Outcome(notes=[t("You already have that question on the list.")], prompt=False)
    if len(questions) >= MAX_QUESTIONS:
        return Outcome(
            notes=[
                t(
                    "You already have {maximum} questions. Remove one first if you'd like to "
                    "add this.",
                    maximum=MAX_QUESTIONS,
                )
            ]
        )
    questions.append(Question(text=question))
    return Outcome()


QUESTIONS = Step(
    id="questions",
    description=N_("your questions"),
    prompt=_questions_prompt,
    choices=_questions_choices,
    on_choice=_questions_choice,
    on_text=_questions_text,
    edges=("timeline",),
    section="questions",
    accepts_text=True,
)


# --- timeline ------------------------------------------------------------------------------


def _timeline_prompt(state: ConversationState, t: Translator) -> str:
    lines = [
        t(
            "Now the story so far, one event per line, each starting with a date. Approximate "
            "dates are fine. For example:\n"
            "March 2024: first symptoms\n"
            "2024-05-10: CT scan\n"
            "about June 2024: started chemotherapy\n\n"
            "You can send lines one by one or paste them all at once."
        )
    ]
    if state.draft.timeline:
        lines += ["", t("Your timeline so far:")]
        lines += [
            f"• {t.isolate(entry.when)} — {t.isolate(entry.what)}" for entry in state.draft.timeline
        ]
    return "\n".join(lines)


def _timeline_choices(state: ConversationState) -> tuple[Choice, ...]:
    if not state.draft.timeline:
        return ()
    return (
        Choice("done", N_("Done")),
        Choice("remove_last", N_("Remove the last entry")),
        Choice("clear", N_("Start the timeline again")),
    )


def _timeline_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    timeline = state.draft.timeline
    if choice == "done" and timeline:
        return Outcome(goto="records")
    if choice == "remove_last" and timeline:
        timeline.remove(max(timeline, key=lambda e: e.sort_key))
    elif choice == "clear":
        timeline.clear()
    return Outcome()


def _timeline_text(state: ConversationState, text: str, ctx: Context, t: Translator) -> Outcome:
    entries, undated = parse_lines(text)
    room = MAX_TIMELINE_ENTRIES - len(state.draft.timeline)
    for entry in entries[: max(room, 0)]:
        state.draft.timeline.append(
            TimelineEntry(
                when=entry.when,
                sort_key=entry.sort_key,
                approximate=entry.approximate,
                what=entry.what,
            )
        )
    state.draft.timeline.sort(key=lambda e: e.sort_key)
    notes: list[str] = []
    if undated:
        notes.append(
            t(
                "I couldn't find a date at the start of this line. Please add one, even an "
                'approximate one, like "about 2023" or "May 2024":\n{lines}',
                lines="\n".join(undated[:5]),
            )
        )
    if len(entries) > room:
        notes.append(t("The timeline is full. Please keep to the most important events."))
    return Outcome(notes=notes, prompt=bool(entries))


TIMELINE = Step(
    id="timeline",
    description=N_("the timeline"),
    prompt=_timeline_prompt,
    choices=_timeline_choices,
    on_choice=_timeline_choice,
    on_text=_timeline_text,
    edges=("records",),
    section="timeline",
    accepts_text=True,
)

STEPS = (AREA, ONCOLOGY_KIND, DIAGNOSIS, QUESTIONS, TIMELINE)
