"""The review card: change any part and come back to it; submit; start another case."""

from __future__ import annotations

from bot.app import App
from tests.support.console import (
    Chat,
    consent,
    to_review,
)


def test_editing_a_section_returns_to_the_review(chat: Chat) -> None:
    reply = to_review(chat)
    assert "Your case" in reply and "Please check everything" in reply
    reply = chat.press("Change questions")
    assert "What would you like the specialist to answer?" in reply
    chat.press("Remove a question")
    chat.press("Question 1")
    chat.say("Is fusion necessary at my age, or can physiotherapy come first?")
    reply = chat.press("Done")
    assert "Please check everything" in reply
    assert "3. Is fusion necessary at my age" in reply

    reply = chat.press("Change who it's for")
    assert "Who is this second opinion for?" in reply
    chat.press("For a family member or friend")
    reply = chat.press("My spouse or partner")
    assert "Please check everything" in reply
    assert "For a family member or friend: My spouse or partner" in reply

    chat.press("Change timeline")
    chat.say("2025-11-02: MRI of the lumbar spine")
    reply = chat.press("Done")
    assert "Please check everything" in reply
    assert reply.index("2025-09 — back pain") < reply.index("2025-11-02 — MRI")


def test_editing_records_walks_the_checklist_again_then_returns(chat: Chat, tmp_path) -> None:  # type: ignore[no-untyped-def]
    to_review(chat)
    reply = chat.press("Change records")
    assert "Records, item 1 of" in reply
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4 clinic letter")
    chat.press("Send it now")
    chat.say(str(letter))
    chat.press("Done")
    while chat.buttons[:1] == ["Send it now"]:
        chat.press("I'll get it later")
    reply = chat.transcript[-1]
    assert "Readiness of your records for review" in reply
    reply = chat.press("Continue to review")
    assert "Diagnosis reports and clinic letters: sent (1 file)" in reply


def test_after_submission_status_shows_the_reference_and_newcase_starts_again(
    chat: Chat, app: App
) -> None:
    to_review(chat)
    chat.press("Submit the case")
    reference = app.queue.list()[0].reference
    reply = chat.say("/status")
    assert f"Case {reference}, submitted on" in reply
    assert "A coordinator will look at it soon" in reply
    reply = chat.say("/back")
    assert "already submitted" in reply
    reply = chat.say("/newcase")
    assert "is anyone having sudden" in reply
    reply = chat.press("No, not an emergency")
    assert "Who is this second opinion for?" in reply
    assert f"Case {reference}" in chat.say("/status")
    assert len(app.queue.list()) == 1


def test_newcase_in_the_middle_of_a_case_asks_first(chat: Chat) -> None:
    consent(chat)
    chat.press("For me")
    reply = chat.say("/newcase")
    assert "has not been submitted" in reply
    reply = chat.press("No, keep my answers")
    assert "Choose all that apply" in reply


def test_stopping_while_changing_the_fit_from_the_review_really_stops(chat: Chat) -> None:
    to_review(chat)
    chat.press("Change reasons and situation")
    chat.press("Doctors disagree")  # untick: no strong reason left
    chat.press("Done")
    for answer in ("Yes", "No", "No", "Yes", "Yes"):
        chat.press(answer)
    reply = chat.press("Treatment in China")
    assert "probably not the right step now" in reply
    reply = chat.press("Stop here for now")
    assert "Your answers are kept" in reply
    reply = chat.say("/start")
    assert "Continue anyway" in chat.buttons
    reply = chat.press("Continue anyway")
    assert "Please check everything" in reply


def test_back_from_the_readiness_summary_shows_the_last_checklist_item(chat: Chat) -> None:
    to_review(chat)
    chat.say("/back")  # from the review to the readiness summary
    reply = chat.say("/back")
    assert "Records, item 8 of 8" in reply
    assert chat.buttons[:1] == ["Send it now"]
