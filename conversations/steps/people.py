"""Who the case is for."""

from __future__ import annotations

from conversations.i18n import Translator
from conversations.state import ConversationState
from conversations.step import Choice, Context, Outcome, Step
from conversations.steps import patient
from records.markers import N_

RELATIONSHIPS: dict[str, str] = {
    "parent": N_("My parent"),
    "partner": N_("My spouse or partner"),
    "child": N_("My child"),
    "sibling": N_("My brother or sister"),
    "other_family": N_("Another relative or friend"),
}


def _for_whom(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    state.draft.for_whom = choice
    if choice == "self":
        state.draft.relationship = None
        return Outcome(goto=patient.FIRST)
    return Outcome(goto="relationship")


# /status for both questions about whom the case is for.
WHO_DESCRIPTION = N_("who the case is for")

FOR_WHOM = Step(
    id="for_whom",
    description=WHO_DESCRIPTION,
    prompt=N_("Thank you. Who is this second opinion for?"),
    choices=(
        Choice("self", N_("For me")),
        Choice("family", N_("For a family member or friend")),
    ),
    on_choice=_for_whom,
    edges=(patient.FIRST, "relationship"),
    section="who",
)


def _relationship_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    state.draft.relationship = choice
    return Outcome(goto=patient.FIRST)


def _relationship_text(state: ConversationState, text: str, ctx: Context, t: Translator) -> Outcome:
    state.draft.relationship = text.strip()[:80]
    return Outcome(goto=patient.FIRST)


RELATIONSHIP = Step(
    id="relationship",
    description=WHO_DESCRIPTION,
    prompt=N_(
        "Who is the patient to you? Thank you for helping them.\n\n"
        "From here on, please answer about the patient."
    ),
    choices=tuple(Choice(key, label) for key, label in RELATIONSHIPS.items()),
    on_choice=_relationship_choice,
    on_text=_relationship_text,
    edges=(patient.FIRST,),
    section="who",
    accepts_text=True,
)

STEPS = (FOR_WHOM, RELATIONSHIP)
