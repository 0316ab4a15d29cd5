"""The coordinators' loop at the console and the CLI: submit, claim, request items, the
patient sends them, ready, sent, the opinion delivered, a follow-up question; and the rules:
who may act, which moves are allowed, what the patient reads at each step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from bot.app import App
from bot.cli import main
from bot.config import Settings
from storage.models import CaseEvent, CoordinatorAction
from tests.support.console import Chat, to_review

Queue = Callable[..., int]  # `huizhen queue …`, the `cli` fixture


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Queue:
    """`huizhen queue …` on the same database as the chat, as an operator would run it."""
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COORDINATOR_IDS", "900")

    def run(*args: str) -> int:
        return main(["queue", *args])

    return run


def submitted(chat: Chat, app: App) -> str:
    to_review(chat)
    chat.press("Submit the case")
    return app.queue.list()[0].reference


def deliver(chat: Chat) -> str:
    """What reaches the patient's screen from work done elsewhere (the CLI)."""
    return chat.say("/status")


def test_the_whole_loop_from_submission_to_a_follow_up_question(
    chat: Chat,
    app: App,
    cli: Queue,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = submitted(chat, app)
    assert cli("claim", reference, "--as", "900") == 0
    assert "A coordinator is now reviewing your case" in deliver(chat)

    assert (
        cli("request", reference, "imaging", "--note", "The CT from May, please.", "--as", "900")
        == 0
    )
    screen = deliver(chat)
    assert f"For your case {reference}, the coordinator needs a few more records:" in screen
    assert "Scans as original files" in screen and "我需要" in screen
    assert "A note from your coordinator: The CT from May, please." in screen
    assert "Still needed: Scans as original files" in screen

    letter = tmp_path / "ct-report.pdf"
    letter.write_bytes(b"%PDF-1.4 radiology report")
    reply = chat.say(str(letter))
    assert "Which part of the checklist is ct-report.pdf?" in reply
    reply = chat.press("Radiology reports")
    assert "ct-report.pdf is now under" in reply
    stored = [
        d
        for d in app.documents.for_case(app.queue.list()[0].id)
        if d.original_name == "ct-report.pdf"
    ]
    assert [d.item for d in stored] == ["radiology_reports"]

    assert cli("status", reference, "ready_to_send", "--as", "900") == 0
    assert "has what it needs" in deliver(chat)
    assert cli("status", reference, "sent_to_specialist", "--as", "900") == 0
    screen = deliver(chat)
    assert "sent to a specialist team in China" in screen and "not a promise" in screen

    opinion = tmp_path / "opinion-zh.pdf"
    opinion.write_bytes(b"%PDF-1.4 specialist opinion")
    english = tmp_path / "opinion-en.pdf"
    english.write_bytes(b"%PDF-1.4 translated opinion")
    assert (
        cli("opinion", reference, str(opinion), "--translation", str(english), "--as", "900") == 0
    )
    screen = deliver(chat)
    assert "It is one expert's view" in screen and "your own doctors" in screen
    saved = [
        Path(line.split("open: ")[1].rstrip(")"))
        for line in screen.splitlines()
        if "saved for you to open" in line
    ]
    assert sorted(p.read_bytes() for p in saved) == sorted(
        [opinion.read_bytes(), english.read_bytes()]
    )
    assert "you can ask up to 3 follow-up questions" in screen

    chat.press("Ask a question")
    reply = chat.say("Does the opinion change the timing of surgery?")
    assert "Your question is with the coordinator" in reply and "You can ask 2 more." in reply
    case = app.queue.list()[0]
    assert case.status == "in_review"
    capsys.readouterr()
    assert cli("show", reference) == 0
    shown = capsys.readouterr().out
    assert "Does the opinion change the timing of surgery?" in shown
    with Session(app.engine) as session:
        events = session.exec(select(CaseEvent).order_by(col(CaseEvent.id))).all()
    moves = [(e.from_status, e.to_status) for e in events if e.to_status]
    assert moves == [
        ("submitted", "in_review"),
        ("in_review", "waiting_for_patient"),
        ("waiting_for_patient", "ready_to_send"),
        ("ready_to_send", "sent_to_specialist"),
        ("sent_to_specialist", "opinion_received"),
        ("opinion_received", "opinion_delivered"),
        ("opinion_delivered", "in_review"),
    ]
    assert {e.actor for e in events} == {"cli:900", "patient"}


def test_only_listed_coordinators_act_and_impossible_moves_are_refused(
    chat: Chat,
    app: App,
    cli: Queue,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = submitted(chat, app)
    assert cli("claim", reference, "--as", "777") == 1
    assert "Only coordinators can act on cases." in capsys.readouterr().err
    assert cli("status", reference, "sent_to_specialist", "--as", "900") == 1
    assert "cannot go from submitted to sent_to_specialist" in capsys.readouterr().err
    assert cli("request", reference, "imaging", "--as", "900") == 1
    assert "Claim the case before requesting items." in capsys.readouterr().err
    assert cli("show", "HZ-0000-0000") == 1
    with Session(app.engine) as session:
        attempts = session.exec(select(CoordinatorAction)).all()
    assert [(a.actor, a.allowed) for a in attempts][:1] == [("cli:777", False)]
    assert app.queue.list()[0].status == "submitted"


def test_a_declined_case_is_told_kindly_with_the_reason(chat: Chat, app: App, cli: Queue) -> None:
    reference = submitted(chat, app)
    assert cli("status", reference, "declined", "--reason", "needs_in_person", "--as", "900") == 0
    screen = deliver(chat)
    assert f"we cannot take your case {reference} further" in screen
    assert "an in-person evaluation would be needed" in screen
    assert "keep talking with your own doctors" in screen


def test_reminders_go_out_when_due_and_never_twice(chat: Chat, app: App, cli: Queue) -> None:
    from datetime import timedelta

    reference = submitted(chat, app)
    cli("claim", reference, "--as", "900")
    cli("request", reference, "pathology_report", "--as", "900")
    deliver(chat)
    assert app.casework.remind(reminder_days=3, max_reminders=2) == 0  # not due yet
    later = app.pipeline.clock() + timedelta(days=3, hours=1)
    app.casework.clock = lambda: later
    assert app.casework.remind(reminder_days=3, max_reminders=2) == 1
    assert app.casework.remind(reminder_days=3, max_reminders=2) == 0  # once per due date
    assert "A gentle reminder about your case" in deliver(chat)
    # Waiting on the patient is given longer (3 × IDLE_DAYS) before coordinators hear.
    assert app.casework.surface_idle(idle_days=2) == []
    assert app.casework.surface_idle(idle_days=1) == [reference]
    assert app.casework.surface_idle(idle_days=1) == []  # told once per status


def test_an_export_is_written_by_the_cli_and_recorded(
    chat: Chat,
    app: App,
    cli: Queue,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil
    import subprocess
    import zipfile

    reference = submitted(chat, app)
    assert cli("export", reference, "--out", str(tmp_path / "out"), "--as", "900") == 0
    written = Path(capsys.readouterr().out.strip().split("written to ")[1])
    with zipfile.ZipFile(written) as package:
        names = package.namelist()
        assert {"summary.pdf", "summary.html", "case.json"} <= set(names)
        (tmp_path / "summary.pdf").write_bytes(package.read("summary.pdf"))
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", str(tmp_path / "summary.pdf"), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "基本信息" in text and "会诊目的" in text
        assert "Basic information" in text
    events = app.casework.events(app.queue.list()[0].id)
    assert [(e.kind, e.actor) for e in events if e.kind == "export"] == [("export", "cli:900")]


def test_terminal_escapes_in_a_patients_words_reach_the_cli_only_as_visible_text(
    chat: Chat,
    app: App,
    cli: Queue,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ESC ] 0 ; title BEL in a file name, a note or a follow-up would retitle (or worse) the
    coordinator's terminal, and U+202E would make a line read backwards: shown, never obeyed."""
    title = "\x1b]0;pwned\x07"
    to_review(chat, diagnosis=f"Disc herniation {title}")
    chat.press("Submit the case")
    reference = app.queue.list()[0].reference
    assert cli("claim", reference, "--as", "900") == 0
    assert cli("request", reference, "imaging", "--note", f"CT {title}", "--as", "900") == 0
    deliver(chat)
    letter = tmp_path / f"scan{title}\u202efdp.exe"
    letter.write_bytes(b"%PDF-1.4 radiology report")
    chat.say(str(letter))
    note = f"checked\x1b[2J\r\u2066 {title}"
    assert cli("status", reference, "ready_to_send", "--note", note, "--as", "900") == 0
    capsys.readouterr()

    assert cli("show", reference, "--as", "900") == 0
    assert cli("list") == 0
    assert main(["audit", "--case", reference]) == 0
    out = capsys.readouterr()
    for hidden in ("\x1b", "\x07", "\r", "\u202e", "\u2066"):
        assert hidden not in out.out + out.err
    assert "scan\\x1b]0;pwned\\x07\\u202efdp.exe" in out.out
    assert '"checked\\x1b[2J\\x0d\\u2066 \\x1b]0;pwned\\x07"' in out.out
    assert "\nDocuments:\n" in out.out and "\nHistory:\n" in out.out  # the layout stays


def delivered(chat: Chat, app: App, cli: Queue, tmp_path: Path) -> str:
    """A submitted case taken through to its delivered opinion, by the CLI."""
    reference = submitted(chat, app)
    for args in (("claim", reference), ("status", reference, "ready_to_send")):
        assert cli(*args, "--as", "900") == 0
    assert cli("status", reference, "sent_to_specialist", "--as", "900") == 0
    opinion = tmp_path / "opinion-zh.pdf"
    opinion.write_bytes(b"%PDF-1.4 specialist opinion")
    assert cli("opinion", reference, str(opinion), "--as", "900") == 0
    assert "you can ask up to 3 follow-up questions" in deliver(chat)
    return reference


def test_a_follow_up_question_on_a_delivered_opinion_returns_the_case_to_review(
    chat: Chat, app: App, cli: Queue, tmp_path: Path
) -> None:
    reference = delivered(chat, app, cli, tmp_path)
    chat.press("Ask a question")
    chat.say("Is the operation urgent?")
    case = app.queue.list()[0]
    assert case.status == "in_review"
    assert "A coordinator is reviewing it." in deliver(chat)
    events = app.casework.events(case.id)
    asked = [e for e in events if e.kind == "follow_up"]
    assert [(e.from_status, e.to_status, e.note) for e in asked] == [
        ("opinion_delivered", "in_review", "Is the operation urgent?")
    ]
    # The coordinator answers from review, as from any other case in it.
    assert cli("status", reference, "ready_to_send", "--as", "900") == 0


def test_a_follow_up_on_a_case_declined_since_is_kept_but_does_not_reopen_it(
    chat: Chat, app: App, cli: Queue, tmp_path: Path
) -> None:
    """The table lets a follow-up move a case only from a delivered opinion or a closed case:
    asked about a case a coordinator has since declined, the question reaches them, and the
    case stays declined, for the coordinators and in the patient's /status alike."""
    reference = delivered(chat, app, cli, tmp_path)
    chat.press("Ask a question")
    assert cli("status", reference, "in_review", "--as", "900") == 0
    assert cli("status", reference, "declined", "--reason", "other", "--as", "900") == 0
    reply = chat.say("Could another specialist look at it?")
    assert "Your question is with the coordinator" in reply
    case = app.queue.list()[0]
    assert case.status == "declined"
    screen = deliver(chat)
    assert "Not taken forward." in screen and "reviewing" not in screen
    asked = [e for e in app.casework.events(case.id) if e.kind == "follow_up"]
    assert [(e.from_status, e.to_status) for e in asked] == [("declined", "declined")]
