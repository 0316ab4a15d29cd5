"""What every Telegram adapter provides, and the Telegram rules that do not depend on the
library: callback data, message length, rate limits. No platform library is imported here;
`telegram.py` (python-telegram-bot) and `telegram_aiogram.py` (aiogram) implement
`TelegramClient`, and `telegram_runtime.py` drives either one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, Protocol

from conversations.channels import TELEGRAM
from conversations.events import Content, FileRef, Inbound, InboundKind
from storage.files import FileTooLarge

# The Bot API hands bots files up to 20 MB; a local Bot API server lifts that.
CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024
# What a local Bot API server (--local) hands over.
LOCAL_DOWNLOAD_LIMIT = 2000 * 1024 * 1024
MESSAGE_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64
# Edited messages too, so the patient hears that an edit is not read (conversations/unread.py).
UPDATE_TYPES = ("message", "edited_message", "callback_query")
CHANNEL = TELEGRAM.name


class FileTooBig(FileTooLarge):
    """The Bot API refused to hand over a file ("file is too big")."""


class UnreadableUpdate(ValueError):
    """A webhook body that is not an update we can read (answered 400, never retried)."""


@dataclass(frozen=True)
class Incoming:
    """One Telegram update as the runtime needs it: the neutral Inbound plus Telegram facts."""

    update_id: int
    inbound: Inbound | None
    callback_query_id: str | None = None
    media_group_id: str | None = None
    # Telegram's chat type ("private", "group", "supergroup", "channel"). Patients are served
    # only in a private chat: whatever the bot sends a chat, everyone in it reads.
    chat_type: str = ""

    @property
    def private(self) -> bool:
        return self.chat_type == "private"


@dataclass(frozen=True)
class Button:
    label: str
    data: str


class TelegramClient(Protocol):
    """The few Bot API calls Huizhen makes, behind one library or the other.

    Implementations raise handlers.delivery.RetryLater on 429, Undeliverable when the chat is
    gone or the bot blocked, FileTooBig from `download`, and anything else for passing faults.
    """

    library: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def fetch_updates(self, offset: int | None, timeout: int) -> list[Any]: ...

    def parse_update(self, data: dict[str, Any]) -> Any: ...

    def describe(self, update: Any) -> Incoming: ...

    async def send_text(
        self, chat_id: str, text: str, buttons: Sequence[Button], edit_message_id: int | None
    ) -> int: ...

    async def send_photo(
        self, chat_id: str, photo: bytes, filename: str, caption: str, buttons: Sequence[Button]
    ) -> int: ...

    async def send_document(
        self, chat_id: str, document: bytes, filename: str, caption: str
    ) -> int: ...

    async def answer_callback(self, callback_query_id: str, text: str | None) -> None: ...

    async def chat_action(self, chat_id: str, action: str) -> None: ...

    async def download(self, file_id: str, destination: BinaryIO) -> None: ...

    async def set_commands(
        self, commands: Sequence[tuple[str, str]], language: str | None
    ) -> None: ...

    async def set_webhook(self, url: str, secret: str | None) -> None: ...

    async def delete_webhook(self) -> None: ...


def telegram_file(file_id: str, name: str, size: int | None, mime: str | None) -> FileRef:
    """A FileRef for a Telegram file; over the Bot API's download limit it is marked too large,
    so the patient hears at once instead of after a failed download."""
    too_large = size is not None and size > CLOUD_DOWNLOAD_LIMIT
    return FileRef(source=file_id, name=name, size=size, mime_type=mime, too_large=too_large)


BadRequestOutcome = Literal["unchanged", "send_anew", "refused"]


def after_bad_request(description: str, editing: bool) -> BadRequestOutcome:
    """What a 400 answer to sending or editing a message means for us (both libraries report
    it with the server's description)."""
    if "not modified" in description.lower():
        return "unchanged"  # the message already reads so
    if editing:
        return "send_anew"  # too old or deleted to edit: send it as a new message
    return "refused"


def is_file_too_big(description: str) -> bool:
    return "too big" in description.lower()


def encode_callback(prompt_ref: str, choice_id: str) -> str:
    """Callback data carries ids only: "<question>|<option>", at most 64 bytes."""
    data = f"{prompt_ref}|{choice_id}"
    if len(data.encode()) > CALLBACK_DATA_LIMIT:
        data = f"|{choice_id}"  # the question is then not checked, the option still is
    return data[:CALLBACK_DATA_LIMIT]


def decode_callback(data: str) -> tuple[str, str]:
    prompt_ref, separator, choice_id = data.partition("|")
    return (prompt_ref, choice_id) if separator else ("", data)


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split a long text at paragraph, then line, then word boundaries."""
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    chunks.append(rest)
    return [chunk for chunk in chunks if chunk] or [""]


@dataclass
class _Bucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float
    stamp: float

    def wait_time(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


@dataclass
class RateLimiter:
    """Telegram's limits: about one message a second per chat (short bursts allowed), 30 a
    second overall, and 20 a minute in a group."""

    per_chat: tuple[float, float] = (1.0, 3.0)
    per_group: tuple[float, float] = (20 / 60, 20.0)
    overall: tuple[float, float] = (30.0, 30.0)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _bucket(self, key: str, rate: float, capacity: float, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(rate, capacity, capacity, now)
        return bucket

    async def acquire(self, chat_id: str) -> None:
        is_group = chat_id.startswith("-")
        rate, capacity = self.per_group if is_group else self.per_chat
        while True:
            now = time.monotonic()
            chat = self._bucket(chat_id, rate, capacity, now)
            overall = self._bucket("*", *self.overall, now)
            wait = max(chat.wait_time(now), overall.wait_time(now))
            if wait <= 0:
                chat.take()
                overall.take()
                return
            await asyncio.sleep(wait)


# What reading a malformed body raises: json's errors (ValueError, and RecursionError for
# deep nesting), aiogram's validation (ValueError), and python-telegram-bot's: it builds its
# objects without checking types, so a field of the wrong type fails with whatever Python
# raises first (AttributeError, TypeError; OverflowError or OSError for a date out of range).
_MALFORMED = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    OverflowError,
    OSError,
    RecursionError,
)


def read_update(client: TelegramClient, body: bytes) -> Incoming:
    """A webhook body as an update; UnreadableUpdate when it is not one."""
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            return client.describe(client.parse_update(data))
    except _MALFORMED as error:
        raise UnreadableUpdate(type(error).__name__) from error
    raise UnreadableUpdate("not a JSON object")


def describe_update(update: Any) -> Incoming:
    """Both libraries model the Bot API's objects with the same field names, so one reading
    serves both adapters."""
    incoming = _describe(update)
    if incoming.inbound is None:
        return incoming
    return dataclasses.replace(incoming, inbound=_storable(incoming.inbound))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(inbound: Inbound) -> Inbound:
    """JSON may escape half of a surrogate pair ("\\ud83d" with nothing after it); both
    libraries keep it, and a string holding one cannot be written as UTF-8, so the update
    could never be stored. It becomes U+FFFD, the replacement character."""
    fields = inbound.model_dump()
    cleaned = _without_lone_surrogates(fields)
    return inbound if cleaned == fields else Inbound.model_validate(cleaned)


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: _without_lone_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_lone_surrogates(item) for item in value]
    return value


def _describe(update: Any) -> Incoming:
    if update.callback_query is not None:
        query = update.callback_query
        message = query.message
        prompt_ref, choice_id = decode_callback(query.data or "")
        chat_id = str(message.chat.id) if message is not None else str(query.from_user.id)
        # A press on a message the bot sent inline elsewhere has no message: not a patient's.
        chat_type = message.chat.type if message is not None else ""
        inbound = Inbound(
            channel=CHANNEL,
            user_key=str(query.from_user.id),
            chat_key=chat_id,
            update_key=str(update.update_id),
            kind=InboundKind.CHOICE,
            choice_id=choice_id,
            prompt_ref=prompt_ref,
            message_ref=str(message.message_id) if message is not None else "",
            language_hint=query.from_user.language_code,
        )
        return Incoming(
            update.update_id, inbound, callback_query_id=query.id, chat_type=str(chat_type)
        )
    message = update.message
    edited = message is None and update.edited_message is not None
    if edited:
        message = update.edited_message
    if message is None or message.from_user is None:
        return Incoming(update.update_id, None)
    inbound = _message_inbound(update.update_id, message)
    if edited:
        inbound = Inbound(
            **_base(update.update_id, message), kind=InboundKind.OTHER, content=Content.EDITED
        )
    return Incoming(
        update.update_id,
        inbound,
        media_group_id=message.media_group_id,
        chat_type=str(message.chat.type),
    )


def _base(update_id: int, message: Any) -> dict[str, Any]:
    assert message.from_user is not None
    return {
        "channel": CHANNEL,
        "user_key": str(message.from_user.id),
        "chat_key": str(message.chat.id),
        "update_key": str(update_id),
        "language_hint": message.from_user.language_code,
        "album": message.media_group_id or "",
    }


def _message_inbound(update_id: int, message: Any) -> Inbound:
    base = _base(update_id, message)
    files = _files(message)
    if files:
        return Inbound(**base, kind=InboundKind.FILES, files=files)
    other = _other(message)
    if other is not None:
        content, file = other
        return Inbound(
            **base, kind=InboundKind.OTHER, content=content, files=(file,) if file else ()
        )
    text = message.text or ""
    if text.startswith("/"):
        command, _, args = text[1:].partition(" ")
        return Inbound(
            **base,
            kind=InboundKind.COMMAND,
            command=command.split("@")[0],
            args=args.strip(),
        )
    return Inbound(**base, kind=InboundKind.TEXT, text=text)


def _other(message: Any) -> tuple[Content, FileRef | None] | None:
    """What the message carries that is not text, a photo or a document. An audio or video
    file comes with its FileRef: where records are asked for, it is kept as one."""
    caption = message.caption or ""
    for attribute, content, default_name in (
        ("audio", Content.AUDIO, "audio"),
        ("video", Content.VIDEO, "video.mp4"),
    ):
        media = getattr(message, attribute, None)
        if media is not None:
            name = getattr(media, "file_name", None) or default_name
            ref = telegram_file(media.file_id, name, media.file_size, media.mime_type)
            return content, ref.model_copy(update={"caption": caption})
    if message.voice is not None or message.video_note is not None:
        return Content.RECORDING, None
    if message.sticker is not None:
        return Content.STICKER, None
    if message.location is not None or message.venue is not None:
        return Content.LOCATION, None
    if message.contact is not None:
        return Content.CONTACT, None
    return None


def _files(message: Any) -> tuple[FileRef, ...]:
    caption = message.caption or ""
    if message.document is not None:
        doc = message.document
        ref = telegram_file(doc.file_id, doc.file_name or "", doc.file_size, doc.mime_type)
        return (ref.model_copy(update={"caption": caption}),)
    if message.photo:
        photo = message.photo[-1]  # the largest size comes last
        name = f"photo-{photo.file_unique_id}.jpg"
        ref = telegram_file(photo.file_id, name, photo.file_size, "image/jpeg")
        return (ref.model_copy(update={"caption": caption}),)
    return ()
