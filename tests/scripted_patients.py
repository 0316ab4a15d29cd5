"""Simulated Telegram patients who go through the whole intake, sending a letter and an album
of photos, and who act only on what they have seen: the next message goes once every reply to
the last one has arrived.

What patients say is decided once, by `reference_run`: the real engine and file checks, in
this process, straight through the pipeline (no Telegram, no faults). It records the moves
(the button data each press carries) and the replies each move gets, per variant. A live
patient then plays the same moves against a bot over the fake Bot API and matches what
arrives, message by message, with the reference; a message that arrives again right after
itself is put aside as a duplicate, for the test to judge. Anything else unexpected fails at
once, naming the patient and the message.

    scripts = reference_run(tmp_path / "reference")
    patient = LivePatient(fake, observer, user_id, scripts[user_id % len(scripts)])
    await patient.play(push)  # push: how updates reach the bot (getUpdates queue, webhook)
    check_stored_files(data_dir, engine, patients)
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache, cached_property
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image
from sqlalchemy import Engine, text

from benchmarks.patient_script import (
    DIAGNOSES,
    LATER_ANSWERS,
    PATIENT_ANSWERS,
    TIMELINE_LINES,
    TYPED_QUESTION,
)
from bot.app import App, build_app
from bot.channels.telegram_base import encode_callback, split_text
from bot.config import load_settings
from conversations.events import FileRef, Inbound, InboundKind, Outbound
from conversations.i18n import SUPPORTED_LOCALES, translator
from conversations.state import ConversationKey
from handlers.updates.pipeline import ALBUM_QUIET_SECONDS
from storage.files import FileStore, load_key
from tests.telegram_fake import SENT_METHODS, FakeBotApi, Sent

JSONDict = dict[str, Any]
# The text as the patient reads it, and the buttons (label, data): a ticked option's label
# changes while its data stays.
Reply = tuple[str, tuple[tuple[str, str], ...]]
Push = Callable[[list[JSONDict]], Awaitable[None]]


# --------------------------------------------------------------------------- the moves


def pdf_bytes(owner: int, name: str) -> bytes:
    """A small PDF, different for every patient and name."""
    body = f"BT /F1 12 Tf 72 720 Td ({name} of patient {owner}) Tj ET".encode()
    return b"".join(
        (
            b"%PDF-1.4\n1 0 obj << /Length ",
            str(len(body)).encode(),
            b" >>\nstream\n",
            body,
            b"\nendstream\nendobj\ntrailer << >>\n%%EOF\n",
        )
    )


@cache
def jpeg_bytes(owner: int, number: int) -> bytes:
    """A real JPEG photo, different for every patient and number."""
    picture = Image.new("RGB", (48, 32), ((owner * 37) % 256, (number * 91) % 256, 120))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=90, comment=f"patient {owner} photo {number}")
    return out.getvalue()


@dataclass(frozen=True)
class SentFile:
    """A file a patient sends: a PDF letter (with its name) or a photo (Telegram gives photos
    no name). Its bytes are the owner's own, so no two patients send the same file."""

    name: str
    number: int

    @property
    def is_photo(self) -> bool:
        return not self.name

    @property
    def mime_type(self) -> str:
        return "image/jpeg" if self.is_photo else "application/pdf"

    def data(self, owner: int) -> bytes:
        return jpeg_bytes(owner, self.number) if self.is_photo else pdf_bytes(owner, self.name)


@dataclass(frozen=True)
class Move:
    """One thing a patient does. Files sharing an `album` name are parts of one album
    (Telegram sends each as its own update, with one media_group_id)."""

    kind: InboundKind
    value: str = ""  # the command, the text, or the button data of a press
    files: tuple[SentFile, ...] = ()
    album: str = ""


# Answers differ by variant: other languages, areas, checklists and reasons.
VARIANTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("en", "oncology", ("new_diagnosis", "conflicting_advice")),
    ("zh-hans", "cardiovascular", ("major_treatment",)),
    ("es", "eye", ("rare_condition", "reassurance")),
)
ABOUT_QUESTION = "What will you keep about me?"
LETTER = "discharge-letter.pdf"


class Policy:
    """What a patient of one variant answers to the question on screen, by step and option
    ids (never by the words shown): the whole intake, with /status once, a word typed where
    a button is expected, a letter for the first checklist item and an album of two photos
    for the second."""

    def __init__(self, variant: int) -> None:
        self.language, self.area, self.reasons = VARIANTS[variant]
        self.diagnosis = DIAGNOSES[variant % len(DIAGNOSES)]
        self.seen: dict[str, int] = {}
        self.status_asked = False

    def next(self, prompt_ref: str, options: Sequence[str]) -> Move | None:
        step, _, cursor = prompt_ref.partition(".")
        times = self.seen.get(prompt_ref, 0)
        self.seen[prompt_ref] = times + 1

        def press(choice: str) -> Move:
            assert choice in options, f"{choice!r} not offered at {prompt_ref}: {options}"
            return Move(InboundKind.CHOICE, encode_callback(prompt_ref, choice))

        fixed = {
            "emergency": "no",
            "about": "continue",
            "consent_health": "agree",
            "consent_transfer": "agree",
            "for_whom": "self",
            "fit_goal": "review",
            "fit_verdict": "continue",
            "area": self.area,
            "oncology_kind": "hepatobiliary_gi",
            "readiness": "continue",
            "review": "submit",
        }
        if step == "":
            return Move(InboundKind.COMMAND, "start")
        if step == "submitted":
            return None
        if step == "about" and times == 0:
            return Move(InboundKind.TEXT, ABOUT_QUESTION)
        if step == "for_whom" and not self.status_asked:
            self.status_asked = True
            return Move(InboundKind.COMMAND, "status")
        if step in fixed:
            return press(fixed[step])
        if step in PATIENT_ANSWERS or step in LATER_ANSWERS:
            answer = {**PATIENT_ANSWERS, **LATER_ANSWERS}[step]
            typed = answer.removeprefix("text:")
            return Move(InboundKind.TEXT, typed) if typed != answer else press(answer)
        if step == "fit_reasons":  # ticks, each edits the question in place
            return press(self.reasons[times] if times < len(self.reasons) else "done")
        if step.startswith("fit_"):
            return press(("yes", "no", "unsure")[len(step) % 3])
        if step == "diagnosis":
            return Move(InboundKind.TEXT, self.diagnosis)
        if step == "questions":
            suggested = [o for o in options if o.startswith("q_")]
            if "done" in options:  # enough asked
                return press("done")
            if times == 0 or not suggested:
                return Move(InboundKind.TEXT, TYPED_QUESTION)
            return press(suggested[0])
        if step == "timeline":
            if times < len(TIMELINE_LINES):
                return Move(InboundKind.TEXT, TIMELINE_LINES[times])
            return press("done")
        if step == "records":
            item = int(cursor or 0)
            if item < 2 and times == 0:
                return press("upload")
            return press("later" if item % 2 else "not_applicable")
        if step == "records_upload":
            if times > 0:
                return press("done")
            if int(cursor or 0) == 0:
                return Move(InboundKind.FILES, files=(SentFile(LETTER, 0),))
            return Move(InboundKind.FILES, files=(SentFile("", 1), SentFile("", 2)), album="a1")
        raise AssertionError(f"the script does not know the step {prompt_ref!r}")


# --------------------------------------------------------------------------- the reference


def normalise(message: str) -> str:
    """What differs between two runs of one script: case references and the names Telegram
    gives photos."""
    message = re.sub(r"HZ-[0-9A-Z]{4}-[0-9A-Z]{4}", "HZ-????-????", message)
    return re.sub(r"photo-[\w-]+\.jpg", "photo-?.jpg", message)


def replies_of(message: Outbound) -> list[Reply]:
    """How one outbox message reaches a Telegram chat: long texts in parts, the buttons on
    the last part."""
    buttons = tuple((o.label, encode_callback(message.prompt_ref, o.id)) for o in message.options)
    chunks = split_text(message.text)
    return [
        (normalise(chunk), buttons if index == len(chunks) - 1 else ())
        for index, chunk in enumerate(chunks)
    ]


def is_progress(message: Outbound) -> bool:
    """The message edited in place while files are checked: it shows only when a check takes
    more than two seconds, so it is left out of every comparison."""
    return (message.replace_key or "").startswith("progress:")


@dataclass(frozen=True)
class Script:
    """One variant's moves, the replies each gets, and the step the patient ends at."""

    language: str
    moves: tuple[Move, ...]
    replies: tuple[tuple[Reply, ...], ...]
    final_step: str

    @cached_property
    def expected(self) -> list[Reply]:
        return [reply for move in self.replies for reply in move]

    @property
    def files(self) -> list[SentFile]:
        return [file for move in self.moves for file in move.files]

    @property
    def updates(self) -> int:
        """Telegram updates a patient sends (each album part is one)."""
        return sum(max(1, len(move.files)) for move in self.moves)


class _Opener:
    """Stands in for Telegram's download in the reference: the bytes the patient sent."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def open(self, source: str) -> BinaryIO:
        return io.BytesIO(self.files[source])


def reference_run(folder: Path, albums_whole: bool = True) -> list[Script]:
    """Every variant's script. With `albums_whole` False each album part is its own move,
    acknowledged on its own (a webhook receives parts one request at a time)."""
    app = build_app(load_settings({"DATA_DIR": str(folder)}))
    try:
        return [_reference(app, variant, albums_whole) for variant in range(len(VARIANTS))]
    finally:
        app.close()


def _run_jobs_after_quiet(app: App, opener: _Opener) -> None:
    later = app.pipeline.clock() + timedelta(seconds=ALBUM_QUIET_SECONDS + 1)
    running_clock = app.pipeline.clock
    app.pipeline.clock = lambda: later
    try:
        app.pipeline.run_jobs({"telegram": opener})
    finally:
        app.pipeline.clock = running_clock


def _reference(app: App, variant: int, whole: bool) -> Script:
    policy = Policy(variant)
    user = f"reference-{variant}"
    opener = _Opener()
    moves: list[Move] = []
    replies: list[tuple[Reply, ...]] = []
    prompt_ref, options = "", tuple[str, ...]()
    seen = len(app.outbox.pending(limit=100_000))
    while (move := policy.next(prompt_ref, options)) is not None:
        assert len(moves) < 200, "the script does not end"
        parts = [move]
        if move.album and not whole:
            parts = [Move(InboundKind.FILES, files=(f,), album=move.album) for f in move.files]
        for number, part in enumerate(parts, 1):
            _reference_update(app, opener, user, policy.language, len(moves), part)
            if part.album and number == len(parts):
                # The album's last part: its files are checked (and reported) once no part
                # came for a moment, as the running bot's timer does.
                _run_jobs_after_quiet(app, opener)
            else:
                app.pipeline.run_jobs({"telegram": opener})
            rows = app.outbox.pending(limit=100_000)[seen:]
            seen += len(rows)
            outbound = [
                Outbound.model_validate_json(row.payload_json)
                for row in rows
                if row.audience == "user"
            ]
            outbound = [o for o in outbound if not is_progress(o)]
            assert all(not o.files for o in outbound), "the script makes no previews"
            moves.append(part)
            replies.append(tuple(r for o in outbound for r in replies_of(o)))
            for message in outbound:
                if message.prompt_ref:  # the question now on screen
                    prompt_ref = message.prompt_ref
                    options = tuple(option.id for option in message.options)
    state = app.pipeline.state_of(ConversationKey("telegram", user))
    assert state is not None
    return Script(policy.language, tuple(moves), tuple(replies), state.step)


def _reference_update(
    app: App, opener: _Opener, user: str, language: str, number: int, move: Move
) -> None:
    fields: JSONDict = {}
    if move.kind == InboundKind.COMMAND:
        fields["command"] = move.value
    elif move.kind == InboundKind.TEXT:
        fields["text"] = move.value
    elif move.kind == InboundKind.CHOICE:
        prompt_ref, _, choice = move.value.partition("|")
        fields.update(prompt_ref=prompt_ref, choice_id=choice, message_ref="1")
    else:
        refs = []
        for index, file in enumerate(move.files):
            source = f"r{number}i{index}"
            opener.files[source] = file.data(0)
            refs.append(
                FileRef(
                    source=source,
                    name=file.name or f"photo-{source}.jpg",
                    size=len(opener.files[source]),
                    mime_type=file.mime_type,
                )
            )
        fields["files"] = tuple(refs)
        # Live, the parts carry their media_group_id and share one acknowledgement.
        fields["album"] = f"{user}-{move.album}" if move.album else ""
    app.pipeline.handle(
        Inbound(
            channel="telegram",
            user_key=user,
            chat_key=user,
            update_key=f"{user}:{number}",
            kind=move.kind,
            language_hint=language,
            **fields,
        )
    )


# --------------------------------------------------------------------------- live patients


@cache
def _progress_patterns() -> re.Pattern[str]:
    """The progress message in every language, whatever its numbers."""
    shapes: list[str] = []
    for locale in SUPPORTED_LOCALES:
        t = translator(locale)
        samples = [
            *(
                t.plural(
                    "Checking {count} file… {done}/{count}",
                    "Checking {count} files… {done}/{count}",
                    n,
                    done=7,
                )
                for n in (2, 3, 9, 11, 21, 100)  # every plural form a language has
            ),
            t("Checking your files… {done} so far", done=7),
            *(t.plural("Checked {count} file.", "Checked {count} files.", n) for n in (1, 7)),
        ]
        shapes += [re.sub(r"\d+", lambda _: r"\d+", re.escape(s)) for s in samples]
    return re.compile("|".join(f"(?:{shape})" for shape in shapes))


def looks_like_progress(record: Sent) -> bool:
    return bool(_progress_patterns().fullmatch(record.text or ""))


class Observer:
    """The fake's records (one list for every chat), sorted by chat as they arrive."""

    def __init__(self, fake: FakeBotApi) -> None:
        self.fake = fake
        self._read = 0
        self._chats: dict[int, list[Sent]] = {}

    def of(self, chat: int) -> list[Sent]:
        records = self.fake.records
        for record in records[self._read :]:
            if record.method in SENT_METHODS:
                self._chats.setdefault(record.chat_id, []).append(record)
        self._read = len(records)
        return self._chats.get(chat, [])


@dataclass(frozen=True)
class Duplicate:
    """A message that arrived again right after itself."""

    chat: int
    first: Sent
    again: Sent


def reply_of(record: Sent) -> Reply:
    buttons = [button for row in record.inline_keyboard for button in row]
    return normalise(record.text or ""), tuple(
        (str(b.get("text", "")), str(b.get("callback_data", ""))) for b in buttons
    )


@dataclass
class LivePatient:
    fake: FakeBotApi
    observer: Observer
    user_id: int
    script: Script
    timeout: float = 60.0  # for the replies to one move
    matched: int = 0
    read: int = 0
    updates: list[JSONDict] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    progress: list[Sent] = field(default_factory=list)
    _last: Sent | None = None
    _question: Sent | None = None
    done: bool = False

    @property
    def ends(self) -> list[int]:
        """How many reference replies have arrived once each move is answered."""
        ends, total = [], 0
        for replies in self.script.replies:
            total += len(replies)
            ends.append(total)
        return ends

    async def play(self, push: Push) -> None:
        expected = self.script.expected
        for move, end in zip(self.script.moves, self.ends, strict=True):
            updates = self._updates(move)
            self.updates += updates
            await push(updates)
            await self.fake.wait_for(
                functools.partial(self._caught_up, end),
                timeout=self.timeout,
                what=f"patient {self.user_id}: replies {self.matched}..{end} of {len(expected)}",
            )
        self.done = True

    def read_the_rest(self) -> None:
        """Take in what arrived after the last move was answered (a late duplicate)."""
        assert self._caught_up(len(self.script.expected))

    def _caught_up(self, end: int) -> bool:
        expected = self.script.expected
        for record in self.observer.of(self.user_id)[self.read :]:
            self.read += 1
            if looks_like_progress(record):
                self.progress.append(record)
                continue
            seen = reply_of(record)
            if self.matched < len(expected) and seen == expected[self.matched]:
                self.matched += 1
            elif self._last is not None and seen == reply_of(self._last):
                self.duplicates.append(Duplicate(self.user_id, self._last, record))
            else:
                wanted = expected[self.matched] if self.matched < len(expected) else None
                raise AssertionError(
                    f"patient {self.user_id}, message {self.read}: {seen!r}, "
                    f"expected reply {self.matched}: {wanted!r}"
                )
            self._last = record
            if record.callback_data:
                self._question = record
        return self.matched >= end

    def _updates(self, move: Move) -> list[JSONDict]:
        fake, user, language = self.fake, self.user_id, self.script.language
        if move.kind == InboundKind.COMMAND:
            return [fake.command(user, f"/{move.value}", language_code=language)]
        if move.kind == InboundKind.TEXT:
            return [fake.text_message(user, move.value, language_code=language)]
        if move.kind == InboundKind.CHOICE:
            question = self._question
            assert question is not None and move.value in question.callback_data, move.value
            return [fake.callback(user, move.value, question.message_id, language_code=language)]
        group = f"{user}-{move.album}" if move.album else None
        updates = []
        for file in move.files:
            data = file.data(user)
            if file.is_photo:
                updates.append(
                    fake.photo(user, data, sizes=2, media_group_id=group, language_code=language)
                )
            else:
                updates.append(
                    fake.document(
                        user,
                        file.name,
                        data,
                        file.mime_type,
                        media_group_id=group,
                        language_code=language,
                    )
                )
        return updates


def make_patients(
    fake: FakeBotApi, scripts: Sequence[Script], count: int, first_id: int, timeout: float = 60.0
) -> list[LivePatient]:
    observer = Observer(fake)
    return [
        LivePatient(fake, observer, first_id + n, scripts[n % len(scripts)], timeout)
        for n in range(count)
    ]


# --------------------------------------------------------------------------- after the run


def unsent(engine: Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND attempts < 8"
        return int(conn.execute(text(query)).scalar_one())


async def drained(engine: Engine, timeout: float = 60.0) -> None:
    """Wait until every outbox row is sent (a retry may still be waiting out its backoff)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := await asyncio.to_thread(unsent, engine)) > 0:
        assert loop.time() < deadline, f"{left} outbox rows still unsent after {timeout} s"
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class StoreFigures:
    documents: int
    blobs: int
    leftovers: int  # partial writes a killed process left in files/incoming


def check_conversations(engine: Engine, patients: Sequence[LivePatient]) -> None:
    """Each conversation at its script's last step; every update stored once (an album's
    parts as one); the outbox holds each reference reply once, in order, all of it sent."""
    with engine.connect() as conn:
        steps = {
            user_key: step
            for user_key, step in conn.execute(
                text("SELECT user_key, step FROM conversation WHERE channel = 'telegram'")
            )
        }
        rows: dict[str, list[tuple[str, str | None]]] = {}
        for chat, payload, sent_at in conn.execute(
            text(
                "SELECT chat_key, payload_json, sent_at FROM outbox "
                "WHERE channel = 'telegram' AND audience = 'user' ORDER BY id"
            )
        ):
            rows.setdefault(chat, []).append((payload, sent_at))
    for patient in patients:
        key = str(patient.user_id)
        assert steps.get(key) == patient.script.final_step, (key, steps.get(key))
        queued = [Outbound.model_validate_json(payload) for payload, _ in rows[key]]
        assert all(sent_at is not None for _, sent_at in rows[key]), f"unsent rows for {key}"
        replies = [r for o in queued if not is_progress(o) for r in replies_of(o)]
        assert replies == patient.script.expected, f"patient {key}: the outbox differs"


def check_stored_files(
    data_dir: Path, engine: Engine, patients: Sequence[LivePatient], key: str | None = None
) -> StoreFigures:
    """Every file a patient sent is in the document table once, with its own content, and in
    the file store once (content-addressed), readable back as itself; nothing else is."""
    with engine.connect() as conn:
        cases = {
            user_key: case_id
            for user_key, case_id in conn.execute(text('SELECT user_key, id FROM "case"'))
        }
        documents = list(
            conn.execute(text("SELECT case_id, original_name, sha256, kind FROM document"))
        )
    by_case: dict[str, list[tuple[str, str]]] = {}
    for case_id, name, sha256, _kind in documents:
        by_case.setdefault(case_id, []).append((normalise(name), sha256))
    for patient in patients:
        sent = sorted(
            (
                normalise(f.name or "photo-x.jpg"),
                hashlib.sha256(f.data(patient.user_id)).hexdigest(),
            )
            for f in patient.script.files
        )
        kept = sorted(by_case.get(cases[str(patient.user_id)], []))
        assert kept == sent, f"patient {patient.user_id}: stored {kept}, sent {sent}"
    assert len(documents) == sum(len(p.script.files) for p in patients)
    store = FileStore(data_dir / "files", load_key(key, data_dir))
    blobs = sorted(store.stored())
    assert blobs == sorted({sha256 for _, _, sha256, _ in documents})
    for sha256 in blobs:
        with store.open(sha256) as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == sha256
    incoming = data_dir / "files" / "incoming"
    leftovers = len(list(incoming.iterdir())) if incoming.exists() else 0
    return StoreFigures(len(documents), len(blobs), leftovers)
