"""What Huizhen does not read on Telegram (voice, audio and video, video notes, stickers,
locations, contacts, edits) gets a kind word in the patient's language, and an album that
arrives by webhook one part at a time is acknowledged once: both libraries, over the fake
Bot API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from conversations import unread
from conversations.i18n import translator
from conversations.state import ConversationKey
from tests.support import run
from tests.support.telegram import (
    WEBHOOK_SECRET,
    Patient,
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


@pytest.fixture(params=("ptb", "aiogram"))
def library(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"DATA_DIR": str(tmp_path / "data")})


KINDS = [
    ("voice", unread.RECORDING),
    ("video_note", unread.RECORDING),
    ("audio", unread.RECORDING),
    ("video", unread.VIDEO),
    ("sticker", unread.STICKER),
    ("location", unread.LOCATION),
    ("contact", unread.CONTACT),
]


def test_what_is_not_read_gets_a_kind_word_and_the_question_again(
    settings: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)) as channel:
            patient = Patient(fake, 701)
            await consent(patient)
            question = patient.question().plain_text
            for kind, note in KINDS:
                name = {"audio": "talk.mp3", "video": "scan.mp4"}.get(kind)
                update = fake.media(701, kind, b"recorded", file_name=name, mime_type=None)
                sent = await patient.send(update)
                reply = texts(sent)
                assert translator("en")(note) in reply, (kind, reply)
                assert "Please choose one of the options below" not in reply
                # The question is asked again, with its buttons.
                assert sent[-1].plain_text == question and sent[-1].inline_keyboard, kind
            await settle(fake)
            assert documents(channel) == []  # nothing was kept

    run(scenario)


def test_the_kind_word_is_in_the_patients_language(settings: Settings, library: str) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)):
            patient = Patient(fake, 702, language="de")
            await patient.command("/start")
            reply = texts(await patient.send(fake.media(702, "voice", language_code="de")))
            assert translator("de")(unread.RECORDING) in reply
            reply = texts(await patient.send(fake.media(702, "sticker", language_code="de")))
            assert translator("de")(unread.STICKER) in reply

    run(scenario)


def test_a_video_sent_for_the_records_is_kept_as_a_file(settings: Settings, library: str) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)) as channel:
            patient = Patient(fake, 703)
            await through_to_records(patient)
            await patient.press("Send it now")
            video = fake.media(703, "video", b"\x00\x00\x00 ftyp mp4", "ct.mp4", "video/mp4")
            reply = texts(await patient.send(video))
            assert "Received: ct.mp4" in reply
            assert translator("en")(unread.VIDEO_KEPT) in reply
            audio = fake.media(703, "audio", b"ID3 audio", "consultation.mp3", "audio/mpeg")
            reply = texts(await patient.send(audio))
            assert "Received: consultation.mp3" in reply
            await fake.wait_for(lambda: len(documents(channel)) == 2, timeout=10)
            names = {document.original_name for document in documents(channel)}
            assert names == {"ct.mp4", "consultation.mp3"}

    run(scenario)


def test_an_edit_is_pointed_out_once_and_not_taken_as_an_answer(
    settings: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake, bot(telegram_settings(settings, fake, library)) as channel:
            patient = Patient(fake, 704)
            await consent(patient)
            question = patient.question().plain_text
            typed = fake.text_message(704, "hello")
            await patient.send(typed)
            before = len(fake.sent(704))
            sent = await patient.send(fake.edited(typed, "hello again"))
            reply = texts(sent)
            assert translator("en")(unread.EDITED) in reply
            assert sent[-1].plain_text == question
            # A second edit of the same question: no second note.
            fake.push_update(fake.edited(typed, "hello a third time"))
            await settle(fake, quiet=0.3)
            notes = [s for s in fake.sent(704)[before:] if "didn't see your edit" in (s.text or "")]
            assert len(notes) == 1
            state = channel.app.pipeline.state_of(ConversationKey("telegram", "704"))
            assert state is None or "hello again" not in state.model_dump_json()

    run(scenario)


def test_an_album_by_webhook_is_acknowledged_once(settings: Settings, library: str) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake:
            config = webhook_settings(settings, fake, library)
            async with bot(config, polling=False) as channel, webhook(channel) as post:

                async def send(update: dict[str, Any]) -> None:
                    assert await post(update, WEBHOOK_SECRET) == 200

                patient = Patient(fake, 705)
                await send(fake.command(705, "/start"))
                await settle(fake)
                for label in ("No, not an emergency", "Continue", "I agree", "I agree"):
                    await send(fake.press(patient.question(), label))
                    await settle(fake)
                before = len(fake.sent(705))
                for index in range(3):
                    data = f"page {index}".encode()
                    part = fake.document(
                        705, f"p{index}.pdf", data, "application/pdf", media_group_id="album-9"
                    )
                    await send(part)  # one request per part, as Telegram sends them
                await fake.wait_for(lambda: len(documents(channel)) == 3, timeout=10)
                await settle(fake, quiet=0.3)
                new = [s for s in fake.sent(705)[before:] if s.method == "sendMessage"]
                acknowledged = [s for s in new if "Received: p" in (s.text or "")]
                assert len(acknowledged) == 1, [s.text for s in new]
                shown = fake.message(705, acknowledged[0].message_id)
                assert shown is not None
                assert all(f"Received: p{i}.pdf" in shown["text"] for i in range(3)), shown
                # And one report on the whole album, once no part came for a moment.
                await fake.wait_for(
                    lambda: any("I've checked" in (s.text or "") for s in fake.sent(705)),
                    timeout=10,
                )
                await settle(fake, quiet=0.5)
                reports = [s for s in fake.sent(705)[before:] if "I've checked" in (s.text or "")]
                assert len(reports) == 1, [s.text for s in reports]
                assert all(f"p{i}.pdf" in (reports[0].text or "") for i in range(3))

    run(scenario)
