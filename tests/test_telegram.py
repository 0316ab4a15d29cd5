"""One scenario suite, run against both Telegram adapters (python-telegram-bot and aiogram),
over a local fake of the Bot API that the real libraries call over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bot.app import build_app
from bot.config import Settings
from conversations.state import ConversationKey
from handlers.casework.operations import Actor
from handlers.updates import pipeline as pipeline_module
from storage.models import CoordinatorAction, UploadToken
from tests.dicom_factory import write_series, zip_files
from tests.support import run
from tests.support.telegram import (
    COORDINATOR,
    COORDINATOR_CHAT,
    STRANGER,
    WEBHOOK_SECRET,
    Patient,
    about_patient,
    bot,
    consent,
    documents,
    settle,
    telegram_settings,
    texts,
    through_to_records,
    webhook,
    webhook_settings,
)
from tests.telegram_fake import FakeBotApi

# The channel is what varies here; the databases have their own suites.
pytestmark = pytest.mark.databases("sqlite")


def test_a_complete_intake_reaches_the_coordinators_group(settings: Settings, library: str) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake:
            fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
            async with bot(telegram_settings(settings, fake, library)) as channel:
                patient = Patient(fake, 501)
                reply = await patient.command("/start", payload="clinic-42")
                assert "Hello, I'm Huizhen" in reply
                assert patient.question().buttons == [
                    ["No, not an emergency"],
                    ["Yes, or I'm not sure"],
                ]
                await through_to_records(patient)
                while "Send it now" in str(patient.question().buttons):
                    await patient.press("I'll get it later")
                await patient.press("Continue to review")
                reply = await patient.press("Submit the case")
                assert "Your case has been submitted" in reply
                case = channel.app.queue.list()[0]
                assert case.reference in reply

                cards = await fake.wait_for_sent(COORDINATOR_CHAT, 1)
                card = cards[0]
                assert case.reference in (card.plain_text or "")
                assert "Readiness" in (card.plain_text or "")
                assert "Pathology report" in (card.plain_text or "")
                assert card.buttons[0] == ["Claim / 认领"]
                assert card.buttons[1][0].startswith("Decline / ")
                assert "病例 " + case.reference in (card.plain_text or "")  # and in Chinese

                refused = fake.press(card, "Claim", user_id=STRANGER)
                fake.push_update(refused)
                await fake.wait_for(lambda: len(fake.callback_answers) >= 1)
                claim = fake.press(card, "Claim", user_id=COORDINATOR)
                fake.push_update(claim)
                await fake.wait_for(
                    lambda: (
                        "Claimed by: 900"
                        in (fake.message(COORDINATOR_CHAT, card.message_id) or {}).get("text", "")
                    )
                )
                answers = "\n".join(a.text or "" for a in fake.callback_answers)
                assert "Only coordinators can act on cases." in answers
                assert "只有协调员可以处理病例。" in answers
                assert "You have claimed this case." in answers
                with Session(channel.app.engine) as session:
                    actions = session.exec(select(CoordinatorAction)).all()
                assert [(a.actor, a.allowed) for a in actions] == [
                    ("chat:901", False),
                    ("chat:900", True),
                ]
                state = channel.app.pipeline.state_of(ConversationKey("telegram", "501"))
                assert state is not None and state.referral == "clinic-42"
                assert {c for c in fake.commands} >= {"", "en", "zh"}

    run(scenario)


def test_a_document_and_a_photo_are_stored(settings: Settings, library: str) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)) as channel:
            patient = Patient(fake, 502)
            await consent(patient)
            letter = b"%PDF-1.4 discharge letter"
            reply = await patient.upload("discharge.pdf", letter, caption="from May")
            assert "Received: discharge.pdf" in reply
            photo = fake.photo(502, b"\xff\xd8 a photo of a report", sizes=3)
            reply = texts(await patient.send(photo))
            assert "Received: photo-" in reply
            await fake.wait_for(lambda: len(documents(channel)) == 2)
            stored = {d.original_name: d.sha256 for d in documents(channel)}
            assert stored["discharge.pdf"] == hashlib.sha256(letter).hexdigest()
            largest = photo["message"]["photo"][-1]
            entry = fake.files[largest["file_id"]]
            photo_name = next(name for name in stored if name.startswith("photo-"))
            assert stored[photo_name] == hashlib.sha256(entry.data).hexdigest()
            assert any(a.action == "typing" for a in fake.chat_actions)

    run(scenario)


def test_an_album_of_five_files_is_acknowledged_once(settings: Settings, library: str) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)) as channel:
            patient = Patient(fake, 503)
            await consent(patient)
            before = len(fake.sent(503))
            for index in range(5):
                fake.push_update(
                    fake.document(
                        503,
                        f"scan-{index}.pdf",
                        f"page {index}".encode(),
                        "application/pdf",
                        media_group_id="album-1",
                    )
                )
            await fake.wait_for(lambda: len(documents(channel)) == 5, timeout=10)
            await settle(fake)
            replies = [r.plain_text or "" for r in fake.sent(503)[before:]]
            # One acknowledgement, one report of what the files are, one question at a time.
            acknowledged = [r for r in replies if "Received: scan-" in r]
            assert len(acknowledged) == 1
            assert all(f"Received: scan-{i}.pdf" in acknowledged[0] for i in range(5))
            checked = [r for r in replies if "I've checked what you sent" in r]
            assert len(checked) == 1
            assert all(f"scan-{i}.pdf" in checked[0] for i in range(5))
            assert replies[-1] == "Which part of the checklist is scan-0.pdf?"

    run(scenario)


def test_an_oversized_file_gets_a_kind_message(settings: Settings, library: str) -> None:
    async def scenario() -> None:
        public = {"PUBLIC_BASE_URL": "https://huizhen.example"}
        async with (
            FakeBotApi() as fake,
            bot(telegram_settings(settings, fake, library, **public)) as channel,
        ):
            patient = Patient(fake, 504)
            await consent(patient)
            reply = await patient.upload("ct-study.zip", b"PK", size_override=25 * 1024 * 1024)
            assert "ct-study.zip is too large to send in this chat" in reply
            assert "nothing of it was kept" in reply
            # A fresh upload link for this case, valid for a day; only its hash is stored.
            link = re.search(r"https://huizhen\.example/u/([\w-]+)", reply)
            assert link is not None and "valid for 24 hours" in reply
            # Telegram's preview fetcher must never open a private link: no text has a preview.
            [with_link] = [s for s in fake.sent(504) if link.group(0) in (s.text or "")]
            assert with_link.params["link_preview_options"] == {"is_disabled": True}
            texts_sent = [s for s in fake.sent() if s.method in ("sendMessage", "editMessageText")]
            assert all(s.params.get("link_preview_options") for s in texts_sent)
            grant = channel.app.upload_tokens.resolve(link.group(1), datetime.now(UTC))
            assert grant is not None and grant.chat_key == "504"
            with Session(channel.app.engine) as session:
                stored = session.exec(select(UploadToken)).one()
            assert (
                stored.token_hash != link.group(1) and link.group(1) not in stored.model_dump_json()
            )
            assert documents(channel) == []
            assert not fake.calls_of("getFile")

    run(scenario)


def test_a_stale_button_is_answered_and_the_current_question_shown(
    settings: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)):
            patient = Patient(fake, 505)
            await patient.command("/start")
            old_question = patient.question()
            await patient.press("No, not an emergency")
            answered = len(fake.callback_answers)
            reply = texts(await patient.send(fake.press(old_question, "Yes, or I'm not sure")))
            assert "That button belongs to an earlier question" in reply
            assert "Here is what I do" in reply
            assert len(fake.callback_answers) == answered + 1
            assert "China: 120" not in reply

    run(scenario)


def test_a_burst_of_429_answers_delays_but_loses_and_doubles_nothing(
    settings: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)):
            patient = Patient(fake, 506)
            fake.fail_next("sendMessage", times=3, status=429, retry_after=1)
            await patient.command("/start")
            await fake.wait_for_sent(506, 1, timeout=15)
            await patient.press("No, not an emergency")
            sent = [s.plain_text or "" for s in fake.sent(506)]
            assert len(sent) == 2
            assert sent[0].startswith("Hello, I'm Huizhen")
            assert sent[1].startswith("Here is what I do")
            refused = [c for c in fake.calls_of("sendMessage") if not c.ok]
            assert len(refused) == 3

    run(scenario)


def test_the_same_update_delivered_twice_has_one_effect(settings: Settings, library: str) -> None:
    """Telegram resends a webhook update it did not see acknowledged: same update_id."""

    async def scenario() -> None:
        async with FakeBotApi() as fake:
            config = webhook_settings(settings, fake, library)
            async with bot(config, polling=False) as channel, webhook(channel) as post:
                update = fake.command(507, "/start")
                assert await post(update, WEBHOOK_SECRET) == 200
                assert await post(update, WEBHOOK_SECRET) == 200
                await fake.wait_for_sent(507, 1)
                await settle(fake)
                assert len(fake.sent(507)) == 1

    run(scenario)


def test_a_restart_in_mid_conversation_resumes_the_step(settings: Settings, library: str) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake:
            config = telegram_settings(settings, fake, library)
            patient = Patient(fake, 508)
            async with bot(config):
                await consent(patient)
                await patient.press("For me")
                await about_patient(patient)
            async with bot(config):
                question = patient.question()
                reply = await patient.press("Doctors disagree")
                assert "✓ Doctors disagree" in str(patient.question().buttons)
                assert "Choose all that apply" in reply
                # A ticked option edits the question in place instead of sending it again.
                assert fake.records[-1].method == "editMessageText"
                assert fake.records[-1].message_id == question.message_id

    run(scenario)


def test_a_forged_webhook_is_refused_and_a_true_one_is_stored(
    settings: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake:
            config = webhook_settings(settings, fake, library)
            async with bot(config, polling=False) as channel, webhook(channel) as post:
                assert fake.webhook is not None
                assert fake.webhook.get("secret_token") == WEBHOOK_SECRET
                update = fake.command(509, "/start")
                assert await post(update, "wrong") == 403
                assert await post(update, "") == 403
                assert channel.app.pipeline.state_of(ConversationKey("telegram", "509")) is None
                assert fake.sent(509) == []
                assert await post(update, WEBHOOK_SECRET) == 200
                assert channel.app.pipeline.state_of(ConversationKey("telegram", "509"))
                await fake.wait_for_sent(509, 1)

    run(scenario)


def test_two_patients_at_once_keep_their_own_conversations(
    settings: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)):
            ann, li = Patient(fake, 510), Patient(fake, 511, language="zh-hans")
            fake.push_update(fake.command(510, "/start"))
            fake.push_update(fake.command(511, "/start", language_code="zh-hans"))
            await fake.wait_for_sent(510, 1)
            await fake.wait_for_sent(511, 1)
            fake.push_update(fake.press(ann.question(), "No, not an emergency"))
            fake.push_update(fake.press(li.question(), li.question().buttons[1][0]))
            await fake.wait_for_sent(510, 2)
            await fake.wait_for_sent(511, 2)
            await settle(fake)
            assert (fake.sent(510)[-1].plain_text or "").startswith("Here is what I do")
            chinese = fake.sent(511)[-1].plain_text or ""
            assert "120" in chinese and "Here is" not in chinese

    run(scenario)


def test_server_errors_are_retried_with_backoff_and_delivered_once(
    settings: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)):
            fake.fail_next("sendMessage", times=2, status=502)
            fake.push_update(fake.command(512, "/start"))
            sent = await fake.wait_for_sent(512, 1, timeout=15)
            await settle(fake, quiet=1.5)
            assert len(fake.sent(512)) == 1
            assert (sent[0].plain_text or "").startswith("Hello, I'm Huizhen")
            failed = [c for c in fake.calls_of("sendMessage") if not c.ok]
            assert len(failed) == 2

    run(scenario)


def test_huizhen_run_serves_telegram_until_stopped(settings: Settings) -> None:
    """The real entry point's wiring: settings -> adapter -> polling, web app and delivery."""
    import socket

    from bot.runner import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        async with FakeBotApi() as fake:
            config = telegram_settings(settings, fake, "ptb", WEB_PORT=str(port))
            app = build_app(config)
            stop = asyncio.Event()
            server = asyncio.create_task(serve(app, stop))
            try:
                fake.push_update(fake.command(513, "/start", language_code="ja"))
                sent = await fake.wait_for_sent(513, 1, timeout=15)
                assert "119" not in (sent[0].plain_text or "")  # a greeting, not an alarm
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{port}/healthz") as response,
                ):
                    assert response.status == 200
            finally:
                stop.set()
                await asyncio.wait_for(server, timeout=15)
                app.close()
            state = app.pipeline.state_of(ConversationKey("telegram", "513"))
            assert state is not None and state.locale == "ja"

    run(scenario)


def test_one_update_that_cannot_be_handled_does_not_block_the_others(
    settings: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)) as channel:
            broken = Patient(fake, 514)
            await broken.command("/start")
            # A damaged row (a real one, written to the real database) for this one patient.
            with Session(channel.app.engine) as session:
                session.exec(  # type: ignore[call-overload]
                    text("UPDATE conversation SET state_json = '{broken' WHERE user_key = '514'")
                )
                session.commit()
            fake.push_update(fake.text_message(514, "hello"))
            await fake.wait_for_sent(514, 2, timeout=15)
            fake.push_update(fake.command(515, "/start"))
            await fake.wait_for_sent(515, 1, timeout=15)
            assert "something went wrong on our side" in (fake.sent(514)[-1].plain_text or "")
            assert (fake.sent(515)[0].plain_text or "").startswith("Hello, I'm Huizhen")

    run(scenario)


def test_a_zipped_scan_is_checked_with_progress_and_its_preview_is_sent_as_a_photo(
    settings: Settings, library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Show progress from the first file on (a real batch waits two seconds first).
    monkeypatch.setattr(pipeline_module, "PROGRESS_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(pipeline_module, "PROGRESS_EVERY_SECONDS", 0.0)
    series = write_series(tmp_path / "cd" / "DICOM", count=8)
    archive = zip_files(tmp_path / "ct.zip", series, root=tmp_path / "cd").read_bytes()

    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)):
            patient = Patient(fake, 505)
            await through_to_records(patient)
            while "Scans as original files" not in (patient.question().plain_text or ""):
                await patient.press("I'll get it later")
            await patient.press("Send it now")
            before = len(fake.sent(505))
            fake.push_update(fake.document(505, "ct.zip", archive, "application/zip"))
            await fake.wait_for(lambda: any(s.method == "sendPhoto" for s in fake.sent(505)))
            await settle(fake)
            sent = fake.sent(505)[before:]
            photo = next(s for s in sent if s.method == "sendPhoto")
            assert photo.file is not None and photo.file.data.startswith(b"\x89PNG")
            assert "Is this the scan you meant? CT scan of the chest" in (photo.plain_text or "")
            assert photo.buttons == [["Yes, that's it"], ["No, that's not it"]]
            # One progress message, edited in place, ending with what was checked.
            progress = [s for s in sent if "Checking your files" in (s.plain_text or "")]
            assert progress and all(s.message_id == progress[0].message_id for s in progress)
            finished = fake.message(505, progress[0].message_id)
            assert finished is not None and finished["text"] == "Checked 8 files."
            assert any(s.method == "editMessageText" for s in progress)
            reply = await patient.press("Yes, that's it")
            assert "The scan is with your case" in reply

    run(scenario)


def test_coordinators_work_a_case_from_its_card_and_the_patient_follows(
    settings: Settings, library: str, tmp_path: Path
) -> None:
    """Claim, request an item on the card, the patient sends it, ready, sent, the opinion
    delivered, a follow-up question back in the coordinators' chat."""

    async def press_card(fake: FakeBotApi, label: str) -> str:
        card = fake.sent(COORDINATOR_CHAT)[0]
        current = fake.message(COORDINATOR_CHAT, card.message_id)
        assert current is not None
        before = len(fake.callback_answers)
        fake.push_update(fake.press(current, label, user_id=COORDINATOR))
        await fake.wait_for(lambda: len(fake.callback_answers) > before)
        await settle(fake)
        return str((fake.message(COORDINATOR_CHAT, card.message_id) or {}).get("text", ""))

    async def scenario() -> None:
        async with FakeBotApi() as fake:
            fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
            async with bot(telegram_settings(settings, fake, library)) as channel:
                patient = Patient(fake, 506)
                await through_to_records(patient)
                while "Send it now" in str(patient.question().buttons):
                    await patient.press("I'll get it later")
                await patient.press("Continue to review")
                await patient.press("Submit the case")
                await fake.wait_for_sent(COORDINATOR_CHAT, 1)

                text = await press_card(fake, "Claim")
                assert "Status: in review" in text
                await fake.wait_for(lambda: "now reviewing your case" in texts(fake.sent(506)))
                text = await press_card(fake, "Request items")
                text = await press_card(fake, "Pathology report")
                card = fake.message(COORDINATOR_CHAT, fake.sent(COORDINATOR_CHAT)[0].message_id)
                assert card is not None and "✓ Pathology report" in str(card["reply_markup"])
                before = len(fake.sent(506))
                text = await press_card(fake, "Send the request")
                assert "Status: waiting for the patient" in text
                assert "Requested: Pathology report" in text
                await fake.wait_for(lambda: len(fake.sent(506)) > before)
                asked = texts(fake.sent(506)[before:])
                assert "the coordinator needs a few more records" in asked
                assert "Pathology report" in asked

                await patient.upload("biopsy.pdf", b"%PDF-1.4 biopsy", caption=None)
                await fake.wait_for(
                    lambda: "new files from the patient: 1" in texts(fake.sent(COORDINATOR_CHAT))
                )
                await press_card(fake, "Ready to send")
                text = await press_card(fake, "Sent to specialist")
                assert "Status: sent to a specialist" in text

                opinion = tmp_path / "opinion.pdf"
                opinion.write_bytes(b"%PDF-1.4 the written opinion")
                reference = channel.app.queue.list()[0].reference
                operator = Actor("900", "cli")
                await asyncio.to_thread(
                    channel.app.casework.attach_opinion, reference, opinion, None, operator
                )
                await channel.deliver_now()
                await fake.wait_for(lambda: any(s.method == "sendDocument" for s in fake.sent(506)))
                await settle(fake)
                document = next(s for s in fake.sent(506) if s.method == "sendDocument")
                assert document.file is not None and document.file.data == opinion.read_bytes()
                assert "one expert's view" in texts(fake.sent(506))
                await patient.press("Ask a question")
                reply = await patient.say("Should I wait for surgery?")
                assert "Your question is with the coordinator" in reply
                await fake.wait_for(
                    lambda: "asked a follow-up question" in texts(fake.sent(COORDINATOR_CHAT))
                )
                card = fake.message(COORDINATOR_CHAT, fake.sent(COORDINATOR_CHAT)[0].message_id)
                assert card is not None and "Should I wait for surgery?" in card["text"]
                assert "Status: in review" in card["text"]

                # A translation of the patient's words, attached from the chat.
                before = len(fake.sent(COORDINATOR_CHAT))
                fake.push_update(
                    fake.command(
                        COORDINATOR,
                        "/translate",
                        payload=f"{reference} diagnosis 肝癌，4厘米，建议手术",
                        chat_id=COORDINATOR_CHAT,
                    )
                )
                await fake.wait_for(lambda: len(fake.sent(COORDINATOR_CHAT)) > before)
                assert f"Translation saved for {reference}." in texts(
                    fake.sent(COORDINATOR_CHAT)[before:]
                )
                translations = channel.app.casework.translations(channel.app.queue.list()[0].id)
                assert translations == {"diagnosis": "肝癌，4厘米，建议手术"}

    run(scenario)


def test_behind_a_local_bot_api_server_a_large_file_is_taken_from_the_shared_folder(
    settings: Settings, library: str, tmp_path: Path
) -> None:
    shared = tmp_path / "bot-api-files"
    shared.mkdir()

    async def scenario() -> None:
        async with (
            FakeBotApi(local_files=shared) as fake,
            bot(telegram_settings(settings, fake, library, TELEGRAM_LOCAL_MODE="yes")) as channel,
        ):
            patient = Patient(fake, 507)
            await consent(patient)
            letter = b"%PDF-1.4 a long discharge summary"
            reply = await patient.upload("summary.pdf", letter, size_override=300 * 1024 * 1024)
            assert "Received: summary.pdf" in reply
            await fake.wait_for(lambda: len(documents(channel)) == 1)
            assert documents(channel)[0].sha256 == hashlib.sha256(letter).hexdigest()

    run(scenario)


def test_in_a_group_a_patient_is_asked_once_to_write_privately_and_nothing_is_kept(
    settings: Settings, library: str
) -> None:
    """A data copy asked for in a group would be read by the whole group: patients are served
    in a private chat only, and a group hears one kind word, however much is written there."""
    group, other_group = -1005550001, -1005550002

    async def scenario() -> None:
        async with FakeBotApi() as fake:
            fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
            fake.add_chat(group, "supergroup", "Family")
            fake.add_chat(other_group, "group", "Friends")
            async with bot(telegram_settings(settings, fake, library)) as channel:
                fake.push_update(fake.command(510, "/start", chat_id=group))
                await fake.wait_for_sent(group, 1)
                fake.push_update(fake.command(510, "/export", chat_id=group))
                fake.push_update(fake.text_message(511, "my mother has cancer", chat_id=group))
                fake.push_update(
                    fake.document(
                        510, "biopsy.pdf", b"%PDF-1.4 b", "application/pdf", chat_id=group
                    )
                )
                fake.push_update(fake.callback(510, "consent|agree", 1, chat_id=group))
                fake.push_update(fake.text_message(512, "hello", chat_id=other_group))
                await fake.wait_for_sent(other_group, 1)
                await settle(fake)

                said = fake.sent(group)
                assert len(said) == 1 and said[0].method == "sendMessage"
                assert "Please open a chat with me and write to me there." in texts(said)
                assert len(fake.sent(other_group)) == 1
                assert not any(s.method == "sendDocument" for s in fake.sent())
                assert not fake.calls_of("getFile")
                assert documents(channel) == []
                for user in ("510", "511", "512"):
                    assert channel.app.pipeline.state_of(ConversationKey("telegram", user)) is None
                assert fake.sent(COORDINATOR_CHAT) == []

                # The same person in a private chat is served as always.
                reply = await Patient(fake, 510).command("/start")
                assert "Hello, I'm Huizhen" in reply

    run(scenario)


def test_a_forged_press_in_the_coordinators_group_changes_no_card(
    settings: Settings, library: str
) -> None:
    """Button data comes from the client: a press naming another case than the card's is
    refused, and a refused press redraws nothing (it once showed one case's card as another's)."""

    async def submit(patient: Patient) -> None:
        await through_to_records(patient)
        while "Send it now" in str(patient.question().buttons):
            await patient.press("I'll get it later")
        await patient.press("Continue to review")
        await patient.press("Submit the case")

    async def scenario() -> None:
        async with FakeBotApi() as fake:
            fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
            async with bot(telegram_settings(settings, fake, library)) as channel:
                await submit(Patient(fake, 520))
                await fake.wait_for_sent(COORDINATOR_CHAT, 1)
                await submit(Patient(fake, 521))
                first, second = await fake.wait_for_sent(COORDINATOR_CHAT, 2)
                await settle(fake)
                other = next(
                    c.reference
                    for c in channel.app.queue.list()
                    if c.reference in (second.plain_text or "")
                )
                shown = (fake.message(COORDINATOR_CHAT, first.message_id) or {})["text"]

                async def press(user: int, data: str) -> str:
                    before = len(fake.callback_answers)
                    update = fake.callback(user, data, first.message_id, chat_id=COORDINATOR_CHAT)
                    fake.push_update(update)
                    await fake.wait_for(lambda: len(fake.callback_answers) > before)
                    await settle(fake)
                    return fake.callback_answers[-1].text or ""

                await press(STRANGER, f"claim:{other}")
                await press(STRANGER, first.callback_data[0])  # the card's own Claim
                answer = await press(COORDINATOR, f"claim:{other}")
                assert "That button is not on this case's card." in answer
                edits = [s for s in fake.sent(COORDINATOR_CHAT) if s.method == "editMessageText"]
                assert edits == []
                assert (fake.message(COORDINATOR_CHAT, first.message_id) or {})["text"] == shown
                assert {c.status for c in channel.app.queue.list()} == {"submitted"}

                # The card's own button still works for a coordinator.
                assert "You have claimed" in await press(COORDINATOR, first.callback_data[0])
                now = (fake.message(COORDINATOR_CHAT, first.message_id) or {})["text"]
                assert "Claimed by: 900" in now and other not in now

    run(scenario)
