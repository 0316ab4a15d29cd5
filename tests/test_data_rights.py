"""A patient's rights over their data: withdraw consent, get a copy, erase everything; the
retention rules; and the append-only audit log that outlives an erasure."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.app import App
from bot.channels.telegram_runtime import TelegramChannel
from bot.cli import main
from bot.config import Settings
from conversations.state import ConversationKey
from conversations.steps.screening import HEALTH_CONSENT_VERSION
from handlers.casework.operations import Actor, CaseworkRefused
from handlers.privacy.retention import RetentionReport
from tests.support import run
from tests.support.console import Chat, consent, make_chat
from tests.support.data_rights import DIAGNOSIS, LETTER, LETTER_NAME, _submitted_case_with_a_letter
from tests.support.telegram import (
    COORDINATOR_CHAT,
    LIBRARIES,
    Patient,
    telegram_settings,
    texts,
    through_to_records,
)
from tests.support.telegram import bot as telegram_bot
from tests.telegram_fake import FakeBotApi

# Values only this patient gave: none may survive an erasure anywhere in the data folder.
OPERATOR = Actor("operator", "cli")


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """`huizhen …` commands run on the same database and folder as the chat."""
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)


def _rows(app: App, table: str) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


def test_export_sends_one_zip_with_the_answers_the_case_and_the_files(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    _submitted_case_with_a_letter(chat, tmp_path)
    reference = app.queue.list()[0].reference
    reply = chat.say("/export")
    assert "a copy of everything" in reply
    assert chat.buttons == ["Yes, send me a copy", "Cancel"]
    reply = chat.press("Yes, send me a copy")
    assert "It will arrive here as one zip file" in reply
    assert "Here is your copy" in reply
    [path] = re.findall(r"saved for you to open: (\S+\.zip)", reply)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        conversation = json.loads(archive.read("conversation.json"))
        case = json.loads(archive.read(f"cases/{reference}/case.json"))
        consents = json.loads(archive.read("consents.json"))["consents"]
        [letter] = [name for name in names if name.endswith(LETTER_NAME)]
        assert archive.read(letter) == LETTER
    assert conversation["draft"]["diagnosis"] == DIAGNOSIS
    assert case["reference"] == reference
    assert {c["scope"] for c in consents} == {"health_data", "transfer_to_china"}
    assert f"cases/{reference}/summary.html" in names
    entries = app.pipeline.store.audit.entries()
    assert [e.action for e in entries if e.action.startswith("export")] == [
        "export_requested",
        "export_sent",
    ]


def test_cancelling_an_export_sends_nothing(chat: Chat, app: App) -> None:
    consent(chat)
    chat.say("/export")
    reply = chat.press("Cancel")
    assert "zip" not in reply
    assert _rows(app, "job") == 0


def test_withdrawing_consent_stops_processing_and_the_coordinators_work(
    cli: None, chat: Chat, app: App, tmp_path: Path
) -> None:
    _submitted_case_with_a_letter(chat, tmp_path)
    reference = app.queue.list()[0].reference
    app.casework.claim(reference, OPERATOR)
    reply = chat.say("/withdraw")
    assert "Withdraw your consent?" in reply
    reply = chat.press("Yes, withdraw my consent")
    assert "You have withdrawn your consent" in reply
    assert "/delete" in reply and "/export" in reply
    assert app.queue.list()[0].status == "withdrawn"
    with pytest.raises(CaseworkRefused):
        app.casework.move(reference, "ready_to_send", OPERATOR)
    code = main(["queue", "export", reference, "--out", str(tmp_path)])
    assert code == 1
    with app.engine.connect() as conn:
        withdrawn = conn.execute(text("SELECT withdrawn_at FROM consent_record")).scalars().all()
    assert len(withdrawn) == 2 and all(withdrawn)
    # Nothing more is kept: a file sent now is refused.
    second = tmp_path / "scan.pdf"
    second.write_bytes(b"%PDF-1.4 another")
    reply = chat.say(str(second))
    assert "I can't keep files" in reply
    reply = chat.say("/status")
    assert "Stopped: you withdrew your consent." in reply
    # Consent can be given again.
    chat.say("/start")
    reply = chat.press("No, not an emergency")
    assert "Continue" in chat.buttons


def test_withdrawing_without_consent_says_there_is_nothing_to_withdraw(chat: Chat) -> None:
    chat.say("/start")
    reply = chat.say("/withdraw")
    assert "nothing to withdraw" in reply
    assert "Yes, withdraw my consent" not in chat.buttons


def _every_byte_in(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def test_delete_erases_every_trace_and_leaves_a_pseudonymous_audit_entry(
    cli: None,
    chat: Chat,
    app: App,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = make_chat(app, user="bob")
    consent(other)
    other.press("For me")
    _submitted_case_with_a_letter(chat, tmp_path)
    reference = app.queue.list()[0].reference
    app.casework.claim(reference, OPERATOR)
    assert _letter_stored(app)
    if app.engine.dialect.name == "sqlite":  # what the scan below looks for is there now
        before = _every_byte_in(settings.data_dir)
        assert DIAGNOSIS.encode() in before and LETTER_NAME.encode() in before
    reply = chat.say("/delete")
    assert "This can't be undone" in reply
    assert chat.buttons == ["Yes, delete everything", "No, keep my data"]
    reply = chat.press("Yes, delete everything")
    # Replies not yet delivered are erased too; the last word is that it is done.
    assert "Everything you gave me is now erased" in reply

    for table in ("case", "case_event", "document", "job", "upload_token", "coordinator_action"):
        assert _rows(app, table) == 0, table
    assert app.queue.list() == []
    with app.engine.connect() as conn:
        users = conn.execute(text("SELECT user_key FROM conversation")).scalars().all()
        consent_users = set(conn.execute(text("SELECT user_key FROM consent_record")).scalars())
    assert users == ["bob"] and consent_users == {"bob"}
    assert not _letter_stored(app)
    if app.engine.dialect.name == "sqlite":
        everything = _every_byte_in(settings.data_dir)
        for planted in (DIAGNOSIS.encode(), LETTER_NAME.encode(), b"UNIQUE-LETTER-CONTENT"):
            assert planted not in everything, planted
    assert main(["audit"]) == 0
    shown = capsys.readouterr().out
    assert "erased" in shown and reference in shown and "person:" in shown
    assert DIAGNOSIS not in shown and "alice" not in shown
    # A new message starts afresh.
    reply = chat.say("hello")
    assert "emergency" in reply.lower()
    assert main(["audit", "--verify"]) == 0


def _letter_stored(app: App) -> bool:
    import hashlib

    return app.pipeline.files.exists(hashlib.sha256(LETTER).hexdigest())


def test_an_erasure_keeps_a_file_another_patient_also_sent(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    _submitted_case_with_a_letter(chat, tmp_path)
    bob = make_chat(app, user="bob")
    _submitted_case_with_a_letter(bob, tmp_path)
    chat.say("/delete")
    chat.press("Yes, delete everything")
    assert _letter_stored(app)
    [remaining] = app.queue.list()
    assert remaining.user_key == "bob"


def test_the_audit_log_records_views_exports_and_changes_and_refuses_edits(
    cli: None, chat: Chat, app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _submitted_case_with_a_letter(chat, tmp_path)
    reference = app.queue.list()[0].reference
    assert main(["queue", "claim", reference, "--as", "anna"]) == 0
    assert main(["queue", "show", reference, "--as", "anna"]) == 0
    assert main(["queue", "export", reference, "--out", str(tmp_path), "--as", "anna"]) == 0
    capsys.readouterr()
    assert main(["audit", "--case", reference]) == 0
    lines = capsys.readouterr().out.splitlines()
    actions = [line.split()[3] for line in lines]
    assert actions == ["status", "status", "view", "export"]
    assert "cli:anna" in lines[1] and '"to": "in_review"' in lines[1]
    with pytest.raises(DBAPIError), app.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entry SET actor = 'someone else'"))
    with pytest.raises(DBAPIError), app.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry"))
    assert main(["audit", "--verify"]) == 0
    assert "intact" in capsys.readouterr().out


def test_a_forged_audit_entry_breaks_the_chain(
    cli: None, chat: Chat, app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    consent(chat)
    with app.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_entry (at, actor, action, subject, details_json, "
                "previous_hash, entry_hash) VALUES (:at, 'x', 'view', 'HZ-1', '{}', 'a', 'b')"
            ),
            {"at": datetime.now(UTC)},
        )
    assert main(["audit", "--verify"]) == 1
    assert "was altered" in capsys.readouterr().out


def _move_clock(app: App, days: int) -> None:
    later = datetime.now(UTC) + timedelta(days=days)
    app.retention.clock = lambda: later
    app.pipeline.clock = lambda: later
    app.export.clock = lambda: later
    app.erasure.clock = lambda: later


def test_an_abandoned_draft_is_warned_about_then_erased(chat: Chat, app: App) -> None:
    consent(chat)
    chat.press("For me")
    _move_clock(app, 80)
    report = app.retention.run()
    assert len(report.warned) == 1 and not report.erased
    assert app.retention.run().warned == []  # warned once
    _move_clock(app, 81)
    reply = chat.say("/status")  # delivers what waits, then answers
    assert "I will erase it, with everything you sent" in reply
    _move_clock(app, 95)
    # The patient wrote after the warning: the case is kept, and warned about afresh only
    # once it has been quiet long enough again.
    assert app.retention.run() == RetentionReport()
    _move_clock(app, 200)
    assert len(app.retention.run().warned) == 1
    _move_clock(app, 215)
    report = app.retention.run()
    assert len(report.erased) == 1
    assert _rows(app, "conversation") == 0


def test_a_draft_the_patient_returned_to_is_kept(chat: Chat, app: App) -> None:
    consent(chat)
    _move_clock(app, 80)
    app.retention.run()
    _move_clock(app, 81)
    chat.say("/status")  # the patient is back
    _move_clock(app, 95)
    report = app.retention.run()
    assert report.erased == []


def test_cases_closed_long_ago_are_erased(chat: Chat, app: App, tmp_path: Path) -> None:
    _submitted_case_with_a_letter(chat, tmp_path)
    reference = app.queue.list()[0].reference
    app.casework.claim(reference, OPERATOR)
    app.casework.move(reference, "declined", OPERATOR, reason="outside_scope")
    _move_clock(app, 365)
    assert app.retention.run().erased == []
    _move_clock(app, 800)
    assert len(app.retention.run().erased) == 1
    assert app.queue.list() == []
    assert not _letter_stored(app)


@pytest.mark.parametrize("library", LIBRARIES)
def test_over_telegram_a_copy_arrives_as_a_document_and_an_erased_case_leaves_its_card(
    tmp_path: Path, library: str
) -> None:
    from bot.config import load_settings

    base = load_settings({"DATA_DIR": str(tmp_path / "data")})

    async def scenario() -> None:
        async with FakeBotApi() as fake:
            fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
            async with telegram_bot(telegram_settings(base, fake, library)) as channel:
                patient = Patient(fake, 601)
                await through_to_records(patient, diagnosis=DIAGNOSIS)
                await patient.press("Send it now")
                await patient.upload(LETTER_NAME, LETTER)
                await fake.wait_for(lambda: bool(channel.app.documents.for_case(_draft(channel))))
                await patient.press("Done")
                while "Send it now" in str(patient.question().buttons):
                    await patient.press("I'll get it later")
                await patient.press("Continue to review")
                await patient.press("Submit the case")
                [card] = await fake.wait_for_sent(COORDINATOR_CHAT, 1)
                reference = channel.app.queue.list()[0].reference

                await patient.command("/export")
                await patient.press("Yes, send me a copy")
                await fake.wait_for(lambda: any(s.method == "sendDocument" for s in fake.sent(601)))
                [copy] = [s for s in fake.sent(601) if s.method == "sendDocument"]
                assert copy.file is not None and (copy.file.file_name or "").endswith(".zip")
                with zipfile.ZipFile(io.BytesIO(copy.file.data)) as archive:
                    assert any(name.endswith(LETTER_NAME) for name in archive.namelist())

                await patient.command("/delete")
                await patient.press("Yes, delete everything")
                await fake.wait_for(lambda: "now erased" in texts(fake.sent(601)[-1:]), timeout=10)
                assert channel.app.queue.list() == []
                # The card in the coordinators' chat no longer shows the case.
                await fake.wait_for(
                    lambda: (
                        "was erased"
                        in (fake.message(COORDINATOR_CHAT, card.message_id) or {}).get("text", "")
                    )
                )
                shown = (fake.message(COORDINATOR_CHAT, card.message_id) or {}).get("text", "")
                assert reference in shown and "Readiness" not in shown

    run(scenario)


def _draft(channel: TelegramChannel) -> str:
    with channel.app.engine.connect() as conn:
        raw = conn.execute(text("SELECT state_json FROM conversation")).scalar_one()
    return str(json.loads(raw)["draft"]["case_id"])


def test_on_wechat_the_copy_comes_as_a_private_download_link(tmp_path: Path) -> None:
    """An Official Account cannot send files: the copy is served by the web app, once, to
    whoever holds the link, until it expires or the patient is erased."""
    import socket

    import aiohttp
    from aiohttp import web

    from bot.config import load_settings
    from bot.download_page import DownloadPage
    from bot.web import make_web_app
    from tests.support import run as run_wechat
    from tests.support.wechat import wechat

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = load_settings({"DATA_DIR": str(tmp_path / "data")})

    async def scenario() -> None:
        public = f"http://127.0.0.1:{port}"
        async with wechat(base, PUBLIC_BASE_URL=public) as world:
            site_app = make_web_app(None, downloads=DownloadPage(world.app.export))
            runner = web.AppRunner(site_app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                follower = world.follower("o-export-1")
                await follower.consent()
                await follower.press("For me")
                reply = await follower.say("/export")
                assert "one zip file" in reply
                reply = await follower.press("Yes, send me a copy")
                texts_sent = await world.api.wait_for(
                    lambda: [t for t in world.api.texts_to("o-export-1") if "/x/" in t]
                )
                [link] = re.findall(r"http://\S+/x/\S+", texts_sent[0])
                async with aiohttp.ClientSession() as http:
                    # A link previewer's GET and HEAD get a page with a button, never the copy,
                    # and are not taken for a download.
                    preview = {"User-Agent": "TelegramBot (like TwitterBot)"}
                    async with http.head(link, headers=preview) as response:
                        assert response.status == 200
                        assert response.headers["Content-Type"].startswith("text/html")
                    async with http.get(link, headers=preview) as response:
                        assert response.status == 200
                        assert response.headers["Content-Type"].startswith("text/html")
                        page = await response.text()
                        assert '<form method="post">' in page and "Download my copy" in page
                        assert "form-action 'self'" in response.headers["Content-Security-Policy"]
                        assert response.headers["X-Frame-Options"] == "DENY"
                    actions = [entry.action for entry in world.app.export.audit.entries()]
                    assert "export_downloaded" not in actions
                    async with http.post(link) as response:
                        assert response.status == 200
                        assert response.headers["Content-Type"] == "application/zip"
                        body = await response.read()
                    with zipfile.ZipFile(io.BytesIO(body)) as archive:
                        conversation = json.loads(archive.read("conversation.json"))
                    assert conversation["draft"]["for_whom"] == "self"
                    # Not an upload link, and nothing else is served at it.
                    token = link.rsplit("/", 1)[1]
                    for method in (http.get, http.post):
                        async with method(f"{public}/x/{token}x") as response:
                            assert response.status == 404
                    await follower.say("/delete")
                    await follower.press("Yes, delete everything")
                    await world.api.wait_for(
                        lambda: [t for t in world.api.texts_to("o-export-1") if "erased" in t]
                    )
                    for method in (http.get, http.post):
                        async with method(link) as response:
                            assert response.status == 404
                actions = [entry.action for entry in world.app.export.audit.entries()]
                assert actions.count("export_downloaded") == 1 and "erased" in actions
            finally:
                await runner.cleanup()

    run_wechat(scenario)


def test_a_consent_given_to_an_older_text_is_asked_again_before_anything_else(
    chat: Chat, app: App
) -> None:
    consent(chat)
    chat.press("For me")
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.consent_health is not None
    state.consent_health.version = "health-2020-01"  # as if the text changed since
    with app.engine.begin() as conn:
        conn.execute(
            text("UPDATE conversation SET state_json = :s"), {"s": state.model_dump_json()}
        )
    reply = chat.press(chat.buttons[0])
    assert "What we ask your consent for has changed" in reply
    assert "Do you agree that Huizhen may process" in reply
    assert chat.buttons == ["I agree", "I don't agree"]
    reply = chat.press("I agree")
    # Only the consent whose text changed is asked again; then the patient carries on.
    assert "What we ask your consent for has changed" not in reply
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.consent_health is not None
    assert state.consent_health.version == HEALTH_CONSENT_VERSION
    with app.engine.connect() as conn:
        versions = conn.execute(
            text("SELECT version FROM consent_record WHERE scope = 'health_data'")
        ).scalars()
        assert sorted(versions) == sorted([HEALTH_CONSENT_VERSION] * 2)


def test_not_agreeing_to_the_new_text_withdraws_consent(chat: Chat, app: App) -> None:
    consent(chat)
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.consent_transfer is not None
    state.consent_transfer.version = "transfer-2020-01"
    with app.engine.begin() as conn:
        conn.execute(
            text("UPDATE conversation SET state_json = :s"), {"s": state.model_dump_json()}
        )
    reply = chat.say("hello")
    assert "transferred to China" in reply
    reply = chat.press("I don't agree")
    assert "You have withdrawn your consent" in reply
