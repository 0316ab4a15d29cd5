"""Who the patient is: the name as on the passport, birth, sex, where they live, nationality,
the language of the written opinion, and a way for a coordinator to reach them.

One question per message. Questions are worded for the person writing: "your" when the patient
writes, "the patient's" when a relative does. When the review sends the patient back here, an
answer already given can be kept with a button.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from conversations import patient as read
from conversations.i18n import Translator, language_name
from conversations.state import ConversationState, PatientDetails
from conversations.step import Choice, Context, Outcome, Step
from records.markers import N_

SECTION = "patient"
FIRST = "patient_name"
AFTER = "history_illnesses"  # conversations/steps/history.py
DESCRIPTION = N_("the patient's details")

KEEP = Choice("keep", N_("Keep it as it is"))
SKIP = Choice("skip", N_("Skip"))
SEXES: dict[str, str] = {"female": N_("Female"), "male": N_("Male")}


def for_relative(state: ConversationState) -> bool:
    return state.draft.for_whom not in (None, "self")


def worded(own: str, relative: str) -> Callable[[ConversationState, Translator], str]:
    def prompt(state: ConversationState, t: Translator) -> str:
        return t(relative if for_relative(state) else own)

    return prompt


# A typed answer -> what to store, or None when it cannot be read (the note says why).
Reader = Callable[[str, Context], object]


@dataclass(frozen=True)
class TextQuestion:
    id: str
    field: str
    prompt: str | Callable[[ConversationState, Translator], str]
    read: Reader
    retry: str  # the note when an answer cannot be read
    next: str
    skip: Choice | None = None  # the button that answers "not given"
    # Where the answer is kept: the patient's details, or (for the medical background) the
    # draft's history; one question type serves both.
    section: str = SECTION
    holder: Callable[[ConversationState], BaseModel] = lambda state: state.draft.patient


def _given(details: BaseModel, field: str) -> bool:
    if field == "birth":
        birth = (getattr(details, name) for name in ("birth_date", "birth_year", "age"))
        return any(v is not None for v in birth)
    return getattr(details, field) is not None


def _store(details: BaseModel, field: str, value: object) -> None:
    if isinstance(value, read.Birth) and isinstance(details, PatientDetails):
        # One answer fills one of three fields, and clears an earlier answer's.
        details.birth_date, details.birth_year, details.age = (
            value.birth_date,
            value.year,
            value.age,
        )
    else:
        setattr(details, field, value)


def text_step(question: TextQuestion, *, description: str = DESCRIPTION) -> Step:
    def choices(state: ConversationState) -> tuple[Choice, ...]:
        given = _given(question.holder(state), question.field)
        keep = (KEEP,) if state.returning_to_review and given else ()
        return (*keep, *((question.skip,) if question.skip else ()))

    def on_text(state: ConversationState, text: str, ctx: Context, t: Translator) -> Outcome:
        value = question.read(text, ctx)
        if value is None:
            return Outcome(notes=[t(question.retry)], prompt=False)
        _store(question.holder(state), question.field, value)
        return Outcome(goto=question.next)

    def on_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
        if choice == "skip":
            _store(question.holder(state), question.field, "")
        return Outcome(goto=question.next)

    return Step(
        id=question.id,
        description=description,
        prompt=question.prompt,
        choices=choices,
        on_choice=on_choice,
        on_text=on_text,
        edges=(question.next,),
        section=question.section,
        accepts_text=True,
    )


NAME = text_step(
    TextQuestion(
        id="patient_name",
        field="name",
        prompt=worded(
            N_(
                "Now a few details about you, for the specialist and the coordinator. What is "
                "your full name, as written in your passport or ID card, in Latin letters?"
            ),
            N_(
                "Now a few details about the patient, for the specialist and the coordinator. "
                "What is the patient's full name, as written in their passport or ID card, in "
                "Latin letters?"
            ),
        ),
        read=lambda text, ctx: read.latin_name(text),
        retry=N_(
            "Please write the name in Latin letters, as in the passport, for example: "
            "Maria Ivanova."
        ),
        next="patient_name_zh",
    )
)

NAME_ZH = text_step(
    TextQuestion(
        id="patient_name_zh",
        field="name_zh",
        prompt=worded(
            N_("Do you also have a name in Chinese characters? If so, please type it."),
            N_("Does the patient also have a name in Chinese characters? If so, please type it."),
        ),
        read=lambda text, ctx: read.chinese_name(text),
        retry=N_("Please type the name in Chinese characters, or press the button below."),
        next="patient_birth",
        skip=Choice("skip", N_("No Chinese name")),
    )
)


BIRTH = text_step(
    TextQuestion(
        id="patient_birth",
        field="birth",
        prompt=worded(
            N_(
                "What is your date of birth? For example: 1958-03-12 or 12 March 1958. If you "
                "don't know the exact date, your age is fine."
            ),
            N_(
                "What is the patient's date of birth? For example: 1958-03-12 or 12 March "
                "1958. If you don't know the exact date, their age is fine."
            ),
        ),
        read=lambda text, ctx: read.parse_birth(text, ctx.now.date()),
        retry=N_(
            "I couldn't read that as a date of birth or an age. Please write it like "
            "1958-03-12, or just the age, like 67."
        ),
        next="patient_sex",
    )
)


def _sex_choices(state: ConversationState) -> tuple[Choice, ...]:
    return tuple(
        Choice(key, label, marked=state.returning_to_review and state.draft.patient.sex == key)
        for key, label in SEXES.items()
    )


def _sex(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    state.draft.patient.sex = choice
    return Outcome(goto="patient_residence")


SEX = Step(
    id="patient_sex",
    description=DESCRIPTION,
    prompt=worded(N_("What is your sex?"), N_("What is the patient's sex?")),
    choices=_sex_choices,
    on_choice=_sex,
    edges=("patient_residence",),
    section=SECTION,
)

RESIDENCE = text_step(
    TextQuestion(
        id="patient_residence",
        field="residence",
        prompt=worded(
            N_("In which country and city do you live?"),
            N_("In which country and city does the patient live?"),
        ),
        read=lambda text, ctx: read.place(text) or None,
        retry=N_("Please type the country and the city."),
        next="patient_nationality",
    )
)

NATIONALITY = text_step(
    TextQuestion(
        id="patient_nationality",
        field="nationality",
        prompt=worded(
            N_("What is your nationality, as in your passport?"),
            N_("What is the patient's nationality, as in their passport?"),
        ),
        read=lambda text, ctx: read.place(text) or None,
        retry=N_("Please type the country of the passport."),
        next="opinion_language",
    )
)


# The same three buttons in every chat language; "chat" is stored as the chat's language.
OPINION_CHOICES: dict[str, str] = {
    "chat": N_("The language of this chat"),
    "zh_Hans": N_("Chinese"),
    "en": N_("English"),
}


def _opinion_choices(state: ConversationState) -> tuple[Choice, ...]:
    chosen = state.draft.patient.opinion_language if state.returning_to_review else None
    return tuple(
        Choice(f"opinion:{key}", label, marked=chosen == key)
        for key, label in OPINION_CHOICES.items()
    )


def _opinion(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    key = choice.removeprefix("opinion:")
    state.draft.patient.opinion_language = state.locale if key == "chat" else key
    return Outcome(goto="patient_contact")


OPINION_LANGUAGE = Step(
    id="opinion_language",
    description=DESCRIPTION,
    prompt=N_(
        "Specialists in China usually write their opinion in Chinese. In which language would "
        "you like to read the written opinion?"
    ),
    choices=_opinion_choices,
    on_choice=_opinion,
    edges=("patient_contact",),
    section=SECTION,
)

CONTACT = text_step(
    TextQuestion(
        id="patient_contact",
        field="contact",
        prompt=N_(
            "If you like, give a phone number or an e-mail address where a coordinator can "
            "reach you besides this chat. Only coordinators see it. You can skip this."
        ),
        read=lambda text, ctx: read.contact(text),
        retry=N_(
            "That doesn't look like a phone number or an e-mail address. Please check it, or "
            "press Skip."
        ),
        next=AFTER,
        skip=SKIP,
    )
)

STEPS = (NAME, NAME_ZH, BIRTH, SEX, RESIDENCE, NATIONALITY, OPINION_LANGUAGE, CONTACT)


# --- how the answers read (the review card, the case summary) ---------------------------

NOT_GIVEN = N_("not given")


def value_text(value: str | None, t: Translator) -> str:
    """A typed answer as written, or "not given" when skipped (or never asked, in a case
    begun before these questions existed)."""
    return t.isolate(value) if value else t(NOT_GIVEN)


def name_text(details: PatientDetails, t: Translator) -> str:
    names = [name for name in (details.name, details.name_zh) if name]
    return t.isolate(" / ".join(names)) if names else t(NOT_GIVEN)


def birth_text(details: PatientDetails, t: Translator) -> str:
    if details.birth_date is not None:
        return t.date(details.birth_date)
    if details.birth_year is not None:
        return t("born in {year}", year=details.birth_year)
    if details.age is not None:
        return t("age {age}", age=details.age)
    return t(NOT_GIVEN)


def sex_text(details: PatientDetails, t: Translator) -> str:
    return t(SEXES[details.sex]) if details.sex in SEXES else t(NOT_GIVEN)


def language_text(details: PatientDetails, t: Translator) -> str:
    code = details.opinion_language
    return language_name(code) if code else t(NOT_GIVEN)


def card_lines(details: PatientDetails, t: Translator) -> list[str]:
    """The patient's details on the review card, in the reader's language."""
    return [
        t("Patient: {value}", value=name_text(details, t)),
        t("Date of birth or age: {value}", value=birth_text(details, t)),
        t("Sex: {value}", value=sex_text(details, t)),
        t("Lives in: {value}", value=value_text(details.residence, t)),
        t("Nationality: {value}", value=value_text(details.nationality, t)),
        t("Written opinion in: {value}", value=language_text(details, t)),
        t("Contact: {value}", value=value_text(details.contact, t)),
    ]
