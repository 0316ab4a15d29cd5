"""Applying a step's outcome, and rendering the replies: shared by the engine and commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from conversations.effects import Effect
from conversations.flow import STEPS
from conversations.i18n import N_, SUPPORTED_LOCALES, Translator, language_name, translator
from conversations.state import ConversationState
from conversations.step import Outcome
from conversations.steps.records import current_item
from handlers.events import Option, Outbound, UploadLinkRequest

# Steps whose entry and exit are not part of the /back history.
_OUTSIDE_HISTORY = frozenset({"emergency_paused"})

Via = Literal["step", "command", "system"]


@dataclass
class Transition:
    state: ConversationState
    replies: list[Outbound] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    # How the step changed: through the step table, or by a command such as /back.
    via: Via = "step"


def prompt_ref(state: ConversationState) -> str:
    """Names the question on screen, so a press on an older question's button is recognised."""
    if state.overlay:
        return state.overlay
    if state.step in ("records", "records_upload"):
        return f"{state.step}.{state.draft.record_cursor}"
    return state.step


def advance(state: ConversationState, outcome: Outcome) -> Transition:
    """Apply a step's outcome: move (keeping /back history and review returns) and render."""
    goto = outcome.goto
    if goto is not None and goto != state.step:
        goto = _returning_to_review(state, goto)
        if state.step not in _OUTSIDE_HISTORY and goto not in _OUTSIDE_HISTORY:
            state.history.append(state.step)
            del state.history[:-100]
        state.step = goto
    return Transition(state, render(state, outcome), list(outcome.effects))


def _returning_to_review(state: ConversationState, goto: str) -> str:
    if not state.returning_to_review:
        return goto
    here, there = STEPS[state.step].section, STEPS[goto].section
    # Leaving the edited section returns to the review; a step outside every section (stopping
    # after the fit verdict, an emergency pause) is where the patient asked to go.
    if here is not None and there is not None and there != here and goto != "review":
        state.returning_to_review = False
        return "review"
    if goto == "review":
        state.returning_to_review = False
    return goto


def render(state: ConversationState, outcome: Outcome) -> list[Outbound]:
    """Notes first, then the current question; the last message always carries the options."""
    t = translator(state.locale)
    replies = [Outbound(text=note, locale=state.locale) for note in outcome.notes if note]
    options = overlay_options(state, t) if state.overlay else None
    if options is None:
        step = STEPS[state.step]
        options = step.options(state, t)
        question = step.render_prompt(state, t)
    else:
        question = overlay_prompt(state, t)
    expects_files = state.step == "records_upload" and current_item(state) is not None
    if outcome.prompt or not replies:
        replies.append(Outbound(text=question, locale=state.locale))
    last = replies[-1]
    replies[-1] = last.model_copy(
        update={"options": options, "prompt_ref": prompt_ref(state), "expects_files": expects_files}
    )
    if outcome.upload_link and state.draft.case_id is not None:
        link = UploadLinkRequest(case_id=state.draft.case_id)
        replies[0] = replies[0].model_copy(update={"upload_link": link})
    return replies


OVERLAY_PROMPTS = {
    "language": N_("Which language would you like?"),
    "restart": N_(
        "Start again from the beginning? The answers for the case you are preparing will be "
        "cleared. Cases you already submitted are kept."
    ),
    "newcase": N_(
        "Start a new case? The case you are preparing has not been submitted, and its answers "
        "will be cleared."
    ),
}


def overlay_prompt(state: ConversationState, t: Translator) -> str:
    return t(OVERLAY_PROMPTS[state.overlay]) if state.overlay else ""


def overlay_options(state: ConversationState, t: Translator) -> tuple[Option, ...]:
    if state.overlay == "language":
        languages = tuple(
            Option(id=f"lang:{code}", label=language_name(code)) for code in SUPPORTED_LOCALES
        )
        return (*languages, Option(id="cancel", label=t("Cancel")))
    confirm = t("Yes, start a new case") if state.overlay == "newcase" else t("Yes, start again")
    return (
        Option(id="confirm", label=confirm),
        Option(id="cancel", label=t("No, keep my answers")),
    )
