"""Where a patient rests after withdrawing consent or asking for an erasure: no question,
nothing kept, the ways on named in the prompt."""

from __future__ import annotations

from conversations.step import Step
from records.markers import N_

# conversations/data_rights.py moves patients here (commands, so no edges of their own).
WITHDRAWN = Step(
    id="withdrawn",
    description=N_("consent withdrawn"),
    before_consent=True,
    prompt=N_(
        "You have withdrawn your consent, so I have stopped processing your health "
        "information.\n\nWhat is already stored stays safely stored until you delete it or its "
        "keeping period ends. Send /delete to erase everything now, or /export to get a copy "
        "first. If you change your mind, send /start."
    ),
    edges=(),
)
ERASING = Step(
    id="erasing",
    description=N_("erasing your information"),
    before_consent=True,
    prompt=N_("I'm erasing your information now. I'll tell you here when it's done."),
    edges=(),
)

STEPS = (WITHDRAWN, ERASING)
