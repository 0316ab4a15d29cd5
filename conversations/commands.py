"""Commands that work at any step: /start, /help, /language, /back, /status, /restart, /newcase,
and the data rights /withdraw, /export and /delete (conversations/data_rights.py)."""

from __future__ import annotations

from collections.abc import Callable

from conversations import data_rights
from conversations.case_progress import status_lines
from conversations.events import Inbound
from conversations.flow import BEFORE_CONSENT, FIRST_STEP, STEPS
from conversations.i18n import (
    SUPPORTED_LOCALES,
    Translator,
    language_name,
    negotiate,
    translator,
)
from conversations.state import ConversationState, IntakeDraft
from conversations.step import Context, Outcome
from conversations.transition import Transition, render
from records.checklist import checklist_for
from records.markers import N_

HELP = N_(
    "I help you prepare a case for a second opinion from specialists in China. I don't give "
    "medical advice.\n\n"
    "You can use these commands at any time:\n"
    "/back — go back one question\n"
    "/status — where your case stands\n"
    "/language — change the language\n"
    "/restart — start again from the beginning\n"
    "/newcase — start another case, for example for a relative\n"
    "/help — this message\n\n"
    "In an emergency, call your local emergency number now (China 120, UK 999, US and Canada "
    "911, EU 112)."
)
DATA_HELP = N_(
    "Your information is yours:\n"
    "/export — get a copy of everything you gave me\n"
    "/withdraw — withdraw your consent\n"
    "/delete — erase everything"
)


def run(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    handler = _COMMANDS.get(event.command.lower())
    if handler is None:
        t = translator(state.locale)
        note = t("I don't know that command. Send /help to see what I can do.")
        return _show(state, [note])
    if state.step == "erasing" and event.command.lower() not in ("help", "status", "language"):
        return _show(state, [])  # the erasure is under way: nothing new starts meanwhile
    state.overlay = None
    return handler(state, event, ctx)


def _show(state: ConversationState, notes: list[str]) -> Transition:
    return Transition(state, render(state, Outcome(notes=notes)), via="command")


def _start(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    t = translator(state.locale)
    payload = "".join(c for c in event.args if c.isalnum() or c in "-_")[:64]
    if payload and state.referral is None:
        state.referral = payload
    if state.step == "withdrawn":
        return begin_case(state, ctx)  # consent is asked again; the old answers stay unused
    if state.step == "declined":
        state.step = FIRST_STEP
        return _show(state, [])
    if state.step == "stopped":
        state.step = "fit_verdict"
    if state.step == FIRST_STEP and not state.history:
        return _show(state, [])
    return _show(state, [t("Welcome back. Let's carry on where you left off.")])


def _help(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    t = translator(state.locale)
    return _show(state, [t(HELP) + "\n\n" + t(DATA_HELP)])


def _language(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    wanted = negotiate(event.args.strip()) if event.args.strip() else None
    if wanted is None:
        state.overlay = "language"
        return _show(state, [])
    return _switch_language(state, wanted)


def _switch_language(state: ConversationState, locale: str) -> Transition:
    state.locale = locale
    state.locale_chosen = True
    t = translator(locale)
    note = t("I'll write in {language} from now on.", language=language_name(locale))
    return _show(state, [note])


def _back(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    t = translator(state.locale)
    if state.step in ("records", "records_upload") and state.draft.record_cursor > 0:
        state.draft.record_cursor -= 1
        state.step = "records"
        return _show(state, [])
    if state.step == "submitted":
        return _show(state, [t("This case is already submitted. Send /newcase to start another.")])
    if state.step == "emergency_paused" or not state.history or state.history[-1] in BEFORE_CONSENT:
        return _show(state, [t("This is as far back as we can go.")])
    state.step = state.history.pop()
    state.editing_question = state.question_mode = None
    if state.step in ("records", "records_upload"):
        # Back into the checklist from after it: show its last item, not a blank upload.
        last = len(checklist_for(state.draft.area)) - 1
        state.draft.record_cursor = min(state.draft.record_cursor, last)
        state.step = "records"
    if state.step == "review" or STEPS[state.step].section is None:
        state.returning_to_review = False
    return _show(state, [])


def _status(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    t = translator(state.locale)
    lines = status_lines(state, t)
    if state.step != "submitted":
        lines.append(t("You are at: {where}.", where=t(STEPS[state.step].description)))
    return _show(state, ["\n".join(lines)])


def _restart(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    if not state.draft.has_health_data() and state.step in BEFORE_CONSENT:
        return begin_case(state, ctx)
    state.overlay = "restart"
    return _show(state, [])


def _newcase(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    unsubmitted = state.step != "submitted" and state.draft.has_health_data()
    if unsubmitted:
        state.overlay = "newcase"
        return _show(state, [])
    return begin_case(state, ctx)


def begin_case(state: ConversationState, ctx: Context) -> Transition:
    """A fresh case for the same user: consents stay, answers of an unsubmitted draft go
    (files it held stay stored under its id, remembered for a copy or an erasure)."""
    submitted = {case.case_id for case in state.submitted}
    old = state.draft.case_id
    if old and old not in submitted and old not in state.earlier_drafts:
        state.earlier_drafts.append(old)
    state.draft = IntakeDraft(case_id=ctx.new_id() if state.consented else None)
    state.history = []
    state.step = FIRST_STEP
    state.overlay = None
    state.returning_to_review = False
    state.editing_question = state.question_mode = None
    state.paused_step = state.paused_text = None
    return _show(state, [])


def overlay_choice(state: ConversationState, choice_id: str, ctx: Context) -> Transition | None:
    """Answer the language picker or a confirmation; None when the press is not for it."""
    overlay = state.overlay
    if overlay in data_rights.ASKED_AGAIN and choice_id in ("confirm", "decline"):
        return data_rights.consent_again(state, choice_id, ctx)
    if choice_id == "cancel":
        state.overlay = None
        return _show(state, [])
    if overlay == "language" and choice_id.startswith("lang:"):
        locale = choice_id.removeprefix("lang:")
        if locale in SUPPORTED_LOCALES:
            state.overlay = None
            return _switch_language(state, locale)
    if overlay in ("restart", "newcase") and choice_id == "confirm":
        return begin_case(state, ctx)
    if overlay in ("withdraw", "export", "delete") and choice_id == "confirm":
        return data_rights.confirmed(state, ctx)
    return None


_COMMANDS: dict[str, Callable[[ConversationState, Inbound, Context], Transition]] = {
    "start": _start,
    "help": _help,
    "language": _language,
    "back": _back,
    "status": _status,
    "restart": _restart,
    "newcase": _newcase,
    "withdraw": lambda state, event, ctx: data_rights.ask_withdraw(state, translator(state.locale)),
    "export": lambda state, event, ctx: data_rights.ask_export(state),
    "delete": lambda state, event, ctx: data_rights.ask_delete(state),
}

__all__ = ["Translator", "begin_case", "overlay_choice", "run"]
