"""Shared by several test files (moved from test_data_rights.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.console import Chat, to_review

LETTER_NAME = "qwertyletter-8842.pdf"


LETTER = b"%PDF-1.4 clinic letter UNIQUE-LETTER-CONTENT-5521 " + b"x" * 4000


def _submitted_case_with_a_letter(chat: Chat, tmp_path: Path) -> None:
    to_review(chat, DIAGNOSIS)
    chat.press("Change records")
    letter = tmp_path / LETTER_NAME
    letter.write_bytes(LETTER)
    chat.press("Send it now")
    chat.say(str(letter))
    chat.press("Done")
    while chat.buttons[:1] == ["Send it now"]:
        chat.press("I'll get it later")
    chat.press("Continue to review")
    chat.press("Submit the case")


DIAGNOSIS = "Zebrafinch osteoma of the left tibia 7731"
