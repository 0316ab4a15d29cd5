"""One table of case statuses and moves, and everything that shows or makes a move agrees
with it: the coordinators' card, the patient's /status, and the patient's own moves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import App, build_app
from bot.config import Settings
from conversations.case_progress import STATUS_TEXTS
from conversations.case_status import (
    FINISHED,
    MOVES,
    PATIENT_MOVES,
    CaseStatus,
    can_move,
    patient_move,
)
from handlers.casework.desk import BUTTONS, STATUS_LABELS, Button, CoordinatorDesk
from handlers.casework.operations import Actor
from tests.support.console import make_chat, to_review

COORDINATOR = "900"


def test_every_status_has_a_label_a_patient_text_and_its_card_buttons() -> None:
    assert set(MOVES) == set(CaseStatus)
    assert set(STATUS_LABELS) == set(CaseStatus)
    assert set(STATUS_TEXTS) == set(CaseStatus)
    assert set(BUTTONS) == set(CaseStatus)
    assert all(STATUS_LABELS[s].strip() and STATUS_TEXTS[s].strip() for s in CaseStatus)


def test_every_card_button_leads_where_the_table_allows() -> None:
    """A coordinator is never offered a button the table then refuses."""
    for status, buttons in BUTTONS.items():
        for button in buttons:
            # A second request for items keeps a waiting case where it is.
            stays = button.action == "pick" and button.target == status
            assert stays or can_move(status, button.target), (status, button)


def test_finished_cases_take_no_more_work_but_can_be_reopened() -> None:
    assert MOVES[CaseStatus.WITHDRAWN] == frozenset()
    for status in FINISHED - {CaseStatus.WITHDRAWN}:
        assert MOVES[status] <= {CaseStatus.IN_REVIEW, CaseStatus.CLOSED}


def test_a_status_the_table_does_not_know_is_refused() -> None:
    """Neither a coordinator's move nor a patient's touches a status the table does not
    list (an old row, a typo at the CLI): it is refused, never an error."""
    assert can_move("in_review", "ready_to_send")
    assert not can_move("in_review", "archived")
    assert not can_move("archived", "in_review")
    assert not can_move("in_review", "opinion_delivered")
    assert patient_move("follow_up", "archived") is None
    assert patient_move("withdraw", "archived") is None


def test_the_patients_own_moves_are_in_the_table() -> None:
    assert patient_move("follow_up", "opinion_delivered") == CaseStatus.IN_REVIEW
    assert patient_move("follow_up", "closed") == CaseStatus.IN_REVIEW
    # Asked about a case a coordinator has since declined, or is already reviewing: it stays.
    assert patient_move("follow_up", "declined") is None
    assert patient_move("follow_up", "in_review") is None
    for status in CaseStatus:
        stopped = patient_move("withdraw", status)
        assert stopped == (None if status in FINISHED else CaseStatus.WITHDRAWN), status
    assert set(PATIENT_MOVES) == {"withdraw", "follow_up"}


@pytest.fixture
def staffed(settings: Settings) -> Iterator[App]:
    """The app with one listed coordinator, who acts from the case card."""
    application = build_app(replace(settings, coordinator_ids=frozenset({COORDINATOR})))
    yield application
    application.close()


def test_every_card_button_moves_the_case_where_it_says(staffed: App, tmp_path: Path) -> None:
    """Each button of every card, pressed as a coordinator would, takes the case to the status
    it declares, and the next card offers that status's buttons."""
    chat = make_chat(staffed)
    to_review(chat)
    chat.press("Submit the case")
    reference = staffed.queue.list()[0].reference
    desk = CoordinatorDesk(staffed.casework)
    now = staffed.pipeline.clock()
    desk.remember_card(reference, "card-1")  # presses are obeyed only on the case's own card

    def offered() -> list[str]:
        card = desk.card(reference, now)
        assert card is not None
        return [action_id for _, action_id in card.actions]

    def press(action_id: str) -> None:
        assert action_id in offered(), action_id
        result = desk.act(COORDINATOR, action_id, "card-1", now)
        assert result.allowed, result.answer

    def take(button: Button) -> None:
        press(button.action_id(reference))
        if button.action == "pick":  # the picker: an item ticked, then the request sent
            press(next(i for i in offered() if i.startswith("toggle:")))
            press(f"send:{reference}")
        elif button.action == "decline":  # the reasons: the first one
            press(next(i for i in offered() if i.startswith("declined:")))
        assert staffed.casework.case(reference).status == button.target, button

    def deliver_opinion() -> None:
        opinion = tmp_path / "opinion.pdf"
        opinion.write_bytes(b"%PDF-1.4 opinion")
        actor = Actor(COORDINATOR, "cli")
        staffed.casework.attach_opinion(reference, opinion, None, actor)

    # Every button once: find the shortest way (by buttons, or the opinion from the CLI) to a
    # status with a button not yet pressed, then press it.
    untried = {(s, i) for s, buttons in BUTTONS.items() for i in range(len(buttons))}
    while True:
        here = CaseStatus(staffed.casework.case(reference).status)
        path = _way_to_untried(here, untried)
        if path is None:
            break
        for status, index in path:
            if index < 0:
                deliver_opinion()
            else:
                untried.discard((status, index))
                take(BUTTONS[status][index])
    assert untried == set()


def _way_to_untried(
    start: CaseStatus, untried: set[tuple[CaseStatus, int]]
) -> list[tuple[CaseStatus, int]] | None:
    """Buttons to press (status, index; -1 for the opinion) to press an untried one."""
    ways: dict[CaseStatus, list[tuple[CaseStatus, int]]] = {start: []}
    queue = [start]
    while queue:
        status = queue.pop(0)
        steps = [(i, b.target) for i, b in enumerate(BUTTONS[status])]
        if status == CaseStatus.SENT_TO_SPECIALIST:
            steps.append((-1, CaseStatus.OPINION_DELIVERED))
        for index, _ in steps:
            if (status, index) in untried:
                return [*ways[status], (status, index)]
        for index, target in steps:
            if target not in ways:
                ways[target] = [*ways[status], (status, index)]
                queue.append(target)
    return None
