"""The Telegram adapter on aiogram: Bot API calls and update parsing only.

aiogram's Dispatcher is not used: its polling confirms updates before they are handled. The
runtime (telegram_runtime.py) polls through `fetch_updates` and confirms after storing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Update,
)

from bot.channels.telegram_base import (
    UPDATE_TYPES,
    Button,
    FileTooBig,
    Incoming,
    after_bad_request,
    describe_update,
    is_file_too_big,
)
from handlers.updates.delivery import RetryLater, Undeliverable

# Texts carry private links (an upload page, a patient's copy): Telegram's preview fetcher
# must never open them.
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class AiogramClient:
    library = "aiogram"

    def __init__(self, token: str, api_root: str, local_mode: bool = False) -> None:
        server = TelegramAPIServer.from_base(api_root, is_local=local_mode)
        self.bot = Bot(token, session=AiohttpSession(api=server))

    async def start(self) -> None:
        await self.bot.get_me()

    async def close(self) -> None:
        await self.bot.session.close()

    async def fetch_updates(self, offset: int | None, timeout: int) -> list[Any]:
        updates = await self.bot.get_updates(
            offset=offset,
            timeout=timeout,
            allowed_updates=list(UPDATE_TYPES),
            request_timeout=timeout + 10,
        )
        return list(updates)

    def parse_update(self, data: dict[str, Any]) -> Any:
        return Update.model_validate(data, context={"bot": self.bot})

    def describe(self, update: Any) -> Incoming:
        assert isinstance(update, Update)
        return describe_update(update)

    async def send_text(
        self, chat_id: str, text: str, buttons: Sequence[Button], edit_message_id: int | None
    ) -> int:
        markup = _markup(buttons)
        try:
            with _mapped_errors():
                if edit_message_id is not None:
                    edited = await self.bot.edit_message_text(
                        text=text,
                        chat_id=chat_id,
                        message_id=edit_message_id,
                        reply_markup=markup,
                        link_preview_options=NO_PREVIEW,
                    )
                    return edit_message_id if isinstance(edited, bool) else edited.message_id
                sent = await self.bot.send_message(
                    chat_id, text, reply_markup=markup, link_preview_options=NO_PREVIEW
                )
                return sent.message_id
        except TelegramBadRequest as error:
            outcome = after_bad_request(error.message, edit_message_id is not None)
            if outcome == "unchanged":
                return edit_message_id or 0
            if outcome == "send_anew":
                return await self.send_text(chat_id, text, buttons, None)
            raise Undeliverable(type(error).__name__) from error

    async def send_photo(
        self, chat_id: str, photo: bytes, filename: str, caption: str, buttons: Sequence[Button]
    ) -> int:
        try:
            with _mapped_errors():
                sent = await self.bot.send_photo(
                    chat_id,
                    BufferedInputFile(photo, filename=filename),
                    caption=caption or None,
                    reply_markup=_markup(buttons),
                )
                return sent.message_id
        except TelegramBadRequest as error:
            raise Undeliverable(type(error).__name__) from error

    async def send_document(
        self, chat_id: str, document: bytes, filename: str, caption: str
    ) -> int:
        try:
            with _mapped_errors():
                sent = await self.bot.send_document(
                    chat_id, BufferedInputFile(document, filename=filename), caption=caption or None
                )
                return sent.message_id
        except TelegramBadRequest as error:
            raise Undeliverable(type(error).__name__) from error

    async def answer_callback(self, callback_query_id: str, text: str | None) -> None:
        # A press too old to answer: Telegram has stopped the spinner already.
        with contextlib.suppress(TelegramBadRequest):
            await self.bot.answer_callback_query(callback_query_id, text=text)

    async def chat_action(self, chat_id: str, action: str) -> None:
        await self.bot.send_chat_action(chat_id, action)

    async def download(self, file_id: str, destination: BinaryIO) -> None:
        try:
            file = await self.bot.get_file(file_id)
        except TelegramBadRequest as error:
            if is_file_too_big(error.message):
                raise FileTooBig(error.message) from error
            raise
        assert file.file_path is not None
        await self.bot.download_file(file.file_path, destination, seek=False)

    async def set_commands(self, commands: Sequence[tuple[str, str]], language: str | None) -> None:
        await self.bot.set_my_commands(
            [BotCommand(command=name, description=description) for name, description in commands],
            language_code=language,
        )

    async def set_webhook(self, url: str, secret: str | None) -> None:
        await self.bot.set_webhook(url, secret_token=secret, allowed_updates=list(UPDATE_TYPES))

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook()


def _markup(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b.label, callback_data=b.data)] for b in buttons
        ]
    )


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """The library's errors in the terms delivery understands."""
    try:
        yield
    except TelegramRetryAfter as error:
        raise RetryLater(float(error.retry_after)) from error
    except (TelegramForbiddenError, TelegramMigrateToChat) as error:
        raise Undeliverable(type(error).__name__) from error
