"""The conversation engine: a pure function (state, event) -> (state, replies, effects).

Persistence and delivery wrap around it (handlers/updates/); nothing here touches a database,
a file or a network, so random event sequences can drive it in tests.
"""

from __future__ import annotations

from conversations import case_progress, commands, data_rights, file_feedback, unread
from conversations.channels import capabilities
from conversations.effects import ALBUM_SESSION_PREFIX, IngestFile
from conversations.events import Content, Inbound, InboundKind, UploadLinkRequest
from conversations.flow import BEFORE_CONSENT, FIRST_STEP, STEPS
from conversations.i18n import Translator, negotiate, translator
from conversations.redflags import is_red_flag, is_timeline_red_flag
from conversations.state import ConversationState
from conversations.step import Context, Outcome
from conversations.steps.records import accept_files
from conversations.transition import Transition, advance, prompt_ref, render
from records.report import FilesReport


def new_state(event: Inbound, default_locale: str) -> ConversationState:
    return ConversationState(
        step=FIRST_STEP, locale=negotiate(event.language_hint) or default_locale
    )


def handle(
    state: ConversationState | None,
    event: Inbound,
    ctx: Context,
    default_locale: str = "en",
    *,
    owned: bool = False,
) -> Transition:
    """The next state, replies and effects. The given state is left as it was, unless the
    caller says it is `owned` (just loaded, held by no one else): then it is reused in place,
    which spares a deep copy on every message."""
    transition = _handle(state, event, ctx, default_locale, owned=owned)
    case_id = transition.state.draft.case_id
    takes_documents = capabilities(event.channel).receives_documents
    for index, reply in enumerate(transition.replies):
        if reply.expects_files and not takes_documents and case_id:
            # Where a chat cannot carry files (WeChat), the upload page is how they arrive.
            reply = reply.model_copy(update={"upload_link": UploadLinkRequest(case_id=case_id)})
        if reply.upload_link is not None:
            # The link will belong to this conversation: uploads are told back to it.
            link = reply.upload_link.model_copy(update={"user_key": event.user_key})
            reply = reply.model_copy(update={"upload_link": link})
        transition.replies[index] = reply
    return transition


def _handle(
    state: ConversationState | None,
    event: Inbound,
    ctx: Context,
    default_locale: str = "en",
    *,
    owned: bool = False,
) -> Transition:
    if state is None:
        state = new_state(event, default_locale)
        if event.kind != InboundKind.SYSTEM:
            return _first_contact(state, event, ctx)
    elif not owned:
        state = state.model_copy(deep=True)
    t = translator(state.locale)
    if event.kind == InboundKind.COMMAND:
        return commands.run(state, event, ctx)
    if event.kind == InboundKind.SYSTEM:
        return _system(state, event, t)
    if event.kind == InboundKind.TEXT and _alarming(state, event.text, ctx):
        return _pause_for_emergency(state, event.text)
    outdated = data_rights.outdated_consent(state)
    if outdated and not (event.kind == InboundKind.CHOICE and state.overlay == outdated):
        # Nothing more is done with their information until they agree to the new text.
        return data_rights.ask_consent_again(state, outdated)
    if event.kind == InboundKind.OTHER:
        if event.files and state.step in unread.RECORD_STEPS:
            # An audio or video file where records are asked for may be one: kept as a file.
            notes = [t(unread.VIDEO_KEPT)] if event.content is Content.VIDEO else []
            return _files(state, event, ctx, t, notes)
        return unread.answer(state, event.content, t)
    if event.kind == InboundKind.CHOICE:
        return _choice(state, event, ctx, t)
    if event.kind == InboundKind.TEXT and state.followup_case and event.text.strip():
        return case_progress.followup_text(state, event.text.strip(), ctx.now, t)
    if event.kind == InboundKind.TEXT:
        return _text(state, event.text, ctx, t)
    return _files(state, event, ctx, t)


def _alarming(state: ConversationState, text: str, ctx: Context) -> bool:
    if state.step == "timeline" and not state.overlay:
        # Dated lines there are the story so far ("March 2024: vomiting blood"): a past event
        # must not stop the intake at every line; a current one still does.
        return is_timeline_red_flag(text, ctx.now.date())
    return is_red_flag(text)


def _first_contact(state: ConversationState, event: Inbound, ctx: Context) -> Transition:
    if event.kind == InboundKind.TEXT and is_red_flag(event.text):
        return _pause_for_emergency(state, "")
    if event.kind == InboundKind.COMMAND and event.command.lower() == "start":
        return commands.run(state, event, ctx)  # keeps a deep-link payload
    return Transition(state, render(state, Outcome()), via="command")


def _pause_for_emergency(state: ConversationState, text: str) -> Transition:
    step = STEPS[state.step]
    if state.step != "emergency_paused":
        state.paused_step = state.step
        # Keep the words only where they are an answer, and only after consent.
        keep = state.consented and step.on_text is not None and state.step not in BEFORE_CONSENT
        state.paused_text = text if keep and text else None
    state.overlay = None
    state.step = "emergency_paused"
    return Transition(state, render(state, Outcome()))


def _choice(state: ConversationState, event: Inbound, ctx: Context, t: Translator) -> Transition:
    if event.choice_id.startswith(file_feedback.SIDE_PREFIXES):
        return file_feedback.side_choice(state, event.choice_id, t)
    if event.choice_id.startswith(case_progress.FOLLOWUP_PREFIX):
        return case_progress.followup_choice(state, event.choice_id, t)
    if state.overlay:
        handled = commands.overlay_choice(state, event.choice_id, ctx)
        if handled is not None:
            return handled
        state.overlay = None
    if event.prompt_ref and event.prompt_ref != prompt_ref(state):
        return _stale(state, t)
    step = STEPS[state.step]
    choice = next((c for c in step.current_choices(state) if c.id == event.choice_id), None)
    if choice is None:
        return _stale(state, t)
    if state.step == "emergency_paused":
        return _resume(state, ctx)
    before = state.step
    if step.on_choice is not None:
        outcome = step.on_choice(state, choice.id, ctx)
    else:
        outcome = Outcome(goto=choice.goto)
    transition = advance(state, outcome)
    if event.message_ref and state.step == before and len(transition.replies) == 1:
        # The same question again (a ticked option, a list that changed): edit the message
        # the button was on instead of sending a new one.
        transition.replies[0] = transition.replies[0].model_copy(
            update={"edit_of": event.message_ref}
        )
    return transition


def _stale(state: ConversationState, t: Translator) -> Transition:
    note = t("That button belongs to an earlier question. Here is where we are now:")
    return Transition(state, render(state, Outcome(notes=[note])), via="command")


def _resume(state: ConversationState, ctx: Context) -> Transition:
    target = state.paused_step or FIRST_STEP
    text, state.paused_text, state.paused_step = state.paused_text, None, None
    state.step = target
    step = STEPS[target]
    if text and step.on_text is not None:
        return advance(state, step.on_text(state, text, ctx, translator(state.locale)))
    return Transition(state, render(state, Outcome()))


def _text(state: ConversationState, text: str, ctx: Context, t: Translator) -> Transition:
    state.overlay = None
    step = STEPS[state.step]
    if state.step == "emergency_paused":
        note = t("When you are ready to go on, please press the button below.")
        return Transition(state, render(state, Outcome(notes=[note], prompt=False)))
    if step.on_text is None or not text.strip():
        if step.current_choices(state):
            note = t("Please choose one of the options below.")
        else:
            note = t("Thank you. Send /help to see what I can do.")
        return Transition(state, render(state, Outcome(notes=[note], prompt=False)))
    return advance(state, step.on_text(state, text, ctx, t))


def _files(
    state: ConversationState,
    event: Inbound,
    ctx: Context,
    t: Translator,
    extra_notes: list[str] | None = None,
) -> Transition:
    if not state.consented or state.draft.case_id is None:
        note = t(
            "I can't keep files until you have agreed to how your information is used. "
            "Nothing from this file was kept."
        )
        return Transition(state, render(state, Outcome(notes=[note], prompt=False)))
    too_large = [file for file in event.files if file.too_large]
    files = tuple(file for file in event.files if not file.too_large)
    refusals = [too_large_note(file.name, t) for file in too_large]
    if not files:
        outcome = Outcome(notes=refusals, prompt=False, upload_link=True)
        return Transition(state, render(state, outcome))
    step = STEPS[state.step]
    if event.album != state.album:
        state.album, state.album_received = event.album, []
    if step.on_files is not None:
        outcome = step.on_files(state, files, ctx, t)
    else:
        outcome = accept_files(state, "", files, ctx, t)
        outcome.notes.append(t("I'll check it now and keep it with your case."))
    # One message acknowledges everything sent at once (an album is several files).
    notes = [*refusals, *outcome.notes, *(extra_notes or [])]
    outcome.notes = ["\n\n".join(note for note in notes if note)]
    outcome.upload_link = bool(refusals)
    transition = advance(state, outcome)
    session = f"{ALBUM_SESSION_PREFIX}{event.album}" if event.album else event.update_key
    transition.effects = [
        effect.model_copy(update={"session": session}) if isinstance(effect, IngestFile) else effect
        for effect in transition.effects
    ]
    if event.album and len(transition.replies) == 1 and not refusals:
        # By webhook an album's parts arrive one request each: each part's acknowledgement
        # (naming the whole album so far) replaces the last on screen, one message in all.
        ack = transition.replies[0].model_copy(update={"replace_key": f"album:{event.album}"})
        transition.replies[0] = ack
    return transition


def too_large_note(name: str, t: Translator) -> str:
    return t(
        "{name} is too large to send in this chat, so nothing of it was kept here. Please send "
        "it through your secure upload page instead: it takes files of any size, and whole "
        "folders such as a hospital disc.",
        name=name or t("This file"),
    )


def _system(state: ConversationState, event: Inbound, t: Translator) -> Transition:
    """Results of background work (files stored and checked) fed back into the state."""
    if event.system.get("event") == "case_update":
        return case_progress.case_update(state, event.system, t)
    if event.system.get("event") == "files_checked":
        report = FilesReport.model_validate_json(event.system.get("report", "{}"))
        return file_feedback.files_checked(state, report, t)
    return Transition(state, via="system")
