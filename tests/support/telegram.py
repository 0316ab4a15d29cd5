"""A Telegram patient and the bot, over the local fake of the Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from sqlmodel import Session, select

from benchmarks.patient_script import COMPLAINT, PATIENT_ANSWERS, PERFORMANCE_ANSWER
from bot.app import build_app
from bot.channels.telegram_base import RateLimiter, decode_callback
from bot.channels.telegram_runtime import TelegramChannel
from bot.config import Settings, load_settings
from bot.runner import telegram_client
from bot.web import SECRET_HEADER, TELEGRAM_WEBHOOK_PATH, make_web_app
from storage.models import Document
from tests.telegram_fake import FakeBotApi, Sent

COORDINATOR_CHAT = -1001234567890
COORDINATOR = 900
STRANGER = 901
LIBRARIES = ("ptb", "aiogram")


def telegram_settings(base: Settings, fake: FakeBotApi, library: str, **extra: str) -> Settings:
    env = {
        "DATA_DIR": str(base.data_dir),
        "DATABASE_URL": base.database_url,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "TELEGRAM_LIBRARY": library,
        "COORDINATOR_CHAT_ID": str(COORDINATOR_CHAT),
        "COORDINATOR_IDS": str(COORDINATOR),
        **extra,
    }
    return load_settings(env)


# Telegram's real pace (one message a second per chat) would make each scenario take minutes;
# the limiter itself has its own test.
def fast() -> RateLimiter:
    return RateLimiter(per_chat=(1000.0, 1000.0), per_group=(1000.0, 1000.0))


@asynccontextmanager
async def bot(
    settings: Settings, polling: bool = True, limiter: RateLimiter | None = None
) -> AsyncIterator[TelegramChannel]:
    app = build_app(settings)
    channel = TelegramChannel(app, telegram_client(settings), limiter or fast())
    await channel.start(polling=polling)
    try:
        yield channel
    finally:
        await channel.stop()
        app.close()


class Patient:
    """A Telegram user: sends updates through the fake and reads what the bot sent back."""

    def __init__(self, fake: FakeBotApi, user_id: int, language: str = "en") -> None:
        self.fake = fake
        self.user_id = user_id
        self.language = language

    async def send(self, update: dict[str, Any]) -> list[Sent]:
        before = len(self.fake.sent(self.user_id))
        self.fake.push_update(update)
        await self.fake.wait_for_sent(self.user_id, before + 1, timeout=10)
        await settle(self.fake)
        return self.fake.sent(self.user_id)[before:]

    async def say(self, text: str) -> str:
        update = self.fake.text_message(self.user_id, text, language_code=self.language)
        return texts(await self.send(update))

    async def command(self, command: str, payload: str | None = None) -> str:
        update = self.fake.command(
            self.user_id, command, payload=payload, language_code=self.language
        )
        return texts(await self.send(update))

    def question(self) -> Sent:
        """The message that carries the current buttons (the last one with a keyboard)."""
        with_buttons = [s for s in self.fake.sent(self.user_id) if s.inline_keyboard]
        assert with_buttons, "the bot has shown no buttons yet"
        latest = with_buttons[-1]
        message = self.fake.message(self.user_id, latest.message_id)
        assert message is not None
        return Sent(**{**latest.__dict__, "message": message})

    async def press(self, label: str) -> str:
        """Press the current question's button whose words contain `label`."""
        return texts(await self.send(self.fake.press(self.question(), label)))

    async def choose(self, option_id: str) -> str:
        """Press the current question's button for this option id, whatever its words."""
        question = self.question()
        found = [d for d in question.callback_data if decode_callback(d)[1] == option_id]
        ids = [decode_callback(d)[1] for d in question.callback_data]
        assert found, f"no option {option_id!r} among {ids}"
        update = self.fake.callback(
            self.user_id, found[0], question.message_id, language_code=self.language
        )
        return texts(await self.send(update))

    async def upload(self, name: str, data: bytes, **kwargs: Any) -> str:
        update = self.fake.document(self.user_id, name, data, "application/pdf", **kwargs)
        return texts(await self.send(update))


def texts(sent: list[Sent]) -> str:
    return "\n".join(s.plain_text or "" for s in sent)


async def settle(fake: FakeBotApi, quiet: float = 0.12) -> None:
    """Wait until the bot has stopped sending for a moment."""
    count = -1
    while count != len(fake.records):
        count = len(fake.records)
        await asyncio.sleep(quiet)


async def consent(patient: Patient) -> None:
    await patient.command("/start")
    await patient.choose("no")  # not an emergency
    await patient.choose("continue")
    await patient.choose("agree")  # health information
    await patient.choose("agree")  # the transfer to China


async def about_patient(patient: Patient) -> None:
    """Answer the questions about who the patient is, as the benchmarks' script does."""
    for answer in PATIENT_ANSWERS.values():
        typed = answer.removeprefix("text:")
        await (patient.say(typed) if typed != answer else patient.choose(answer))


async def through_to_records(
    patient: Patient,
    diagnosis: str = "Liver cancer, 4 cm, surgery proposed",
    own_question: str | None = None,
    timeline: str = "March 2024: tiredness\n2024-05-10: CT scan shows a liver lesion",
) -> None:
    await consent(patient)
    await patient.choose("self")
    await about_patient(patient)
    await patient.choose("new_diagnosis")
    await patient.choose("done")
    for answer in ("no", "yes", "yes", "no", "no", "review"):
        await patient.choose(answer)
    await patient.choose("continue")
    await patient.choose("oncology")
    await patient.choose("hepatobiliary_gi")
    await patient.say(diagnosis)
    await patient.choose(PERFORMANCE_ANSWER)  # what the patient can do day to day
    await patient.say(COMPLAINT)
    for question in ("q_pathology", "q_staging", "q_sequence"):
        await patient.choose(question)
    if own_question is not None:
        await patient.say(own_question)
    await patient.choose("done")
    await patient.say(timeline)
    await patient.choose("done")


WEBHOOK_SECRET = "s3cret-token"


def webhook_settings(base: Settings, fake: FakeBotApi, library: str) -> Settings:
    return telegram_settings(
        base,
        fake,
        library,
        TELEGRAM_WEBHOOK_URL="https://bot.example.org/telegram/webhook",
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )


@asynccontextmanager
async def webhook(
    channel: TelegramChannel,
) -> AsyncIterator[Callable[[dict[str, Any], str], Awaitable[int]]]:
    """The project's web app on a free port; yields a function that posts an update."""
    runner = web.AppRunner(make_web_app(channel))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}{TELEGRAM_WEBHOOK_PATH}"
    async with aiohttp.ClientSession() as http:

        async def post(update: dict[str, Any], secret: str) -> int:
            async with http.post(url, json=update, headers={SECRET_HEADER: secret}) as response:
                return response.status

        try:
            yield post
        finally:
            await runner.cleanup()


def documents(channel: TelegramChannel) -> list[Document]:
    with Session(channel.app.engine) as session:
        return list(session.exec(select(Document)).all())
