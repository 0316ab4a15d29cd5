"""Property tests for the conversation state machine.

* `EngineMachine` drives the pure engine (`conversations.engine.handle`) with random commands,
  button presses (current, stale and made up), free text, files and background-job results,
  and checks the invariants of `check_transition` after every single event.
* `test_a_cooperative_patient_always_reaches_submission` plays a patient who answers sensibly
  and checks every such run ends in a submitted case that keeps every answer.
* `PipelineMachine` sends random events for a few users through the real `Pipeline` and a real
  SQLite database, re-sends earlier updates, runs the file jobs, and checks what is stored.

Set HUIZHEN_PROPERTY_SCALE=10 (for example) to run ten times as many examples.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol, TypeVar

import hypothesis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import func, select

from benchmarks.patient_script import LATER_ANSWERS, PATIENT_ANSWERS
from bot.app import build_app
from bot.config import load_settings
from conversations import engine
from conversations.effects import (
    CaseSubmitted,
    ConsentGiven,
    DataRightRequested,
    IngestFile,
    NotifyCoordinators,
)
from conversations.engine import handle
from conversations.events import FileRef, Inbound, InboundKind, Option, Outbound
from conversations.flow import BEFORE_CONSENT, FIRST_STEP, STEPS
from conversations.i18n import SUPPORTED_LOCALES, translator
from conversations.questions import MIN_QUESTIONS
from conversations.redflags import is_red_flag
from conversations.state import ConversationKey, ConversationState, IntakeDraft
from conversations.step import Context
from conversations.steps.records import current_item
from conversations.transition import Transition, overlay_options, prompt_ref
from storage.models import Case, ConsentRecord, Conversation, Document, Job, Outbox
from tests.support.tables import table

T = TypeVar("T")

# Passing, the file takes well under a minute. Failing, Hypothesis shrinks the example for up to
# 5 minutes per test; the project-wide 300 s timeout would kill it before the shrunk example is
# printed, so these tests get more room.
pytestmark = pytest.mark.timeout(900)

SCALE = max(1, int(os.environ.get("HUIZHEN_PROPERTY_SCALE", "1")))
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
STEP_ORDER = {step: index for index, step in enumerate(STEPS)}

# --- what users send ------------------------------------------------------------------------

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", ""),
    ("help", ""),
    ("language", ""),
    ("language", "zh"),
    ("language", "en"),
    ("back", ""),
    ("status", ""),
    ("restart", ""),
    ("newcase", ""),
    ("withdraw", ""),
    ("export", ""),
    ("delete", ""),
    ("Back", ""),
    ("frobnicate", ""),
)
# The database machine keeps its own account of consents, cases and jobs per user; copies and
# erasures (which rewrite all three) have their own tests in tests/test_data_rights.py.
PIPELINE_COMMANDS = tuple(c for c in COMMANDS if c[0] not in ("withdraw", "export", "delete"))
DIAGNOSES = (
    "liver cancer, about 4 cm, doctors suggest surgery",
    "肝癌，约4厘米，医生建议手术",
    "lumbar disc herniation at L4-L5",
)
SPECIFIC_QUESTIONS = (
    "Is surgery necessary, or is there a non-surgical option?",
    "Do my scans show the tumour has spread?",
    "Should the pathology be reviewed again before chemotherapy?",
    "手术是必要的吗，还是有其他治疗方法？",
)
VAGUE_QUESTIONS = ("what do you think?", "help me", "is it bad?", "怎么办", "my uncle")
TIMELINE_LINES = (
    "March 2024: biopsy",
    "2024-05-10: CT scan",
    "about June 2024: started chemotherapy",
    "2022年6月 确诊肝癌",
    "March 2024: first symptoms\n2024-05-10 CT scan\nno date here",
)
RED_FLAGS = (
    "I have chest pain right now",
    "我胸痛",
    "my mother had a stroke last night",
    "I can't breathe",
)
# Good typed answers to the questions about who the patient is (buttons are good too).
PATIENT_TEXTS: dict[str, tuple[str, ...]] = {
    "patient_name": ("Maria Ivanova", "Wang Jianguo"),
    "patient_name_zh": ("王建国",),
    "patient_birth": ("1958-03-12", "67", "about 1960"),
    "patient_residence": ("Kazakhstan, Almaty",),
    "patient_nationality": ("Kazakh",),
    "patient_contact": ("+7 701 123 4567", "maria@example.com"),
    "history_illnesses": ("Type 2 diabetes since 2015", "none"),
    "history_medicines": ("Metformin 500 mg twice a day",),
    "history_allergies": ("Penicillin: a rash",),
    "complaint": ("A lump in the liver since May; the doctors disagree about surgery",),
}

REALISTIC_TEXTS = (
    *(text for texts in PATIENT_TEXTS.values() for text in texts),
    *DIAGNOSES,
    *SPECIFIC_QUESTIONS,
    *VAGUE_QUESTIONS,
    *TIMELINE_LINES,
    *RED_FLAGS,
    "",
    "   ",
    "1",
    "yes",
)
texts = st.one_of(st.text(max_size=60), st.sampled_from(REALISTIC_TEXTS))
language_hints = st.sampled_from((None, None, None, "zh-CN", "en-GB", "fr", "zh-Hant-TW"))

# Ids of buttons that exist somewhere, and prompt refs, to press at the wrong moment.
KNOWN_CHOICE_IDS = (
    "no",
    "yes",
    "resume",
    "continue",
    "not_now",
    "agree",
    "decline",
    "self",
    "family",
    "parent",
    "new_diagnosis",
    "done",
    "unsure",
    "treatment",
    "stop",
    "oncology",
    "other",
    "hepatobiliary_gi",
    "no_diagnosis",
    "q_diagnosis",
    "q_staging",
    "edit",
    "remove",
    "pick:0",
    "pick:2",
    "pick:7",
    "edit:0",
    "cancel_edit",
    "remove_last",
    "clear",
    "upload",
    "later",
    "not_applicable",
    "next",
    "back_to_item",
    "submit",
    "edit_who",
    "edit_patient",
    "skip",
    "keep",
    "female",
    "opinion:en",
    "edit_fit",
    "edit_questions",
    "edit_records",
    "cancel",
    "confirm",
    "lang:en",
    "lang:zh_Hans",
    "lang:fr",
)
KNOWN_REFS = (*STEPS, "records.0", "records.2", "records_upload.1", "language", "restart")

FILE_NAMES = ("ct-report.pdf", "scan.dcm", "病理报告.jpg", "")


def file_refs(prefix: str = "/nonexistent") -> st.SearchStrategy[tuple[FileRef, ...]]:
    one = st.builds(
        lambda name, size, n: FileRef(source=f"{prefix}/{n}/{name}", name=name, size=size),
        st.sampled_from(FILE_NAMES),
        st.none() | st.integers(0, 10**9),
        st.integers(0, 99),
    )
    return st.lists(one, min_size=1, max_size=3).map(tuple)


# --- the invariants -------------------------------------------------------------------------


def expected_options(state: ConversationState) -> tuple[Option, ...]:
    t = translator(state.locale)
    if state.overlay:
        return overlay_options(state, t)
    return STEPS[state.step].options(state, t)


@cache
def stale_note(locale: str) -> str:
    """The note the engine puts before the question when a press is refused (taken from the
    engine itself, so a change of wording does not break these tests)."""
    refused = engine._stale(ConversationState(step=FIRST_STEP, locale=locale), translator(locale))
    return refused.replies[0].text


def is_stale_reply(transition: Transition, locale: str) -> bool:
    return bool(transition.replies) and transition.replies[0].text == stale_note(locale)


def all_record_files(draft: IntakeDraft) -> list[Any]:
    return [f for r in draft.records.values() for f in r.files] + list(draft.unsorted_files)


def check_transition(
    before: ConversationState | None,
    inbound: Inbound,
    ctx: Context,
    submitted_case_ids: set[str],
    default_locale: str = "en",
) -> Transition:
    """Run one event through the engine and check every invariant of the result."""
    before_json = before.model_dump_json() if before is not None else None
    transition = handle(before, inbound, ctx, default_locale)  # never raises
    state = transition.state

    # Pure: the state passed in is not changed.
    if before is not None:
        assert before.model_dump_json() == before_json, "handle mutated the state it was given"

    # A well-formed state, stored as JSON, comes back equal.
    assert isinstance(state, ConversationState)
    assert state.step in STEPS, state.step
    assert state.locale in SUPPORTED_LOCALES
    assert ConversationState.model_validate_json(state.model_dump_json()) == state
    assert len(state.history) <= 100
    assert all(step in STEPS for step in state.history)
    if state.step == "emergency_paused":
        assert state.paused_step in STEPS and state.paused_step != "emergency_paused"

    # Replies: every user message is answered; only the last message carries the buttons,
    # and they are exactly what the state offers.
    if inbound.kind != InboundKind.SYSTEM:
        assert transition.replies, f"no reply to {inbound.kind}"
    else:
        assert transition.via == "system"
    for reply in transition.replies:
        assert reply.text.strip(), "an empty message"
        assert reply.locale == state.locale
    for reply in transition.replies[:-1]:
        assert not reply.options and not reply.prompt_ref
    if transition.replies:
        last = transition.replies[-1]
        assert last.prompt_ref == prompt_ref(state)
        assert last.options == expected_options(state)
        assert len({o.id for o in last.options}) == len(last.options), "duplicate button ids"
        assert all(o.id and o.label.strip() for o in last.options)
        assert last.expects_files == (
            state.step == "records_upload" and current_item(state) is not None
        )

    # Consent comes before any health data, and before any effect but the consent itself (a
    # copy or an erasure may be asked for at any time).
    was_consented = before is not None and before.consented
    if not was_consented:
        kinds = [type(e).__name__ for e in transition.effects]
        allowed = (ConsentGiven, DataRightRequested)
        assert all(isinstance(e, allowed) for e in transition.effects), kinds
    if not state.consented:
        stopped = ("withdrawn", "erasing")
        if state.step not in stopped and state.paused_step not in stopped:
            # After a withdrawal the answers stay stored (for a copy, or until erased), unused.
            assert state.draft == IntakeDraft(), f"health data before consent: {state.draft!r}"
        assert state.paused_text is None
        assert state.step in BEFORE_CONSENT, state.step
        # Cases submitted before a withdrawal stay listed, stopped.
        assert all(case.status == "withdrawn" for case in state.submitted)
    else:
        assert state.draft.case_id is not None

    # Steps change only along the declared edges of the step table.
    before_step = before.step if before is not None else FIRST_STEP
    if transition.via == "step" and state.step != before_step:
        edges = STEPS[before_step].edges
        red_flag = inbound.kind == InboundKind.TEXT and is_red_flag(inbound.text)
        back_to_review = before is not None and before.returning_to_review
        assert (
            state.step in edges
            or "*" in edges
            or (state.step == "emergency_paused" and red_flag)
            or (state.step == "review" and back_to_review)
        ), f"undeclared transition {before_step} -> {state.step} on {inbound!r}"

    # A submission keeps every answer; the list of submitted cases only grows.
    before_submitted = before.submitted if before is not None else []
    submissions = [e for e in transition.effects if isinstance(e, CaseSubmitted)]
    # (A withdrawal changes their status, nothing else.)
    ids = [(case.case_id, case.reference) for case in state.submitted]
    assert ids[: len(before_submitted)] == [(c.case_id, c.reference) for c in before_submitted]
    assert len(state.submitted) == len(before_submitted) + len(submissions)
    assert len(submissions) <= 1
    for submission in submissions:
        assert IntakeDraft.model_validate_json(submission.answers_json) == state.draft
        assert submission.case_id == state.draft.case_id == state.submitted[-1].case_id
        assert submission.case_id not in submitted_case_ids, "a case was submitted twice"
        assert state.step == "submitted"
        submitted_case_ids.add(submission.case_id)
        notices = [e for e in transition.effects if isinstance(e, NotifyCoordinators)]
        assert len(notices) == 1 and notices[0].notice.case_id == submission.case_id

    # Files are only taken into the current case, each one kept in the draft.
    file_ids = {f.file_id for f in all_record_files(state.draft)}
    for effect in transition.effects:
        if isinstance(effect, IngestFile):
            assert inbound.kind == InboundKind.FILES
            assert effect.case_id == state.draft.case_id
            assert effect.file_id in file_ids
    return transition


# --- a patient who wants to finish ----------------------------------------------------------


class Pick(Protocol):
    """Chooses one of the good answers offered."""

    def __call__(self, items: Sequence[T], /) -> T: ...


def cooperative_move(state: ConversationState | None, pick: Pick) -> dict[str, Any]:
    """The next message of a patient who answers sensibly; `pick` chooses among good answers.

    Every move makes progress, so following it always ends in a submitted case.
    """
    if state is None:
        return {"kind": InboundKind.TEXT, "text": "hello"}
    ref = prompt_ref(state)

    def press(choice_id: str) -> dict[str, Any]:
        return {"kind": InboundKind.CHOICE, "choice_id": choice_id, "prompt_ref": ref}

    def text(words: str) -> dict[str, Any]:
        return {"kind": InboundKind.TEXT, "text": words}

    def command(name: str) -> dict[str, Any]:
        return {"kind": InboundKind.COMMAND, "command": name}

    if state.overlay:
        return press("cancel")
    step, draft = state.step, state.draft
    choice_ids = [c.id for c in STEPS[step].current_choices(state)]
    if step == "emergency":
        return press(pick(["no", "no", "yes"]))
    if step == "emergency_paused":
        return press("resume")
    if step == "about":
        return press("continue")
    if step in ("consent_health", "consent_transfer"):
        return press("agree")
    if step in ("declined", "withdrawn"):
        return command("start")
    if step == "erasing":
        return command("help")  # the erasure job ends this conversation; nothing to answer
    if step == "stopped":
        return command("start")
    if step == "relationship":
        return pick([*(press(c) for c in choice_ids), text("my uncle Wang")])
    if step in PATIENT_TEXTS:
        return pick([*(press(c) for c in choice_ids), *(text(w) for w in PATIENT_TEXTS[step])])
    if step == "fit_reasons":
        if not draft.fit_reasons:
            return press(pick([c for c in choice_ids if c != "done"]))
        return press("done")
    if step == "fit_verdict":
        return press("continue")
    if step == "diagnosis":
        return pick([press("no_diagnosis"), *(text(d) for d in DIAGNOSES)])
    if step == "questions":
        if "cancel_edit" in choice_ids:  # changing or removing a question: leave that
            return press("cancel_edit")
        if len(draft.questions) < MIN_QUESTIONS:
            asked = {q.text for q in draft.questions}
            suggestions = [c for c in choice_ids if c.startswith("q_")]
            own = [text(q) for q in SPECIFIC_QUESTIONS if q not in asked]
            return pick([*(press(c) for c in suggestions), *own])
        return press("done")
    if step == "timeline":
        if not draft.timeline:
            return text(pick(TIMELINE_LINES))
        return press("done")
    if step == "records":
        if current_item(state) is None:
            return press("next")
        return press(pick(["later", "not_applicable", "upload"]))
    if step == "records_upload":
        item = current_item(state)
        if item is not None and not (item.id in draft.records and draft.records[item.id].files):
            name = pick(FILE_NAMES)
            return {
                "kind": InboundKind.FILES,
                "files": (FileRef(source=f"ok/{name}", name=name, size=1234),),
            }
        return press("done")
    if step == "readiness":
        return press("continue")
    if step == "review":
        return press("submit")
    if step == "submitted":
        return command("newcase")
    # for_whom, the fit situation questions, area, oncology_kind: any of the buttons.
    return press(pick(choice_ids))


# --- 1. the pure engine ---------------------------------------------------------------------


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        ids = itertools.count(1)
        self.ctx = Context(now=NOW, new_id=lambda: f"id-{next(ids)}")
        self.updates = itertools.count(1)
        self.state: ConversationState | None = None
        self.reply: Outbound | None = None
        self.seen_choice_ids: set[str] = set()
        self.seen_refs: set[str] = set()
        self.submitted_case_ids: set[str] = set()
        self.furthest = 0

    def send(self, kind: InboundKind, **fields: Any) -> Transition:
        inbound = Inbound(
            channel="test",
            user_key="alice",
            chat_key="alice",
            update_key=f"u{next(self.updates)}",
            kind=kind,
            **fields,
        )
        transition = check_transition(self.state, inbound, self.ctx, self.submitted_case_ids)
        self.state = transition.state
        if transition.replies:
            self.reply = transition.replies[-1]
            self.seen_choice_ids.update(o.id for o in self.reply.options)
            self.seen_refs.add(self.reply.prompt_ref)
        self.furthest = max(self.furthest, STEP_ORDER[self.state.step])
        hypothesis.event(f"visited {self.state.step}")
        return transition

    def current_reply(self) -> Outbound | None:
        """The last reply, if its buttons are still the ones on screen for the state."""
        if self.state is None or self.reply is None:
            return None
        shown = self.reply.prompt_ref == prompt_ref(self.state) and self.reply.options == (
            expected_options(self.state)
        )
        return self.reply if shown else None

    @rule(command=st.sampled_from(COMMANDS), hint=language_hints)
    def command(self, command: tuple[str, str], hint: str | None) -> None:
        name, args = command
        self.send(InboundKind.COMMAND, command=name, args=args, language_hint=hint)

    @precondition(lambda self: self.current_reply() is not None and self.reply.options)
    @rule(data=st.data(), with_ref=st.booleans())
    def press_a_button(self, data: st.DataObject, with_ref: bool) -> None:
        """A button on screen is always accepted, with or without its prompt ref."""
        assert self.reply is not None and self.state is not None
        option = data.draw(st.sampled_from(self.reply.options))
        locale = self.state.locale
        ref = self.reply.prompt_ref if with_ref else ""
        transition = self.send(InboundKind.CHOICE, choice_id=option.id, prompt_ref=ref)
        assert not is_stale_reply(transition, locale), f"button {option.id!r} was refused"

    @rule(
        data=st.data(),
        choice_id=st.sampled_from(KNOWN_CHOICE_IDS) | st.text(max_size=8),
        ref=st.sampled_from(KNOWN_REFS) | st.just("") | st.text(max_size=8),
    )
    def press_anything(self, data: st.DataObject, choice_id: str, ref: str) -> None:
        """Old buttons, buttons from other questions, and made-up ids."""
        if len(self.seen_choice_ids) > 0 and data.draw(st.booleans()):
            choice_id = data.draw(st.sampled_from(sorted(self.seen_choice_ids)))
        if len(self.seen_refs) > 0 and data.draw(st.booleans()):
            ref = data.draw(st.sampled_from(sorted(self.seen_refs)))
        before, shown = self.state, self.current_reply()
        transition = self.send(InboundKind.CHOICE, choice_id=choice_id, prompt_ref=ref)
        on_screen = shown is not None and ref == shown.prompt_ref
        offered = {o.id for o in shown.options} if shown is not None else set()
        if before is not None and on_screen and choice_id not in offered:
            # Not a button on screen: refused, and nothing changes but a closed overlay.
            assert is_stale_reply(transition, before.locale)
            assert transition.state == before.model_copy(update={"overlay": None})

    @rule(text=texts, hint=language_hints)
    def type_text(self, text: str, hint: str | None) -> None:
        self.send(InboundKind.TEXT, text=text, language_hint=hint)

    @rule(text=st.sampled_from(SPECIFIC_QUESTIONS + TIMELINE_LINES + DIAGNOSES))
    def type_a_good_answer(self, text: str) -> None:
        self.send(InboundKind.TEXT, text=text)

    @rule(files=file_refs())
    def send_files(self, files: tuple[FileRef, ...]) -> None:
        transition = self.send(InboundKind.FILES, files=files)
        if not transition.state.consented:
            assert not transition.effects

    @precondition(lambda self: self.state is not None)
    @rule(data=st.data(), outcome=st.sampled_from(("file_stored", "file_failed", "other")))
    def a_file_job_finishes(self, data: st.DataObject, outcome: str) -> None:
        assert self.state is not None
        known = [f.file_id for f in all_record_files(self.state.draft)]
        file_id = data.draw(st.sampled_from([*known, "id-unknown"]))
        self.send(InboundKind.SYSTEM, system={"event": outcome, "file_id": file_id})

    @rule(data=st.data(), moves=st.integers(1, 15))
    def cooperate(self, data: st.DataObject, moves: int) -> None:
        """Several sensible answers in a row, so that runs go deep into the intake."""

        def pick(items: Sequence[Any]) -> Any:
            return data.draw(st.sampled_from(items))

        for _ in range(moves):
            self.send(**cooperative_move(self.state, pick))

    def teardown(self) -> None:
        hypothesis.event(f"submitted cases: {min(len(self.submitted_case_ids), 2)}")


# The default settings of a TestCase suppress every health check; these suppress none.
# deadline=None: one example is up to a few hundred engine calls; their time is not the point.
EngineMachine.TestCase.settings = settings(
    max_examples=200 * SCALE, stateful_step_count=60, deadline=None
)
# Some 30 s on a loaded two-core machine: slow.
TestEngineStateMachine = pytest.mark.slow(EngineMachine.TestCase)


# --- a cooperative patient always gets to the end -------------------------------------------


def run_cooperatively(pick: Pick, max_moves: int = 200) -> tuple[ConversationState, Counter[str]]:
    """Follow the cooperative patient to a submitted case, pressing every button on the way
    (on a side branch) to check none of the buttons shown is refused."""
    ids = itertools.count(1)
    ctx = Context(now=NOW, new_id=lambda: f"id-{next(ids)}")
    submitted: set[str] = set()
    state: ConversationState | None = None
    steps_seen: Counter[str] = Counter()
    for n in range(max_moves):
        inbound = Inbound(
            channel="test",
            user_key="u",
            chat_key="u",
            update_key=f"u{n}",
            **cooperative_move(state, pick),
        )
        transition = check_transition(state, inbound, ctx, submitted)
        state = transition.state
        steps_seen[state.step] += 1
        last = transition.replies[-1]
        for option in last.options:
            press = Inbound(
                channel="test",
                user_key="u",
                chat_key="u",
                update_key=f"side{n}",
                kind=InboundKind.CHOICE,
                choice_id=option.id,
                prompt_ref=last.prompt_ref,
            )
            side = check_transition(state, press, ctx, set(submitted))
            assert not is_stale_reply(side, state.locale), (state.step, option.id)
        if any(isinstance(e, CaseSubmitted) for e in transition.effects):
            return state, steps_seen
    raise AssertionError(f"no submission after {max_moves} moves; stuck at {state and state.step}")


@settings(max_examples=40 * SCALE, deadline=None)
@given(st.data())
def test_a_cooperative_patient_always_reaches_submission(data: st.DataObject) -> None:
    state, steps_seen = run_cooperatively(lambda items: data.draw(st.sampled_from(items)))
    assert state.step == "submitted" and len(state.submitted) == 1
    draft = state.draft
    assert draft.for_whom and draft.fit_reasons and draft.area and draft.timeline
    assert len(draft.questions) >= MIN_QUESTIONS
    assert {"consent_health", "consent_transfer", "review", "readiness"} <= set(steps_seen)


def test_submission_is_reachable_with_the_first_good_answer() -> None:
    state, steps_seen = run_cooperatively(lambda items: items[0])
    assert state.step == "submitted" and steps_seen["submitted"] == 1
    assert state.submitted[0].case_id == state.draft.case_id
    assert state.submitted[0].submitted_at == NOW


_USER = {"channel": "test", "user_key": "u", "chat_key": "u"}


def _press_through(moves: Sequence[str]) -> tuple[ConversationState, Context]:
    ids = itertools.count(1)
    ctx = Context(now=NOW, new_id=lambda: f"id-{next(ids)}")
    hello = Inbound(**_USER, update_key="0", kind=InboundKind.TEXT, text="hi")
    state = handle(None, hello, ctx).state
    for n, move in enumerate(moves, 1):
        typed = move.removeprefix("text:")
        if typed != move:
            message = Inbound(**_USER, update_key=str(n), kind=InboundKind.TEXT, text=typed)
        else:
            message = Inbound(
                **_USER,
                update_key=str(n),
                kind=InboundKind.CHOICE,
                choice_id=move,
                prompt_ref=prompt_ref(state),
            )
        state = handle(state, message, ctx).state
    return state, ctx


def test_an_old_change_button_does_not_remove_a_question() -> None:
    """The change and remove pickers both show "Question 2": a press on the older change
    picker, arriving while the remove picker is open, must not remove anything."""
    to_questions = [
        *("no", "continue", "agree", "agree", "self", *PATIENT_ANSWERS.values()),
        *("new_diagnosis", "done"),
        *("no", "yes", "yes", "no", "no", "review", "continue", "other", "no_diagnosis"),
        LATER_ANSWERS["complaint"],
        *("q_diagnosis", "q_more_tests", "q_alternative"),
    ]
    state, ctx = _press_through([*to_questions, "edit"])
    assert state.step == "questions" and len(state.draft.questions) == 3
    change_picker = expected_options(state)  # "Question 1".."Question 3", then "Cancel"
    old_button = Inbound(
        **_USER,
        update_key="old",
        kind=InboundKind.CHOICE,
        choice_id=change_picker[1].id,
        prompt_ref=prompt_ref(state),
    )
    state, _ = _press_through([*to_questions, "edit", "cancel_edit", "remove"])
    after = check_transition(state, old_button, ctx, set())
    assert after.state.draft.questions == state.draft.questions
    assert is_stale_reply(after, state.locale)


# --- 2. the pipeline with a real database ---------------------------------------------------

USERS = ("alice", "bob", "chen")
CHANNEL = "test"


class FakeOpener:
    """Opens a file the user 'sent': sources containing "bad" cannot be read."""

    def open(self, source: str) -> io.BytesIO:
        if "bad" in source:
            raise OSError("cannot read")
        return io.BytesIO(source.encode())


def _count(conn: Any, table: Any, *where: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


class PipelineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # A fresh database per example: function-scoped fixtures do not mix with hypothesis.
        self.dir = tempfile.mkdtemp(prefix="huizhen-props-")
        self.app = build_app(load_settings({"DATA_DIR": self.dir}))
        self.next_id = 1
        self.app.pipeline.clock = lambda: NOW
        self.app.pipeline.new_id = self._new_id
        self.updates = itertools.count(1)
        self.sent: list[Inbound] = []
        self.replies: dict[str, Outbound] = {}
        # What the pipeline returned last for each user (checked against the database).
        self.states: dict[str, ConversationState | None] = dict.fromkeys(USERS)
        self.outbox_rows = 0
        self.consents: Counter[str] = Counter()
        self.submitted_case_ids: set[str] = set()

    def _new_id(self) -> str:
        self.next_id += 1
        return f"id-{self.next_id - 1}"

    def teardown(self) -> None:
        self.app.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stored(self, user: str) -> ConversationState | None:
        return self.app.pipeline.state_of(ConversationKey(CHANNEL, user))

    def count_outbox(self) -> int:
        with self.app.engine.connect() as conn:
            return _count(conn, table(Outbox))

    def snapshot(self) -> dict[str, Any]:
        tables = (Outbox, Case, Job, Document, ConsentRecord, Conversation)
        with self.app.engine.connect() as conn:
            counts = {t.__tablename__: _count(conn, table(t)) for t in tables}
            conversations = table(Conversation)
            rows = conn.execute(select(conversations).order_by(conversations.c.user_key)).all()
        return {"counts": counts, "conversations": [tuple(r) for r in rows]}

    def send(self, user: str, **fields: Any) -> None:
        inbound = Inbound(
            channel=CHANNEL,
            user_key=user,
            chat_key=f"chat-{user}",
            update_key=f"{user}:{next(self.updates)}",
            **fields,
        )
        # What the pure engine does with the stored state, the same ids and the same time.
        ids = itertools.count(self.next_id)
        ctx = Context(now=NOW, new_id=lambda: f"id-{next(ids)}")
        expected = check_transition(self.states[user], inbound, ctx, set(self.submitted_case_ids))

        transition = self.app.pipeline.handle(inbound)
        self.sent.append(inbound)

        assert transition is not None
        assert transition.state == expected.state
        assert transition.replies == expected.replies
        assert transition.effects == expected.effects
        assert self.stored(user) == transition.state
        # Every reply, and every coordinator notice, is queued with the state.
        notices = sum(isinstance(e, NotifyCoordinators) for e in transition.effects)
        outbox_rows = self.count_outbox()
        assert outbox_rows - self.outbox_rows == len(transition.replies) + notices
        self.outbox_rows = outbox_rows
        self.states[user] = transition.state
        self.consents[user] += sum(isinstance(e, ConsentGiven) for e in transition.effects)
        self.submitted_case_ids.update(
            e.case_id for e in transition.effects if isinstance(e, CaseSubmitted)
        )
        if transition.replies:
            self.replies[user] = transition.replies[-1]

    @rule(user=st.sampled_from(USERS), command=st.sampled_from(PIPELINE_COMMANDS))
    def command(self, user: str, command: tuple[str, str]) -> None:
        self.send(user, kind=InboundKind.COMMAND, command=command[0], args=command[1])

    @rule(user=st.sampled_from(USERS), data=st.data())
    def press(self, user: str, data: st.DataObject) -> None:
        reply = self.replies.get(user)
        if reply is not None and reply.options and data.draw(st.integers(0, 3)):
            choice_id = data.draw(st.sampled_from(reply.options)).id
            ref = reply.prompt_ref
        else:
            choice_id = data.draw(st.sampled_from(KNOWN_CHOICE_IDS))
            ref = data.draw(st.sampled_from(KNOWN_REFS))
        self.send(user, kind=InboundKind.CHOICE, choice_id=choice_id, prompt_ref=ref)

    @rule(user=st.sampled_from(USERS), text=texts)
    def type_text(self, user: str, text: str) -> None:
        self.send(user, kind=InboundKind.TEXT, text=text)

    @rule(user=st.sampled_from(USERS), files=file_refs("ok") | file_refs("bad"))
    def send_files(self, user: str, files: tuple[FileRef, ...]) -> None:
        self.send(user, kind=InboundKind.FILES, files=files)

    @rule(user=st.sampled_from(USERS), data=st.data(), moves=st.integers(1, 40))
    def cooperate(self, user: str, data: st.DataObject, moves: int) -> None:
        def pick(items: Sequence[Any]) -> Any:
            return data.draw(st.sampled_from(items))

        for _ in range(moves):
            self.send(user, **cooperative_move(self.states[user], pick))

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def resend_an_earlier_update(self, data: st.DataObject) -> None:
        """A channel delivering the same update twice: the second time changes nothing."""
        inbound = data.draw(st.sampled_from(self.sent))
        before = self.snapshot()
        assert self.app.pipeline.handle(inbound) is None
        assert self.snapshot() == before

    @rule()
    def run_jobs(self) -> None:
        """Store the files (sources containing "bad" fail); results go back as system events."""
        self.app.pipeline.run_jobs({CHANNEL: FakeOpener()})
        self.states = {user: self.stored(user) for user in USERS}
        self.outbox_rows = self.count_outbox()

    @invariant()
    def database_agrees_with_the_conversations(self) -> None:
        with self.app.engine.connect() as conn:
            conversation, job, document = table(Conversation), table(Job), table(Document)
            consent, case = table(ConsentRecord), table(Case)
            c = conversation.c
            rows = {
                row.user_key: row
                for row in conn.execute(select(c.user_key, c.step, c.locale, c.state_json))
            }
            jobs = conn.execute(select(job.c.user_key, job.c.payload_json, job.c.done_at)).all()
            documents: dict[str, str] = {
                file_id: case_id
                for file_id, case_id in conn.execute(select(document.c.file_id, document.c.case_id))
            }
            per_user = select(consent.c.user_key, func.count()).group_by(consent.c.user_key)
            consents = Counter[str]({user: n for user, n in conn.execute(per_user)})
            cases: dict[str, list[str]] = {}
            for case_user, case_id in conn.execute(select(case.c.user_key, case.c.id)):
                cases.setdefault(case_user, []).append(case_id)
        assert consents == +self.consents
        for user in USERS:
            state = self.states[user]
            row = rows.get(user)
            if state is None:
                assert row is None
            else:
                assert row is not None
                assert ConversationState.model_validate_json(row.state_json) == state
                assert (row.step, row.locale) == (state.step, state.locale)
            if state is None or not state.consented:
                # Nothing about this user's health is in the database before consent.
                assert user not in cases
                assert all(job_user != user for job_user, _, _ in jobs)
                assert state is None or state.draft == IntakeDraft()
                continue
            assert sorted(cases.get(user, [])) == sorted(c.case_id for c in state.submitted)
            # A stored file has its document; a received one still has its job to run.
            pending = {
                IngestFile.model_validate_json(payload).file_id
                for job_user, payload, done_at in jobs
                if job_user == user and done_at is None
            }
            for file in all_record_files(state.draft):
                if file.status == "stored":
                    assert documents.get(file.file_id) == state.draft.case_id
                elif file.status == "received":
                    assert file.file_id in pending
        # Every document belongs to a job of a consented user.
        owners = {IngestFile.model_validate_json(p).file_id: u for u, p, _ in jobs}
        for file_id in documents:
            owner = self.states[owners[file_id]]
            assert owner is not None and owner.consented


# deadline=None: every example builds a fresh SQLite database on disk, and commits each event.
PipelineMachine.TestCase.settings = settings(
    max_examples=30 * SCALE, stateful_step_count=30, deadline=None
)
# Some 25 s on a loaded two-core machine: slow.
TestPipelineStateMachine = pytest.mark.slow(PipelineMachine.TestCase)
