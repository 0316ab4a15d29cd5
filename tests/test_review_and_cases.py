"""The review card: change any part and come back to it; submit; start another case."""

from __future__ import annotations

from pathlib import Path

from bot.app import App
from tests.support.console import (
    Chat,
    consent,
    to_review,
)


def test_editing_a_section_returns_to_the_review(chat: Chat) -> None:
    reply = to_review(chat)
    assert "Your case" in reply and "Please check everything" in reply
    reply = chat.choose("edit_questions")
    assert "What would you like the specialist to answer?" in reply
    chat.choose("remove")
    chat.choose("remove:0")
    chat.say("Is fusion necessary at my age, or can physiotherapy come first?")
    reply = chat.choose("done")
    assert "Please check everything" in reply
    assert "3. Is fusion necessary at my age" in reply

    reply = chat.choose("edit_who")
    assert "Who is this second opinion for?" in reply
    chat.choose("family")
    reply = chat.choose("partner")
    assert "Please check everything" in reply
    assert "For a family member or friend: My spouse or partner" in reply

    chat.choose("edit_timeline")
    chat.say("2025-11-02: MRI of the lumbar spine")
    reply = chat.choose("done")
    assert "Please check everything" in reply
    assert reply.index("2025-09 — back pain") < reply.index("2025-11-02 — MRI")


def test_editing_records_walks_the_checklist_again_then_returns(chat: Chat, tmp_path: Path) -> None:
    to_review(chat)
    reply = chat.choose("edit_records")
    assert "Records, item 1 of" in reply
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4 clinic letter")
    chat.choose("upload")
    chat.say(str(letter))
    chat.choose("done")
    while chat.buttons[:1] == ["Send it now"]:
        chat.choose("later")
    reply = chat.transcript[-1]
    assert "Readiness of your records for review" in reply
    reply = chat.choose("continue")
    assert "Diagnosis reports and clinic letters: sent (1 file)" in reply


def test_after_submission_status_shows_the_reference_and_newcase_starts_again(
    chat: Chat, app: App
) -> None:
    to_review(chat)
    chat.choose("submit")
    reference = app.queue.list()[0].reference
    reply = chat.say("/status")
    assert f"Case {reference}, submitted on" in reply
    assert "A coordinator will look at it soon" in reply
    reply = chat.say("/back")
    assert "already submitted" in reply
    reply = chat.say("/newcase")
    assert "is anyone having sudden" in reply
    reply = chat.choose("no")
    assert "Who is this second opinion for?" in reply
    assert f"Case {reference}" in chat.say("/status")
    assert len(app.queue.list()) == 1


def test_newcase_in_the_middle_of_a_case_asks_first(chat: Chat) -> None:
    consent(chat)
    chat.choose("self")
    reply = chat.say("/newcase")
    assert "has not been submitted" in reply
    reply = chat.choose("cancel")
    assert "What is your full name" in reply


def test_stopping_while_changing_the_fit_from_the_review_really_stops(chat: Chat) -> None:
    to_review(chat)
    chat.choose("edit_fit")
    chat.choose("conflicting_advice")  # untick: no strong reason left
    chat.choose("done")
    for answer in ("yes", "no", "no", "yes", "yes"):
        chat.choose(answer)
    reply = chat.choose("treatment")
    assert "probably not the right step now" in reply
    reply = chat.choose("stop")
    assert "Your answers are kept" in reply
    reply = chat.say("/start")
    assert "Continue anyway" in chat.buttons
    reply = chat.choose("continue")
    assert "Please check everything" in reply


def test_back_from_the_readiness_summary_shows_the_last_checklist_item(chat: Chat) -> None:
    to_review(chat)
    chat.say("/back")  # from the review to the readiness summary
    reply = chat.say("/back")
    assert "Records, item 8 of 8" in reply
    assert chat.buttons[:1] == ["Send it now"]
