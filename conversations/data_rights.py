"""The patient's rights over their data, from any step: /withdraw, /export and /delete; and
consent asked again when its text changed (a new version).

Each asks for a confirmation first (an overlay, like /restart). Withdrawing stops processing
at once, in the same transaction: consents are marked withdrawn, files not yet stored are
dropped, and coordinators stop work on open cases. A copy and an erasure are background jobs
(handlers/privacy/): they touch every table and the file store, and report back here
or, for an erasure, once the conversation itself is gone.
"""

from __future__ import annotations

from conversations.case_status import patient_move
from conversations.effects import ConsentGiven, ConsentWithdrawn, DataRightRequested
from conversations.i18n import Translator, translator
from conversations.state import Consent, ConversationState
from conversations.step import Context, Outcome
from conversations.steps.screening import HEALTH_CONSENT_VERSION, TRANSFER_CONSENT_VERSION
from conversations.transition import Transition, render

ASKED_AGAIN = ("consent_health_again", "consent_transfer_again")


def outdated_consent(state: ConversationState) -> str | None:  # an overlay of ASKED_AGAIN
    """The overlay that asks again for a consent given to an older text, if any."""
    if state.consent_health and state.consent_health.version != HEALTH_CONSENT_VERSION:
        return "consent_health_again"
    if state.consent_transfer and state.consent_transfer.version != TRANSFER_CONSENT_VERSION:
        return "consent_transfer_again"
    return None


def ask_consent_again(state: ConversationState, overlay: str) -> Transition:
    """Before anything else is done with their information, the patient reads the new text
    and agrees again, one consent at a time, as the first time."""
    t = translator(state.locale)
    health = overlay == "consent_health_again"
    state.overlay = "consent_health_again" if health else "consent_transfer_again"
    note = t("What we ask your consent for has changed. Please read it and answer again.")
    return _show(state, [note])


def consent_again(state: ConversationState, choice_id: str, ctx: Context) -> Transition:
    """The answer to a consent asked again: agreeing carries on where the patient was (or
    asks the next one); not agreeing is a withdrawal."""
    if choice_id != "confirm":
        state.overlay = "withdraw"
        return confirmed(state, ctx)
    health = state.overlay == ASKED_AGAIN[0]
    version = HEALTH_CONSENT_VERSION if health else TRANSFER_CONSENT_VERSION
    consent = Consent(version=version, given_at=ctx.now)
    if health:
        state.consent_health = consent
    else:
        state.consent_transfer = consent
    state.overlay = None
    given = ConsentGiven(
        scope="health_data" if health else "transfer_to_china", version=version, given_at=ctx.now
    )
    following = outdated_consent(state)
    transition = ask_consent_again(state, following) if following else _show(state, [])
    transition.effects.append(given)
    return transition


def open_cases(state: ConversationState) -> list[str]:
    return [case.case_id for case in state.submitted if patient_move("withdraw", case.status)]


def ask_withdraw(state: ConversationState, t: Translator) -> Transition:
    if not state.consented:
        note = t(
            "You haven't given your consent, so there is nothing to withdraw: I keep no "
            "health information about you."
        )
        return _show(state, [note])
    state.overlay = "withdraw"
    return _show(state, [])


def ask_export(state: ConversationState) -> Transition:
    state.overlay = "export"
    return _show(state, [])


def ask_delete(state: ConversationState) -> Transition:
    state.overlay = "delete"
    return _show(state, [])


def confirmed(state: ConversationState, ctx: Context) -> Transition:
    """The patient pressed "yes" on one of the three confirmations."""
    overlay, state.overlay = state.overlay, None
    t = translator(state.locale)
    if overlay == "export":
        note = t(
            "I'm putting together a copy of everything you gave me and everything made from "
            "it. It will arrive here as one zip file."
        )
        transition = _show(state, [note])
        transition.effects.append(DataRightRequested(right="export", at=ctx.now))
        return transition
    effects: list[ConsentWithdrawn | DataRightRequested] = []
    if state.consented or open_cases(state):
        effects.append(ConsentWithdrawn(at=ctx.now, case_ids=open_cases(state)))
    _stop_processing(state)
    if overlay == "delete":
        state.step = "erasing"
        effects.append(DataRightRequested(right="erase", at=ctx.now))
    else:
        state.step = "withdrawn"
    transition = Transition(state, render(state, Outcome()), via="command")
    transition.effects.extend(effects)
    return transition


def _stop_processing(state: ConversationState) -> None:
    state.consent_health = state.consent_transfer = None
    for case in state.submitted:
        stopped = patient_move("withdraw", case.status)
        if stopped is not None:
            case.status = stopped
            case.requested, case.note, case.followups_left = [], "", 0
    state.history = []
    state.returning_to_review = False
    state.editing_question = state.question_mode = None
    state.paused_step = state.paused_text = None
    state.followup_case = None


def _show(state: ConversationState, notes: list[str]) -> Transition:
    return Transition(state, render(state, Outcome(notes=notes)), via="command")
