"""Applying a step's outcome, and rendering the replies: shared by the engine and commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from conversations.effects import Effect
from conversations.events import Option, Outbound, UploadLinkRequest
from conversations.flow import STEPS
from conversations.i18n import SUPPORTED_LOCALES, Translator, language_name, translator
from conversations.state import ConversationState
from conversations.step import Outcome
from conversations.steps.records import current_item
from conversations.steps.screening import CONSENT_HEALTH_PROMPT, CONSENT_TRANSFER_PROMPT
from records.markers import N_

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
    "withdraw": N_(
        "Withdraw your consent? I will stop processing your health information, and "
        "coordinators will stop work on any case you submitted. What is already stored is kept "
        "safely until you delete it. You can give your consent again later."
    ),
    "export": N_(
        "Would you like a copy of everything you have given me, and everything made from it? "
        "I'll send it here as one zip file."
    ),
    "delete": N_(
        "Delete everything? Your answers, your files and any case you submitted will be erased "
        "for good, and coordinators will stop work on them. This can't be undone.\n\nIf you "
        "would like a copy first, choose No and send /export."
    ),
}

OVERLAY_PROMPTS["consent_health_again"] = CONSENT_HEALTH_PROMPT
OVERLAY_PROMPTS["consent_transfer_again"] = CONSENT_TRANSFER_PROMPT

# The confirmation's two buttons: (yes, no).
OVERLAY_BUTTONS = {
    "restart": (N_("Yes, start again"), N_("No, keep my answers")),
    "newcase": (N_("Yes, start a new case"), N_("No, keep my answers")),
    "withdraw": (N_("Yes, withdraw my consent"), N_("No, carry on")),
    "export": (N_("Yes, send me a copy"), N_("Cancel")),
    "delete": (N_("Yes, delete everything"), N_("No, keep my data")),
    "consent_health_again": (N_("I agree"), N_("I don't agree")),
    "consent_transfer_again": (N_("I agree"), N_("I don't agree")),
}
# Not agreeing to a consent asked again is an answer, not a cancellation.
_NO_IDS = {"consent_health_again": "decline", "consent_transfer_again": "decline"}


def overlay_prompt(state: ConversationState, t: Translator) -> str:
    return t(OVERLAY_PROMPTS[state.overlay]) if state.overlay else ""


def overlay_options(state: ConversationState, t: Translator) -> tuple[Option, ...]:
    if state.overlay == "language":
        languages = tuple(
            Option(id=f"lang:{code}", label=language_name(code)) for code in SUPPORTED_LOCALES
        )
        return (*languages, Option(id="cancel", label=t("Cancel")))
    overlay = state.overlay or "restart"
    confirm, cancel = OVERLAY_BUTTONS[overlay]
    return (
        Option(id="confirm", label=t(confirm)),
        Option(id=_NO_IDS.get(overlay, "cancel"), label=t(cancel)),
    )
