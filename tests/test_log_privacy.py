"""Logs carry no health data, names, file names or secrets.

Distinctive values are planted (a bot token, a diagnosis, a question, a timeline, file names,
a name inside a DICOM file, a coordinator's note, a WeChat openid) and whole conversations run
through the real app, the real libraries and the local fakes, with logging set up exactly as in
production (`configure_logging`) but at DEBUG, so the libraries' own debug output is caught as
well. Every record reaching the root logger is kept raw (message, extra fields, the exception
with its message), and standard error is captured at the file-descriptor level, which includes
the file-checking worker process. No planted value may appear in any of it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.config import Settings
from bot.logs import JsonFormatter, configure_logging
from handlers.casework.operations import Actor
from storage.models import Document
from tests.dicom_factory import write_series, zip_files
from tests.support import run
from tests.support.logs import restored_logging
from tests.support.telegram import (
    COORDINATOR_CHAT,
    LIBRARIES,
    Patient,
    bot,
    settle,
    telegram_settings,
    texts,
    through_to_records,
)
from tests.support.wechat import SECRET, TOKEN, wechat
from tests.telegram_fake import FakeBotApi

# Shaped like a real bot token (digits, a colon, 35 characters), so the formatter's last line
# of defence would recognise it too: the test looks for it in the raw records as well.
BOT_TOKEN = "7741852963:AAHk3PlantedBotTokenZq8Rr5Vw2Xy9Lm4"
DIAGNOSIS = "Xanthoplasmic cholangioma near the hilum, 31 mm"
QUESTION = "Would the Zorvanib trial at a hepatology centre suit me?"
TIMELINE = "2024-02-11: Glimmerton clinic found raised bilirubin"
PDF_NAME = "Brightwater-biopsy-report.pdf"
ZIP_NAME = "Ashcombe-CT-disc.zip"
SURNAME, GIVEN_NAME = "QUENBYFIELD", "ORSOLYA"
NOTE = "Please ask Dr Quillfeather for the slides"
OPENID = "o6_bmPLANTEDopenidXq7Wz"
WECHAT_TEXT = "Mottlewick syndrome since 2019"

PLANTED = {
    "the bot token": BOT_TOKEN,
    "the bot token's secret part": BOT_TOKEN.split(":")[1],
    "the diagnosis": "Xanthoplasmic",
    "the patient's question": "Zorvanib",
    "the timeline": "Glimmerton",
    "a file name": "Brightwater",
    "an archive's name": "Ashcombe",
    "the name in the DICOM file": SURNAME,
    "the given name in the DICOM file": GIVEN_NAME,
    "the coordinator's note": "Quillfeather",
    "the WeChat openid": OPENID,
    "a WeChat message": "Mottlewick",
    "the WeChat AppSecret": SECRET,
}
UPLOAD_LINK = re.compile(r"/u/([\w-]{16,})")


class Records(logging.Handler):
    """Every record that reaches the root logger, kept as the raw text a careless formatter
    could print: the message, any extra fields, the exception with its message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._plain = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        standard = vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
        found = []
        for record in self.records:
            parts = [record.name, record.getMessage()]
            parts += [repr(v) for k, v in vars(record).items() if k not in standard]
            if record.exc_info:
                parts.append(self._plain.formatException(record.exc_info))
            found.append(" ".join(parts))
        return found


@pytest.fixture
def production_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[Records]:
    """Logging as `huizhen run` sets it up, at DEBUG, plus the raw record keeper."""
    records = Records()
    with restored_logging():
        configure_logging("DEBUG")
        logging.getLogger().addHandler(records)
        yield records


async def answer(patient: Patient, question: str, label: str) -> None:
    """Press a button on an earlier message (a side question), as a person scrolling up."""
    fake = patient.fake
    asked = [s for s in fake.sent(patient.user_id) if question in (s.plain_text or "")]
    assert asked, f"no message {question!r}"
    shown = fake.message(patient.user_id, asked[-1].message_id)
    assert shown is not None
    await patient.send(fake.press(shown, label))


def assert_nothing_private(
    records: Records, capfd: pytest.CaptureFixture[str], planted: dict[str, str]
) -> None:
    err = capfd.readouterr().err
    logged = records.texts()
    for what, value in planted.items():
        leaks = [text for text in logged if value.lower() in text.lower()]
        assert not leaks, f"{what} is in a log record: {leaks[0][:400]}"
        assert value.lower() not in err.lower(), f"{what} is on standard error"
    # Standard error holds log lines only (the worker process's too), each one JSON object.
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) >= len(records.records)
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys(), line


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_whole_telegram_intake_with_files_and_a_coordinator_logs_nothing_private(
    sqlite_settings: Settings,
    library: str,
    tmp_path: Path,
    production_logs: Records,
    capfd: pytest.CaptureFixture[str],
) -> None:
    series = write_series(
        tmp_path / "disc" / "DICOM", count=3, patient_name=f"{SURNAME}^{GIVEN_NAME}"
    )
    archive = zip_files(tmp_path / ZIP_NAME, series, root=tmp_path / "disc").read_bytes()
    planted = dict(PLANTED)

    async def scenario() -> None:
        async with FakeBotApi(token=BOT_TOKEN) as fake:
            fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
            public = {"PUBLIC_BASE_URL": "https://huizhen.example"}
            config = telegram_settings(sqlite_settings, fake, library, **public)
            async with bot(config) as channel:
                patient = Patient(fake, 601)
                await through_to_records(
                    patient, diagnosis=DIAGNOSIS, own_question=QUESTION, timeline=TIMELINE
                )
                reply = await patient.upload(PDF_NAME, b"%PDF-1.4 a biopsy report")
                assert f"Received: {PDF_NAME}" in reply
                before = len(fake.sent(601))
                fake.push_update(fake.document(601, ZIP_NAME, archive, "application/zip"))
                await fake.wait_for(lambda: any(s.method == "sendPhoto" for s in fake.sent(601)))
                await settle(fake)
                # The scan's name is shown to the patient (and only to the patient).
                assert SURNAME in texts(fake.sent(601)[before:])
                await answer(patient, "Is this the scan you meant?", "Yes, that's it")
                await answer(patient, "Which part of the checklist", "Pathology report")
                while "Send it now" in str(patient.question().buttons):
                    await patient.press("I'll get it later")
                await patient.press("Continue to review")
                reply = await patient.press("Submit the case")
                assert "Your case has been submitted" in reply
                await fake.wait_for_sent(COORDINATOR_CHAT, 1)

                case = channel.app.queue.list()[0]
                coordinator = Actor("900", "cli")
                channel.app.casework.claim(case.reference, coordinator)
                channel.app.casework.request(
                    case.reference, ["pathology_report"], coordinator, note=NOTE
                )
                await channel.deliver_now()
                await fake.wait_for(lambda: NOTE in texts(fake.sent(601)))
                await settle(fake)
                with Session(channel.app.engine) as session:
                    names = {d.original_name for d in session.exec(select(Document)).all()}
                assert PDF_NAME in names
                for link in UPLOAD_LINK.findall(texts(fake.sent(601))):
                    planted[f"an upload link token ({link[:4]}…)"] = link

    run(scenario)
    assert_nothing_private(production_logs, capfd, planted)
    # …and it was a real run: our own lines and the libraries' were caught.
    loggers = {record.name for record in production_logs.records}
    assert {
        "handlers.updates.pipeline",
        "handlers.updates.delivery",
        "handlers.ingest.ingestor",
    } <= loggers
    assert len(production_logs.records) >= 100


def test_wechat_messages_and_a_picture_log_nothing_private(
    sqlite_settings: Settings, production_logs: Records, capfd: pytest.CaptureFixture[str]
) -> None:
    planted = dict(PLANTED)

    async def scenario() -> None:
        async with wechat(sqlite_settings, PUBLIC_BASE_URL="https://huizhen.example") as world:
            follower = world.follower(OPENID)
            await follower.follow(scene="clinic-7")
            await follower.consent()
            reply = await follower.say(WECHAT_TEXT)  # not one of the options: asked again
            assert "1. For me" in reply
            media_id = world.api.add_media(b"\xff\xd8\xff\xe0 a photo of a discharge letter")
            reply = (await follower.post(world.server.image(OPENID, media_id))).text
            assert "Received: photo-" in reply
            await world.api.wait_for(lambda: len(world.api.texts_to(OPENID)) >= 2)
            assert world.api.calls_to("user/info") and world.api.calls_to("media/get")
            for number, token in enumerate(world.api.tokens_issued):
                planted[f"WeChat access token {number}"] = token
            assert world.settings.wechat_encoding_aes_key is not None
            planted["the EncodingAESKey"] = world.settings.wechat_encoding_aes_key
            planted["the webhook token"] = TOKEN

    run(scenario)
    assert_nothing_private(production_logs, capfd, planted)
    assert {"handlers.updates.pipeline", "handlers.ingest.ingestor"} <= {
        r.name for r in production_logs.records
    }


@pytest.fixture
def unsilenced_logs() -> Iterator[Records]:
    """Everything at DEBUG, libraries included, as a plain `logging.basicConfig(DEBUG)` would
    leave it."""
    records = Records()
    with restored_logging():
        root = logging.getLogger()
        root.setLevel(logging.DEBUG)
        for name in ("httpx", "telegram"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        root.addHandler(records)
        yield records


def test_without_silencing_the_libraries_would_log_the_token_and_what_patients_say(
    sqlite_settings: Settings, unsilenced_logs: Records
) -> None:
    """The control: the same kind of run with the libraries left at DEBUG does leak, so the
    tests above would notice a library that starts to. The JSON formatter still scrubs the
    token from those very lines."""

    async def scenario() -> None:
        async with (
            FakeBotApi(token=BOT_TOKEN) as fake,
            bot(telegram_settings(sqlite_settings, fake, "ptb")),
        ):
            patient = Patient(fake, 602)
            await patient.command("/start")
            await patient.say(DIAGNOSIS)

    run(scenario)
    logged = unsilenced_logs.texts()
    with_token = [
        r for r, text in zip(unsilenced_logs.records, logged, strict=True) if BOT_TOKEN in text
    ]
    assert any(r.name == "httpx" for r in with_token)  # "HTTP Request: POST …/bot<token>/…"
    assert any(DIAGNOSIS in text for text in logged)  # PTB logs the updates it fetched
    formatter = JsonFormatter()
    for record in with_token:
        line = formatter.format(record)
        assert BOT_TOKEN.split(":")[1] not in line
        assert json.loads(line)["logger"] == record.name
