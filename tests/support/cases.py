"""Submitted and constructed cases for the summary, PDF and package tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.app import App
from conversations.state import IntakeDraft, Question, RecordItem, TimelineEntry
from storage.documents import DocumentRow
from storage.models import Case
from tests.dicom_factory import write_series, zip_files
from tests.support.console import Chat, about_patient, after_diagnosis, consent, through_fit

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
RELATION = "мой дядя Иван"
DIAGNOSIS = "Рак лёгкого 3 см; سرطان الرئة المبكر; 肺腺癌"
OWN_QUESTION = "Нужна ли операция сейчас или сначала химиотерапия?"
TIMELINE = ("2026-03: кашель и потеря веса", "2026-05-10: КТ грудной клетки, узел 3 см")


@dataclass
class SubmittedCase:
    case: Case
    documents: list[DocumentRow]
    letter: Path
    scans: list[Path]


def submit_oncology_case(chat: Chat, app: App, tmp_path: Path) -> SubmittedCase:
    """A relative prepares a lung cancer case in the chat: free text in Russian, Arabic and
    Chinese, a clinic letter, and a zipped CT study sent as a hospital CD holds it."""
    consent(chat)
    chat.choose("family")
    chat.say(RELATION)
    about_patient(chat)
    through_fit(chat, ("new_diagnosis",), ("no", "yes", "yes", "no", "no"))
    chat.choose("review")
    chat.choose("continue")
    chat.choose("oncology")
    chat.choose("solid_other")
    chat.say(DIAGNOSIS)
    after_diagnosis(chat)
    chat.choose(chat.option_ids[0])
    chat.choose(chat.option_ids[0])
    chat.say(OWN_QUESTION)
    chat.choose("done")
    for line in TIMELINE:
        chat.say(line)
    chat.choose("done")

    letter = tmp_path / "clinic-letter.pdf"
    letter.write_bytes(b"%PDF-1.4\n% a letter from the clinic\n")
    chat.choose("upload")  # diagnosis reports and clinic letters
    chat.say(str(letter))
    chat.choose("done")
    chat.choose("upload")  # scans as original files
    scans = write_series(
        tmp_path / "cd" / "DICOM", count=6, study_date=date(2026, 5, 10), seed="summary"
    )
    reply = chat.say(str(zip_files(tmp_path / "ct.zip", scans, root=tmp_path / "cd")))
    assert "Is this the scan you meant?" in reply
    chat.press("Yes, that's it")
    chat.choose("done")
    while chat.option_ids[:1] == ["upload"]:
        chat.choose("later")
    chat.choose("continue")
    chat.choose("submit")
    case = app.queue.list()[0]
    return SubmittedCase(case, app.documents.for_case(case.id), letter, scans)


def constructed_case(**changes: object) -> Case:
    draft = IntakeDraft(
        case_id="case-1",
        for_whom="self",
        fit_reasons=["conflicting_advice"],
        situation={"treatment_started": "yes", "goal": "treatment"},
        area="cardiovascular",
        diagnosis="Стеноз аортального клапана",
        questions=[Question(text="Можно ли обойтись без операции на открытом сердце?")],
        timeline=[TimelineEntry(when="2025", sort_key="2025-00-00", what="одышка при ходьбе")],
        records={"labs": RecordItem(status="not_applicable")},
    ).model_copy(update=changes)
    return Case(
        id="case-1",
        reference="HZ-2026-TEST",
        channel="console",
        user_key="u",
        chat_key="u",
        status="in_review",
        locale="ru",
        area="cardiovascular",
        verdict="possible_fit",
        readiness=0,
        answers_json=draft.model_dump_json(),
        submitted_at=NOW,
        updated_at=NOW,
    )


def document(item: str, name: str, kind: str = "pdf", **fields: Any) -> DocumentRow:
    return DocumentRow(
        file_id=f"f-{item}-{name}",
        case_id="case-1",
        item=item,
        sha256="0" * 64,
        size=10,
        original_name=name,
        stored_at=NOW,
        kind=kind,
        **fields,
    )
