"""What Huizhen says about what it does not read: recordings, stickers, locations, contacts
and edited messages. Each gets a kind word and the current question again, in the patient's
language, instead of being taken for an empty answer."""

from __future__ import annotations

from conversations.events import Content
from conversations.i18n import Translator
from conversations.state import ConversationState
from conversations.step import Outcome
from conversations.transition import Transition, prompt_ref, render
from records.markers import N_

# Where a sent file may be a record: an audio or video file there is kept as one.
RECORD_STEPS = frozenset({"records", "records_upload"})

RECORDING = N_("I can't listen to or watch recordings. Please type your answer instead.")
VIDEO = N_(
    "I can't use a video of a scan or a document: specialists need the original files. When "
    "I ask for your records, please send those (for example the files from the hospital disc, "
    "or a photo of each page)."
)
VIDEO_KEPT = N_(
    "If this video shows a scan, please also send the scan's original files (for example "
    "from the hospital disc): specialists need those to review it."
)
LOCATION = N_("Thank you, but I don't need a location.")
CONTACT = N_("Thank you, but I can't use a shared contact. Please type the details instead.")
STICKER = N_("Thank you! Whenever you're ready, here is where we are:")
EDITED = N_(
    "I only read new messages, so I didn't see your edit. If you changed an answer, please "
    "send the corrected answer as a new message."
)

NOTES = {
    Content.RECORDING: RECORDING,
    Content.AUDIO: RECORDING,
    Content.VIDEO: VIDEO,
    Content.STICKER: STICKER,
    Content.LOCATION: LOCATION,
    Content.CONTACT: CONTACT,
}


def answer(state: ConversationState, content: Content | None, t: Translator) -> Transition:
    """The kind word, then the question on screen again. An edit is pointed out once per
    question: editing a message again and again gets no reply each time."""
    if content is Content.EDITED:
        here = prompt_ref(state)
        if state.edit_noted == here:
            return Transition(state, via="command")
        state.edit_noted = here
        return Transition(state, render(state, Outcome(notes=[t(EDITED)])), via="command")
    note = t(NOTES.get(content or Content.STICKER, STICKER))
    return Transition(state, render(state, Outcome(notes=[note])), via="command")
