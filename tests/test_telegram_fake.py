"""The Telegram fake, driven by the real client libraries (python-telegram-bot 22 and aiogram 3)
and by raw HTTP. These tests are what make the fake trustworthy for the bot's own tests."""

from __future__ import annotations

import asyncio
import io
import json
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import telegram
import telegram.error
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram import types as agtypes
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

from tests.telegram_fake import FakeBotApi

PDF = b"%PDF-1.4 fake report\n" * 50
USER = 424242


def run(scenario: Callable[[FakeBotApi], Awaitable[None]]) -> None:
    async def main() -> None:
        async with FakeBotApi() as fake:
            await scenario(fake)

    asyncio.run(main())


def ptb_bot(fake: FakeBotApi, token: str | None = None) -> telegram.Bot:
    return telegram.Bot(token or fake.token, base_url=fake.api_base, base_file_url=fake.file_base)


def aiogram_bot(fake: FakeBotApi, token: str | None = None) -> AiogramBot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    return AiogramBot(token or fake.token, session=session)


def retry_seconds(error: telegram.error.RetryAfter) -> float:
    """PTB 22 gives an int (with a PTBDeprecationWarning) unless PTB_TIMEDELTA=1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# --------------------------------------------------------------------------- python-telegram-bot


def test_ptb_get_me_and_long_polling() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        bot = ptb_bot(fake)
        await bot.initialize()
        try:
            assert bot.username == fake.bot_username
            assert bot.id == fake.bot_id

            pushed = fake.push_update(fake.text_message(USER, "hello", language_code="zh"))
            updates = await bot.get_updates(timeout=1)
            assert len(updates) == 1
            update = updates[0]
            assert isinstance(update, telegram.Update)
            assert update.update_id == pushed["update_id"]
            assert update.message is not None and update.message.text == "hello"
            assert update.effective_user is not None
            assert update.effective_user.id == USER
            assert update.effective_user.language_code == "zh"
            assert update.effective_chat is not None and update.effective_chat.type == "private"

            # Not confirmed yet: the same update comes again; with offset it is gone for good.
            again = await bot.get_updates(timeout=0)
            assert [u.update_id for u in again] == [update.update_id]
            assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
            assert fake.pending_updates == []
            assert await bot.get_updates(timeout=0) == ()

            # A waiting long poll returns as soon as an update is queued.
            started = time.monotonic()
            poll = asyncio.create_task(bot.get_updates(timeout=5))
            await asyncio.sleep(0.1)
            fake.push_update(fake.command(USER, "/start", payload="ref-7"))
            (command,) = await poll
            assert time.monotonic() - started < 0.9
            assert command.message is not None
            assert command.message.text == "/start ref-7"
            entity = command.message.entities[0]
            assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)
            # The timeout is capped, so an empty poll is quick.
            started = time.monotonic()
            assert await bot.get_updates(offset=command.update_id + 1, timeout=30) == ()
            assert time.monotonic() - started < 2
        finally:
            await bot.shutdown()

        getme = fake.calls_of("getMe")[0]
        assert (getme.http_method, getme.encoding) == ("POST", "none")
        poll_call = fake.calls_of("getUpdates")[-1]
        assert poll_call.encoding == "form"
        assert poll_call.params["offset"] == command.update_id + 1  # sent as "N", decoded

    run(scenario)


def test_ptb_keyboard_callback_and_edit() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        bot = ptb_bot(fake)
        await bot.initialize()
        try:
            markup = telegram.InlineKeyboardMarkup(
                [
                    [telegram.InlineKeyboardButton("Yes", callback_data="consent:yes")],
                    [telegram.InlineKeyboardButton("No", callback_data="consent:no")],
                ]
            )
            sent = await bot.send_message(USER, "Do you agree?", reply_markup=markup)
            assert isinstance(sent, telegram.Message)
            assert sent.text == "Do you agree?"
            assert sent.from_user is not None and sent.from_user.is_bot
            assert sent.reply_markup == markup

            record = fake.last_sent(USER)
            assert record.method == "sendMessage"
            assert record.callback_data == ["consent:yes", "consent:no"]
            assert record.buttons == [["Yes"], ["No"]]
            assert record.reply_markup is not None
            assert record.reply_markup["inline_keyboard"][0][0]["callback_data"] == "consent:yes"
            assert fake.calls_of("sendMessage")[0].encoding == "form"

            fake.push_update(fake.press(record, "Yes"))
            (update,) = await bot.get_updates(timeout=1)
            query = update.callback_query
            assert query is not None and query.data == "consent:yes"
            assert query.message is not None and query.message.message_id == sent.message_id
            assert query.from_user.id == USER

            assert await bot.answer_callback_query(query.id, text="Thanks", show_alert=True)
            answer = fake.callback_answers[-1]
            assert (answer.callback_query_id, answer.text, answer.show_alert) == (
                query.id,
                "Thanks",
                True,
            )

            edited = await bot.edit_message_text(
                "You agreed.", chat_id=USER, message_id=sent.message_id
            )
            assert isinstance(edited, telegram.Message)
            assert edited.text == "You agreed." and edited.edit_date is not None
            assert edited.reply_markup is None  # an edit without reply_markup drops it
            assert [r.method for r in fake.sent(USER)] == ["sendMessage", "editMessageText"]

            with pytest.raises(telegram.error.BadRequest, match=r"(?i)message is not modified"):
                await bot.edit_message_text("You agreed.", chat_id=USER, message_id=sent.message_id)
            await bot.send_chat_action(USER, "typing")
            assert [(a.chat_id, a.action) for a in fake.chat_actions] == [(USER, "typing")]
        finally:
            await bot.shutdown()

    run(scenario)


def test_ptb_files() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        bot = ptb_bot(fake)
        await bot.initialize()
        try:
            fake.push_update(fake.document(USER, "scan.pdf", PDF, "application/pdf", caption="CT"))
            fake.push_update(
                fake.document(USER, "mri.zip", b"", "application/zip", size_override=25 << 20)
            )
            fake.push_update(fake.photo(USER, b"\xff\xd8jpeg-bytes", sizes=3))
            doc_update, big_update, photo_update = await bot.get_updates(timeout=1)

            assert doc_update.message is not None and doc_update.message.document is not None
            document = doc_update.message.document
            assert (document.file_name, document.mime_type, document.file_size) == (
                "scan.pdf",
                "application/pdf",
                len(PDF),
            )
            assert doc_update.message.caption == "CT"
            file = await bot.get_file(document.file_id)
            assert file.file_size == len(PDF)
            assert bytes(await file.download_as_bytearray()) == PDF

            assert big_update.message is not None and big_update.message.document is not None
            with pytest.raises(telegram.error.BadRequest, match=r"(?i)file is too big"):
                await bot.get_file(big_update.message.document.file_id)

            assert photo_update.message is not None
            sizes = photo_update.message.photo
            assert len(sizes) == 3 and sizes[-1].width > sizes[0].width
            largest = await bot.get_file(sizes[-1].file_id)
            assert bytes(await largest.download_as_bytearray()) == b"\xff\xd8jpeg-bytes"

            # The bot uploads a document (multipart) and re-sends it by file_id (form).
            message = await bot.send_document(
                USER, document=b"case summary", filename="case.txt", caption="Your case"
            )
            assert message.document is not None and message.document.file_name == "case.txt"
            uploaded = fake.last_sent(USER)
            assert uploaded.file is not None and uploaded.file.data == b"case summary"
            assert uploaded.text == "Your case"
            upload_call = fake.calls_of("sendDocument")[0]
            assert upload_call.encoding == "multipart"
            assert "document" in upload_call.uploads  # PTB: the part is named after the field
            again = await bot.send_document(USER, document=message.document.file_id)
            assert again.document is not None
            assert again.document.file_id == message.document.file_id
            assert fake.calls_of("sendDocument")[1].encoding == "form"
        finally:
            await bot.shutdown()

    run(scenario)


# PTB itself reads the deprecated int `retry_after` while building RetryAfter.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_ptb_errors_commands_and_bad_token() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        bot = ptb_bot(fake)
        await bot.initialize()
        try:
            fake.fail_next("sendMessage", status=429, retry_after=7)
            with pytest.raises(telegram.error.RetryAfter) as flood:
                await bot.send_message(USER, "hi")
            assert retry_seconds(flood.value) == 7
            fake.fail_next("sendMessage", status=500)
            with pytest.raises(telegram.error.NetworkError, match="Internal Server Error"):
                await bot.send_message(USER, "hi")
            assert fake.sent() == []  # faulted calls were not delivered
            assert [c.status for c in fake.calls_of("sendMessage")] == [429, 500]
            await bot.send_message(USER, "hi")
            assert [r.text for r in fake.sent(USER)] == ["hi"]

            commands = [telegram.BotCommand("start", "Start"), telegram.BotCommand("help", "Help")]
            assert await bot.set_my_commands(commands, language_code="zh")
            assert await bot.set_my_commands(commands[:1])
            assert fake.commands["zh"] == [
                {"command": "start", "description": "Start"},
                {"command": "help", "description": "Help"},
            ]
            assert fake.commands[""] == [{"command": "start", "description": "Start"}]
            assert await bot.get_my_commands(language_code="zh") == tuple(commands)
            assert await bot.delete_my_commands(language_code="zh")
            assert "zh" not in fake.commands
            with pytest.raises(telegram.error.BadRequest, match=r"(?i)bot_command_invalid"):
                await bot.set_my_commands([telegram.BotCommand("Start", "x")])
        finally:
            await bot.shutdown()

        wrong = ptb_bot(fake, token="999999:WRONG-TOKEN")
        with pytest.raises(telegram.error.InvalidToken):
            await wrong.initialize()
        await wrong.shutdown()
        assert fake.calls[-1].status == 401

    run(scenario)


def test_ptb_application_polls_and_answers() -> None:
    """A real PTB Application (Updater + handlers) against the fake."""

    async def scenario(fake: FakeBotApi) -> None:
        async def start(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            assert update.effective_message is not None
            await update.effective_message.reply_text(f"Welcome ({context.args})")

        app = (
            ApplicationBuilder()
            .token(fake.token)
            .base_url(fake.api_base)
            .base_file_url(fake.file_base)
            .build()
        )
        app.add_handler(CommandHandler("start", start))
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0, timeout=timedelta(seconds=1))
            fake.push_update(fake.command(USER, "/start", payload="abc"))
            (reply,) = await fake.wait_for_sent(USER, 1)
            assert reply.text == "Welcome (['abc'])"
            await app.updater.stop()
            await app.stop()
        assert fake.calls_of("deleteWebhook")  # run by start_polling
        assert fake.pending_updates == []

    run(scenario)


# --------------------------------------------------------------------------- aiogram


def test_aiogram_get_me_updates_keyboard_callback_edit() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        bot = aiogram_bot(fake)
        try:
            me = await bot.get_me()
            assert me.username == fake.bot_username and me.is_bot

            pushed = fake.push_update(fake.text_message(USER, "你好", language_code="zh"))
            updates = await bot.get_updates(timeout=1)
            assert len(updates) == 1 and isinstance(updates[0], agtypes.Update)
            message = updates[0].message
            assert message is not None and message.text == "你好"
            assert message.from_user is not None and message.from_user.language_code == "zh"
            assert updates[0].update_id == pushed["update_id"]
            assert await bot.get_updates(offset=pushed["update_id"] + 1, timeout=0) == []
            assert fake.pending_updates == []

            markup = agtypes.InlineKeyboardMarkup(
                inline_keyboard=[
                    [agtypes.InlineKeyboardButton(text="Cardiology", callback_data="area:cardio")]
                ]
            )
            sent = await bot.send_message(
                USER, "<b>Area?</b>", parse_mode="HTML", reply_markup=markup
            )
            assert isinstance(sent, agtypes.Message)
            assert sent.text == "Area?"  # tags are parsed away, as on the real API
            record = fake.last_sent(USER)
            assert record.text == "<b>Area?</b>" and record.parse_mode == "HTML"
            assert record.callback_data == ["area:cardio"]
            assert fake.calls_of("sendMessage")[0].encoding == "form"

            fake.push_update(fake.callback(USER, "area:cardio", sent.message_id))
            (update,) = await bot.get_updates(timeout=1)
            query = update.callback_query
            assert query is not None and query.data == "area:cardio"
            assert isinstance(query.message, agtypes.Message)
            assert query.message.message_id == sent.message_id
            assert query.message.chat.id == USER

            assert await bot.answer_callback_query(query.id, text="Noted")
            assert fake.callback_answers[-1].text == "Noted"
            assert fake.callback_answers[-1].show_alert is False

            edited = await bot.edit_message_text(
                "Cardiology ✓", chat_id=USER, message_id=sent.message_id, reply_markup=markup
            )
            assert isinstance(edited, agtypes.Message) and edited.text == "Cardiology ✓"
            assert fake.last_sent(USER).method == "editMessageText"
            with pytest.raises(TelegramBadRequest, match="message is not modified"):
                await bot.edit_message_reply_markup(
                    chat_id=USER, message_id=sent.message_id, reply_markup=markup
                )
            removed = await bot.edit_message_reply_markup(chat_id=USER, message_id=sent.message_id)
            assert isinstance(removed, agtypes.Message) and removed.reply_markup is None
        finally:
            await bot.session.close()

    run(scenario)


def test_aiogram_files_errors_commands_and_bad_token() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        bot = aiogram_bot(fake)
        try:
            update = fake.document(USER, "scan.pdf", PDF, "application/pdf")
            file_id = update["message"]["document"]["file_id"]
            buffer = io.BytesIO()
            assert await bot.download(file_id, destination=buffer) is buffer
            assert buffer.getvalue() == PDF
            file = await bot.get_file(file_id)
            assert file.file_path and file.file_size == len(PDF)
            assert (await bot.download_file(file.file_path)) is not None

            big = fake.document(USER, "mri.zip", b"", "application/zip", size_override=25 << 20)
            with pytest.raises(TelegramBadRequest, match="file is too big"):
                await bot.get_file(big["message"]["document"]["file_id"])

            sent = await bot.send_document(
                USER, agtypes.BufferedInputFile(b"summary", filename="case.txt")
            )
            assert sent.document is not None and sent.document.file_name == "case.txt"
            assert fake.last_sent(USER).file is not None
            upload_call = fake.calls_of("sendDocument")[0]
            assert upload_call.encoding == "multipart"
            reference = upload_call.params["document"]
            assert reference.startswith("attach://")  # aiogram: by reference to another part
            assert reference.removeprefix("attach://") in upload_call.uploads

            fake.fail_next("sendMessage", status=429, retry_after=3)
            with pytest.raises(TelegramRetryAfter) as flood:
                await bot.send_message(USER, "hi")
            assert flood.value.retry_after == 3
            fake.fail_next("sendMessage", status=502)
            with pytest.raises(TelegramServerError):
                await bot.send_message(USER, "hi")
            assert [r.method for r in fake.sent(USER)] == ["sendDocument"]

            assert await bot.set_my_commands(
                [agtypes.BotCommand(command="start", description="开始")], language_code="zh"
            )
            assert fake.commands == {"zh": [{"command": "start", "description": "开始"}]}
            commands = await bot.get_my_commands(language_code="zh")
            assert [c.command for c in commands] == ["start"]
            with pytest.raises(TelegramBadRequest, match="language code"):
                await bot.set_my_commands(
                    [agtypes.BotCommand(command="start", description="x")],
                    language_code="zh_Hans",
                )
        finally:
            await bot.session.close()

        wrong = aiogram_bot(fake, token="999999:WRONG-TOKEN")
        try:
            with pytest.raises(TelegramUnauthorizedError):
                await wrong.get_me()
        finally:
            await wrong.session.close()

    run(scenario)


def test_aiogram_dispatcher_polls_and_answers() -> None:
    """A real aiogram Dispatcher (start_polling) against the fake."""

    async def scenario(fake: FakeBotApi) -> None:
        bot = aiogram_bot(fake)
        dp = Dispatcher()

        @dp.message(CommandStart())
        async def start(message: agtypes.Message) -> None:
            await message.answer("Welcome")

        polling = asyncio.create_task(
            dp.start_polling(bot, handle_signals=False, polling_timeout=1)
        )
        try:
            fake.push_update(fake.command(USER, "/start"))
            (reply,) = await fake.wait_for_sent(USER, 1)
            assert reply.text == "Welcome"
            # aiogram only asks for the update types it has handlers for.
            assert fake.allowed_updates == ["message"]
        finally:
            await dp.stop_polling()
            await polling  # closes the bot session

    run(scenario)


# --------------------------------------------------------------------------- raw HTTP


async def call(
    fake: FakeBotApi, method: str, *, token: str | None = None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    http_method = kwargs.pop("http_method", "POST")
    async with (
        aiohttp.ClientSession() as session,
        session.request(http_method, fake.method_url(method, token), **kwargs) as resp,
    ):
        return resp.status, await resp.json()


def test_raw_http_protocol_details() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        assert await call(fake, "getMe", token="1:nope") == (
            401,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
        )
        assert await call(fake, "noSuchMethod") == (
            404,
            {"ok": False, "error_code": 404, "description": "Not Found"},
        )
        status, body = await call(fake, "getme", http_method="GET")
        assert status == 200 and body["ok"] and body["result"]["is_bot"] is True

        keyboard = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        status, body = await call(
            fake,
            "SENDMESSAGE",
            json={"chat_id": USER, "text": "json body", "reply_markup": keyboard},
        )
        assert status == 200 and body["result"]["reply_markup"] == keyboard
        status, body = await call(
            fake,
            "sendMessage",
            http_method="GET",
            params={"chat_id": str(USER), "text": "query", "reply_markup": json.dumps(keyboard)},
        )
        assert status == 200 and body["result"]["message_id"] == 2
        assert [c.encoding for c in fake.calls_of("sendMessage")] == ["json", "query"]
        assert fake.sent(USER)[1].reply_markup == keyboard

        fake.fail_next("getMe", status=500)
        assert await call(fake, "getMe") == (
            500,
            {"ok": False, "error_code": 500, "description": "Internal Server Error"},
        )
        fake.fail_next("getMe", status=429, retry_after=5)
        assert await call(fake, "getMe") == (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 5",
                "parameters": {"retry_after": 5},
            },
        )

        async def bad(data: dict[str, Any], description: str) -> None:
            status, body = await call(fake, "sendMessage", data=data)
            assert status == 400, body
            assert description in body["description"]

        await bad({"chat_id": USER, "text": "a < b", "parse_mode": "HTML"}, "Unsupported start tag")
        await bad({"chat_id": USER, "text": "<b>x", "parse_mode": "HTML"}, "Can't find end tag")
        await bad({"chat_id": USER, "text": "Done.", "parse_mode": "MarkdownV2"}, "reserved")
        await bad({"chat_id": USER, "text": "x" * 4097}, "message is too long")
        await bad({"chat_id": USER, "text": ""}, "message text is empty")
        long_data = {"inline_keyboard": [[{"text": "x", "callback_data": "d" * 65}]]}
        await bad(
            {"chat_id": USER, "text": "x", "reply_markup": json.dumps(long_data)},
            "BUTTON_DATA_INVALID",
        )
        status, body = await call(
            fake,
            "sendMessage",
            data={"chat_id": USER, "text": "Done\\.", "parse_mode": "MarkdownV2"},
        )
        assert status == 200 and body["result"]["text"] == "Done."
        status, body = await call(fake, "answerCallbackQuery", data={"callback_query_id": "1"})
        assert status == 400 and "query ID is invalid" in body["description"]

        # Downloads: the registered bytes, 404 for unknown paths.
        entry = fake.add_file(b"bytes", file_name="a.txt")
        async with aiohttp.ClientSession() as session:
            url = f"{fake.base_url}/file/bot{fake.token}/{entry.file_path}"
            async with session.get(url) as resp:
                assert resp.status == 200 and await resp.read() == b"bytes"
            async with session.get(f"{fake.base_url}/file/bot{fake.token}/x/none") as resp:
                assert resp.status == 404

    run(scenario)


def test_raw_http_polling_rules() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        first = fake.push_update(fake.text_message(USER, "one"))
        fake.push_update({"message_reaction": {"chat": {"id": USER, "type": "private"}}})
        status, body = await call(fake, "getUpdates", data={"timeout": "0"})
        assert [u["update_id"] for u in body["result"]] == [first["update_id"]]
        assert len(fake.dropped_updates) == 1  # not asked for: dropped, as on the real API

        # A second poller terminates the first one with 409, as on the real API.
        offset = {"offset": str(first["update_id"] + 1), "timeout": "1"}
        older = asyncio.create_task(call(fake, "getUpdates", data=offset))
        await asyncio.sleep(0.1)
        newer = asyncio.create_task(call(fake, "getUpdates", data=offset))
        status, body = await older
        assert status == 409 and "terminated by other getUpdates" in body["description"]
        status, body = await newer
        assert (status, body["result"]) == (200, [])

        status, body = await call(fake, "setWebhook", data={"url": "http://127.0.0.1:9/hook"})
        assert status == 400 and "HTTPS" in body["description"]
        status, _ = await call(
            fake, "setWebhook", data={"url": "https://bot.example/hook", "secret_token": "s3-cr_t"}
        )
        assert status == 200 and fake.webhook is not None
        assert fake.webhook["secret_token"] == "s3-cr_t"
        status, body = await call(fake, "getUpdates")
        assert status == 409 and "webhook is active" in body["description"]
        status, body = await call(fake, "getWebhookInfo")
        assert body["result"]["url"] == "https://bot.example/hook"
        fake.push_update(fake.text_message(USER, "two"))
        status, _ = await call(fake, "deleteWebhook", data={"drop_pending_updates": "true"})
        assert status == 200 and fake.webhook is None and fake.pending_updates == []

    run(scenario)


def test_builders_queue_and_wait_for() -> None:
    async def scenario(fake: FakeBotApi) -> None:
        early = fake.text_message(USER, "built first")
        late = fake.text_message(USER, "built second")
        assert early["update_id"] < late["update_id"]
        assert fake.pending_updates == []  # builders do not queue
        fake.push_update(late)
        requeued = fake.push_update(early)  # pushed out of order: renumbered, not lost
        assert requeued["update_id"] > late["update_id"]
        _, body = await call(fake, "getUpdates")
        assert [u["message"]["text"] for u in body["result"]] == ["built second", "built first"]

        group = fake.text_message(USER, "/status@huizhen_test_bot", chat_id=-1001234)
        assert group["message"]["chat"] == {
            "id": -1001234,
            "type": "supergroup",
            "title": "Test group",
        }
        assert group["message"]["entities"][0]["length"] == len("/status@huizhen_test_bot")
        parsed = agtypes.Update.model_validate(group)
        assert parsed.message is not None and parsed.message.chat.type == "supergroup"

        waiter = asyncio.create_task(fake.wait_for_sent(USER, 1))
        await asyncio.sleep(0.05)
        await call(fake, "sendMessage", data={"chat_id": USER, "text": "late answer"})
        (record,) = await waiter
        assert record.text == "late answer"
        with pytest.raises(AssertionError, match="timed out"):
            await fake.wait_for(lambda: fake.sent(-1), timeout=0.1)

    run(scenario)
