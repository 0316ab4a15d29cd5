"""The vocabulary of the declarative step table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from conversations.effects import Effect
from conversations.events import FileRef, Option
from conversations.i18n import Translator
from conversations.state import ConversationState


@dataclass(frozen=True)
class Context:
    """What a step may know about the world besides the state: the time, and fresh ids."""

    now: datetime
    new_id: Callable[[], str]


@dataclass
class Outcome:
    """What a step decided. `goto` None keeps the step (and asks its question again)."""

    goto: str | None = None
    notes: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    # False when the notes already say everything (for example, a file acknowledgement
    # while the user is still sending files): the question is not repeated.
    prompt: bool = True
    # The first message carries a secure upload link for the case (big files, a whole disc).
    upload_link: bool = False


@dataclass(frozen=True)
class Choice:
    """A button: a stable id, the msgid of its label, and where it leads."""

    id: str
    label: str
    goto: str | None = None
    # False for labels made of the user's own words (a question they wrote), never translated.
    translate: bool = True
    # Shown ticked, for options that toggle (several reasons may apply).
    marked: bool = False
    # Named values for placeholders in the label ("Edit {number}").
    values: tuple[tuple[str, object], ...] = ()

    def render(self, t: Translator) -> str:
        label = t(self.label, **dict(self.values)) if self.translate else self.label
        return ("✓ " if self.marked else "") + label


PromptFn = Callable[[ConversationState, Translator], str]
ChoicesFn = Callable[[ConversationState], tuple[Choice, ...]]
ChoiceHandler = Callable[[ConversationState, str, Context], Outcome]
TextHandler = Callable[[ConversationState, str, Context, Translator], Outcome]
FilesHandler = Callable[[ConversationState, tuple[FileRef, ...], Context, Translator], Outcome]


@dataclass(frozen=True)
class Step:
    """One question of the intake.

    `edges` lists every step this one can lead to; the flow diagram is drawn from it and the
    property tests check that the engine never takes a transition the table does not declare.
    """

    id: str
    prompt: str | PromptFn
    # Where the patient is, as /status tells them ("You are at: …"): a msgid. Several steps
    # of one part share theirs.
    description: str = field(kw_only=True)
    # Before consent: the step takes buttons only, and nothing it sees is kept.
    before_consent: bool = field(default=False, kw_only=True)
    choices: tuple[Choice, ...] | ChoicesFn = ()
    on_choice: ChoiceHandler | None = None
    on_text: TextHandler | None = None
    on_files: FilesHandler | None = None
    edges: tuple[str, ...] = ()
    # The step belongs to a review section; finishing the section returns to the review.
    section: str | None = None
    # Free-text hint shown under the question when the step also accepts typing.
    accepts_text: bool = False

    def render_prompt(self, state: ConversationState, t: Translator) -> str:
        return t(self.prompt) if isinstance(self.prompt, str) else self.prompt(state, t)

    def current_choices(self, state: ConversationState) -> tuple[Choice, ...]:
        return self.choices if isinstance(self.choices, tuple) else self.choices(state)

    def options(self, state: ConversationState, t: Translator) -> tuple[Option, ...]:
        return tuple(Option(id=c.id, label=c.render(t)) for c in self.current_choices(state))
