"""A person at the console, and the steps of an intake they take there."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from sqlmodel import Session, select

from benchmarks.patient_script import COMPLAINT, PATIENT_ANSWERS, PERFORMANCE_ANSWER
from bot.app import App
from bot.channels.console import ConsoleChannel
from storage.models import Document


@dataclass
class Chat:
    """A person at the console: say something, read what came back."""

    channel: ConsoleChannel
    screen: io.StringIO
    transcript: list[str] = field(default_factory=list)

    def say(self, line: str) -> str:
        start = self.screen.tell()
        self.channel.submit(line)
        self.screen.seek(start)
        reply = self.screen.read()
        self.transcript.append(f"> {line}\n{reply}")
        return reply

    def press(self, label: str) -> str:
        """Press the button whose visible label contains `label` (as a person would). For
        tests about the words shown; others choose by id."""
        options = self.channel._options
        matches = [i for i, option in enumerate(options, 1) if label in option.label]
        assert matches, f"no button {label!r} among {[o.label for o in options]}"
        return self.say(str(matches[0]))

    def choose(self, option_id: str) -> str:
        """Press the button with this option id: what the flow calls the answer, the same in
        every language, so the test does not hang on the English wording."""
        ids = self.option_ids
        assert option_id in ids, f"no option {option_id!r} among {ids}"
        return self.say(str(ids.index(option_id) + 1))

    @property
    def buttons(self) -> list[str]:
        return [option.label for option in self.channel._options]

    @property
    def option_ids(self) -> list[str]:
        return [option.id for option in self.channel._options]


def make_chat(app: App, user: str = "alice", language_hint: str | None = None) -> Chat:
    screen = io.StringIO()
    return Chat(ConsoleChannel(app, screen, user_key=user, language_hint=language_hint), screen)


def consent(chat: Chat) -> None:
    chat.say("/start")
    chat.choose("no")
    chat.choose("continue")
    assert "transferred to China" in chat.choose("agree")
    assert "Who is this second opinion for?" in chat.choose("agree")


def about_patient(chat: Chat) -> str:
    """Answer the questions about who the patient is, as the benchmarks' script does."""
    reply = ""
    for answer in PATIENT_ANSWERS.values():
        typed = answer.removeprefix("text:")
        reply = chat.say(typed) if typed != answer else chat.choose(answer)
    return reply


def after_diagnosis(chat: Chat) -> str:
    """Say what the patient can do day to day (asked in cancer only), then the main worry."""
    if PERFORMANCE_ANSWER in chat.option_ids:
        chat.choose(PERFORMANCE_ANSWER)
    return chat.say(COMPLAINT)


def through_fit(chat: Chat, reasons: tuple[str, ...], situation: tuple[str, ...]) -> str:
    """Tick the `reasons` and answer the situation questions, all by option id."""
    for reason in reasons:
        chat.choose(reason)
    chat.choose("done")
    reply = ""
    for answer in situation:
        reply = chat.choose(answer)
    return reply


def to_review(
    chat: Chat, diagnosis: str = "Lumbar disc herniation L4-L5, a fusion operation is proposed"
) -> str:
    consent(chat)
    chat.choose("self")
    about_patient(chat)
    through_fit(chat, ("conflicting_advice",), ("no", "yes", "yes", "no", "no", "unsure"))
    chat.choose("continue")
    chat.choose("spine_ortho")
    chat.say(diagnosis)
    after_diagnosis(chat)
    for _ in range(3):
        chat.choose(chat.option_ids[0])
    chat.choose("done")
    chat.say("2025-09: back pain and leg numbness")
    chat.choose("done")
    while chat.option_ids[:1] == ["upload"]:
        chat.choose("later")
    return chat.choose("continue")


def to_imaging(chat: Chat) -> str:
    """An oncology case, at the checklist item for scans, ready to send files."""
    consent(chat)
    chat.choose("self")
    about_patient(chat)
    through_fit(chat, ("new_diagnosis",), ("no", "yes", "yes", "no", "no"))
    chat.choose("review")
    chat.choose("continue")
    chat.choose("oncology")
    chat.choose("solid_other")
    chat.say("Lung adenocarcinoma, 3 cm, surgery proposed")
    after_diagnosis(chat)
    for _ in range(3):
        chat.choose(chat.option_ids[0])
    chat.choose("done")
    chat.say("2026-08: cough and weight loss")
    chat.choose("done")
    while "Scans as original files" not in chat.transcript[-1]:
        chat.choose("later")
    return chat.choose("upload")


def documents(app: App) -> list[Document]:
    with Session(app.engine) as session:
        return list(session.exec(select(Document)).all())


def upload_link_path(chat: Chat) -> tuple[str, str]:
    """Ask for the upload link in the chat: (its path on the web app, the reply)."""
    reply = chat.choose("upload_page")
    found = re.search(r"https://huizhen\.example(/u/[\w-]+)", reply)
    assert found is not None
    return found.group(1), reply
