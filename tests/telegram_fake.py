"""A local fake of the Telegram Bot API: an aiohttp server on 127.0.0.1 that speaks the real
HTTP protocol closely enough for python-telegram-bot 22 and aiogram 3 to talk to it unchanged.

    async with FakeBotApi() as fake:
        bot = telegram.Bot(fake.token, base_url=fake.api_base, base_file_url=fake.file_base)
        fake.push_update(fake.text_message(42, "hello"))
        ...
        await fake.wait_for(lambda: fake.sent(42))

What a request looks like on the wire (read from the libraries' source):

* python-telegram-bot (HTTPXRequest) POSTs every method. Without files the parameters are
  ``application/x-www-form-urlencoded``; with an upload they are ``multipart/form-data``. Strings
  are sent as they are; every other value (ints, bools, dicts, lists) is ``json.dumps``-ed, so
  ``chat_id=42`` arrives as ``"42"`` and ``show_alert=True`` as ``"true"``. A plain upload is a
  part named after the parameter (``document``) with a filename.
* aiogram 3 (AiohttpSession) POSTs an aiohttp ``FormData``: urlencoded without files, multipart
  with them. Same value encoding (strings raw, the rest JSON). Uploads are always by reference:
  ``document=attach://<random key>`` plus a file part named ``<random key>``.

Both ways, plus JSON bodies and GET query strings (which the real API also accepts), end up in
the same decoded ``params`` dict here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import mimetypes
import random
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

JSONDict = dict[str, Any]
T = TypeVar("T")

DEFAULT_TOKEN = "123456:TEST-TOKEN"
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024  # getFile refuses bigger files ("file is too big")
MAX_UPLOAD_SIZE = 50 * 1024 * 1024  # what the real API accepts in one upload
MAX_TEXT_LENGTH = 4096  # UTF-16 code units, after entity parsing
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Fields whose values are JSON-serialized objects/arrays when sent as form fields.
JSON_FIELDS = _words(
    "reply_markup allowed_updates commands scope media entities caption_entities "
    "link_preview_options reply_parameters results permissions menu_button options "
    "button"
)
INT_FIELDS = _words(
    "message_id offset limit cache_time reply_to_message_id message_thread_id "
    "max_connections user_id from_chat_id"
)
BOOL_FIELDS = _words(
    "show_alert disable_notification protect_content drop_pending_updates "
    "disable_web_page_preview allow_sending_without_reply has_spoiler "
    "disable_content_type_detection is_personal allow_paid_broadcast "
    "show_caption_above_media"
)
CHAT_ACTIONS = _words(
    "typing upload_photo record_video upload_video record_voice upload_voice "
    "upload_document choose_sticker find_location record_video_note "
    "upload_video_note"
)
# Update types the real API leaves out unless they are asked for in allowed_updates.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
SENT_METHODS = ("sendMessage", "sendDocument", "sendPhoto", "editMessageText")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
_BOT_COMMAND_RE = re.compile(r"^/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?")


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status = error_code."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(f"{status} {description}")
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(text: str) -> ApiError:
    return ApiError(400, f"Bad Request: {text}")


# --------------------------------------------------------------------------- records


@dataclass
class Upload:
    """One file part of a multipart request."""

    field_name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Call:
    """One HTTP request to the API, whatever its outcome."""

    method: str  # canonical name ("sendMessage") when known, otherwise as requested
    http_method: str
    encoding: str  # "none" | "query" | "json" | "form" (urlencoded) | "multipart"
    time: float
    params: JSONDict = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    status: int = 0
    response: JSONDict = field(default_factory=dict)
    faulted: bool = False  # answered by fail_next or random_faults
    token: str = ""  # the token it was made with
    dropped: bool = False  # carried out, then the connection was closed unanswered

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class FileEntry:
    """A file the fake knows: sent by a user (builders), uploaded by the bot, or added."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_size: int
    file_name: str | None = None
    mime_type: str | None = None

    @property
    def too_big(self) -> bool:
        return self.file_size > MAX_DOWNLOAD_SIZE

    def as_file(self) -> JSONDict:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }


@dataclass
class Sent:
    """A successful sendMessage / sendDocument / sendPhoto / editMessageText /
    editMessageReplyMarkup, as the bot asked for it."""

    method: str
    chat_id: int
    message_id: int
    text: str | None  # the text or caption exactly as sent (markup not stripped)
    parse_mode: str | None
    reply_markup: JSONDict | None
    params: JSONDict
    message: JSONDict  # the Message the fake answered with
    file: FileEntry | None = None
    time: float = field(default_factory=time.time)
    # False when the call was carried out but never answered (drop_answers): the bot could
    # not know that Telegram had taken it.
    acknowledged: bool = True
    token: str = ""  # the token the call was made with (see add_token)

    @property
    def plain_text(self) -> str | None:
        """The text as a user sees it (tags/markdown removed)."""
        value = self.message.get("text", self.message.get("caption"))
        return value if isinstance(value, str) else None

    @property
    def inline_keyboard(self) -> list[list[JSONDict]]:
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard") or []
        return [list(row) for row in rows]

    @property
    def buttons(self) -> list[list[str]]:
        """Button labels, row by row (inline or reply keyboard)."""
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard") or self.reply_markup.get("keyboard") or []
        return [[b if isinstance(b, str) else str(b.get("text", "")) for b in row] for row in rows]

    @property
    def callback_data(self) -> list[str]:
        return [
            str(b["callback_data"])
            for row in self.inline_keyboard
            for b in row
            if "callback_data" in b
        ]


@dataclass
class CallbackAnswer:
    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None
    time: float = field(default_factory=time.time)


@dataclass
class ChatAction:
    chat_id: int
    action: str
    time: float = field(default_factory=time.time)


@dataclass
class _Fault:
    status: int
    retry_after: int
    description: str | None
    raw_body: str | None


@dataclass
class _Request:
    method: str
    params: JSONDict
    uploads: dict[str, Upload]

    def has(self, name: str) -> bool:
        return self.params.get(name) not in (None, "")

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.params.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.params.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_request(f"invalid {name} specified")
        return int(value)

    def flag(self, name: str) -> bool:
        return bool(self.params.get(name) or False)


# --------------------------------------------------------------------------- text entities


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _entities_error(text: str) -> ApiError:
    return bad_request(f"can't parse entities: {text}")


_HTML_TAGS = _words(
    "a b strong i em u ins s strike del span tg-spoiler tg-emoji code pre blockquote tg-time"
)
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|lt|gt|amp|quot);")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def parse_html(text: str) -> str:
    """The visible text of a parse_mode=HTML message, with Telegram's (tdlib's) errors."""
    out: list[str] = []
    stack: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "&":
            match = _HTML_ENTITY_RE.match(text, i)
            if match:
                name = match.group(1)
                if name.startswith(("#x", "#X")):
                    out.append(chr(int(name[2:], 16)))
                elif name.startswith("#"):
                    out.append(chr(int(name[1:])))
                else:
                    out.append(_HTML_NAMED[name])
                i = match.end()
                continue
            out.append(char)
            i += 1
            continue
        if char != "<":
            out.append(char)
            i += 1
            continue
        offset = _byte_offset(text, i)
        if i + 1 < n and text[i + 1] == "/":
            end = text.find(">", i)
            if end < 0:
                raise _entities_error(f"Unclosed end tag at byte offset {offset}")
            name = text[i + 2 : end].strip().lower()
            if not stack:
                raise _entities_error(f"Unexpected end tag at byte offset {offset}")
            if stack[-1] != name:
                raise _entities_error(
                    f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1]}>", '
                    f'found "</{name}>"'
                )
            stack.pop()
            i = end + 1
            continue
        j = i + 1
        while j < n and not text[j].isspace() and text[j] != ">":
            j += 1
        if j >= n:
            raise _entities_error(f"Unclosed start tag at byte offset {offset}")
        name = text[i + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise _entities_error(f'Unsupported start tag "{name}" at byte offset {offset}')
        k, quote = j, ""
        while k < n:
            char = text[k]
            if quote:
                if char == quote:
                    quote = ""
            elif char in "\"'":
                quote = char
            elif char == ">":
                break
            k += 1
        if k >= n:
            raise _entities_error(f"Unclosed start tag at byte offset {offset}")
        if name == "span" and "tg-spoiler" not in text[j:k]:
            raise _entities_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
            )
        stack.append(name)
        i = k + 1
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
    "`": "Code",
    "```": "PreCode",
    "[": "TextUrl",
    "](": "TextUrl",
}


def parse_markdown_v2(text: str) -> str:
    """The visible text of a parse_mode=MarkdownV2 message; unescaped reserved characters and
    unclosed entities fail as on the real API."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.append(text[i + 1])
            i += 2
            continue
        top = stack[-1][0] if stack else ""
        if top in ("`", "```"):
            if text.startswith(top, i):
                stack.pop()
                i += len(top)
            else:
                out.append(char)
                i += 1
            continue
        if top == "](":
            if char == ")":
                stack.pop()
            i += 1
            continue
        if char not in _MDV2_RESERVED:
            out.append(char)
            i += 1
            continue
        offset = _byte_offset(text, i)
        if top in ("__", "||") and text.startswith(top, i):
            stack.pop()
            i += 2
        elif char in "_*~" and top == char:
            stack.pop()
            i += 1
        elif char == "]" and top == "[":
            stack.pop()
            if i + 1 < n and text[i + 1] == "(":
                stack.append(("](", offset))
                i += 2
            else:
                i += 1
        elif char == "_" and text.startswith("__", i):
            stack.append(("__", offset))
            i += 2
        elif char == "|" and text.startswith("||", i):
            stack.append(("||", offset))
            i += 2
        elif char in "_*~[":
            stack.append((char, offset))
            i += 1
        elif char == "`":
            if text.startswith("```", i):
                stack.append(("```", offset))
                i += 3
                newline = text.find("\n", i)
                if newline >= 0 and " " not in text[i:newline]:
                    i = newline + 1  # language name of the pre block
            else:
                stack.append(("`", offset))
                i += 1
        elif char == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # block quotation
        elif char == "!" and i + 1 < n and text[i + 1] == "[":
            stack.append(("[", offset))
            i += 2  # custom emoji
        else:
            raise _entities_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
    if stack:
        marker, offset = stack[-1]
        raise _entities_error(
            f"Can't find end of {_MDV2_NAMES.get(marker, 'the')} entity at byte offset {offset}"
        )
    return "".join(out)


def parse_markdown(text: str) -> str:
    """parse_mode=Markdown (legacy): _italic_, *bold*, `code`, ```pre```, [text](url)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.append(char)
            i += 1
            continue
        offset = _byte_offset(text, i)
        error = _entities_error(f"Can't find end of the entity starting at byte offset {offset}")
        if char == "[":
            close = text.find("]", i + 1)
            if close < 0:
                raise error
            out.append(text[i + 1 : close])
            i = close + 1
            if i < n and text[i] == "(":
                end = text.find(")", i)
                if end < 0:
                    raise error
                i = end + 1
            continue
        marker = "```" if text.startswith("```", i) else char
        end = text.find(marker, i + len(marker))
        if end < 0:
            raise error
        out.append(text[i + len(marker) : end])
        i = end + len(marker)
    return "".join(out)


def visible_text(text: str, parse_mode: str | None) -> str:
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    if mode:
        raise bad_request(f"unsupported parse_mode {parse_mode}")
    return text


# --------------------------------------------------------------------------- request parsing


def _coerce(name: str, value: Any) -> Any:
    if name in JSON_FIELDS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None
    if isinstance(value, str) and (name in INT_FIELDS or name == "chat_id"):
        if re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        if name == "chat_id":
            return value  # "@channelusername"
        raise bad_request(f"invalid {name} specified")
    if name == "timeout" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise bad_request("invalid timeout specified") from None
    if name in BOOL_FIELDS and isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return value


async def read_params(request: web.Request) -> tuple[JSONDict, dict[str, Upload], str]:
    """Query string + body (JSON, urlencoded or multipart), JSON-encoded fields decoded."""
    raw: JSONDict = dict(request.query)
    uploads: dict[str, Upload] = {}
    encoding = "query" if raw else "none"
    if request.body_exists:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON") from None
            if not isinstance(body, dict):
                raise bad_request("JSON object expected")
            raw.update(body)
            encoding = "json"
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    uploads[key] = Upload(
                        key, value.filename, value.content_type, value.file.read()
                    )
                else:
                    raw[key] = value if isinstance(value, str) else bytes(value).decode()
            encoding = "multipart" if ctype == "multipart/form-data" else "form"
    params = {key: _coerce(key, value) for key, value in raw.items()}
    return params, uploads, encoding


# --------------------------------------------------------------------------- the fake


class FakeBotApi:
    """The fake server. Use ``async with FakeBotApi() as fake`` (or ``await start()/stop()``)."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "huizhen_test_bot",
        bot_first_name: str = "Huizhen",
        max_poll_timeout: float = 1.0,
        local_files: Path | None = None,
    ) -> None:
        """`local_files`: behave like a Bot API server started with --local, which hands
        files over as absolute paths in a folder it shares with the bot (up to 2 GB)."""
        self.token = token
        # More tokens of the same bot (add_token): a test tells its bot processes apart.
        self.tokens = {token}
        self.local_files = local_files
        head = token.split(":", 1)[0]
        self.bot_id = int(head) if head.isdigit() else 123456
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.max_poll_timeout = max_poll_timeout

        self.calls: list[Call] = []
        self.records: list[Sent] = []  # every successful message send/edit, in order
        self.callback_answers: list[CallbackAnswer] = []
        self.chat_actions: list[ChatAction] = []
        self.deleted: list[tuple[int, int]] = []
        self.command_sets: dict[tuple[str, str], list[JSONDict]] = {}  # (scope json, lang)
        self.webhook: JSONDict | None = None
        self.allowed_updates: list[str] | None = None
        self.pending_updates: list[JSONDict] = []
        self.confirmed_updates: list[JSONDict] = []
        self.dropped_updates: list[JSONDict] = []  # filtered out by allowed_updates
        self.settings: dict[str, JSONDict] = {}  # setMyDescription & co, by method

        self.files: dict[str, FileEntry] = {}  # by file_id
        self._files_by_path: dict[str, FileEntry] = {}
        self._photo_sets: dict[str, list[JSONDict]] = {}  # any size's file_id -> all sizes
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._message_ids: dict[int, int] = {}
        self._users: dict[int, JSONDict] = {}
        self._chats: dict[int, JSONDict] = {}
        self._chat_usernames: dict[str, int] = {}
        self._callback_ids: set[str] = set()
        self._faults: dict[str, deque[_Fault]] = {}
        self._random_faults: dict[str, tuple[float, tuple[_Fault, ...]]] = {}
        self._drops: dict[str, float] = {}
        self._random = random.Random(0)
        self._next_update_id = 1
        self._last_queued_id = 0
        self._counter = itertools.count(1)
        self._poll_generation = 0
        self._changed: asyncio.Event | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port = 0

        handlers: dict[str, Callable[[_Request], Any]] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "getFile": self._get_file,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": self._remember_setting,
            "setMyShortDescription": self._remember_setting,
            "setMyName": self._remember_setting,
            "setChatMenuButton": self._remember_setting,
        }
        self._handlers = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._changed = asyncio.Event()
        self._closing = False
        app = web.Application(client_max_size=MAX_UPLOAD_SIZE + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method:.*}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        self._closing = True
        self._poll_generation += 1
        self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:PORT`` (aiogram: TelegramAPIServer.from_base)."""
        if not self._port:
            raise RuntimeError("FakeBotApi is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """PTB's ``base_url`` (the token is appended): ``{root}/bot``."""
        return f"{self.base_url}/bot"

    @property
    def file_base(self) -> str:
        """PTB's ``base_file_url``: ``{root}/file/bot``."""
        return f"{self.base_url}/file/bot"

    def method_url(self, method: str, token: str | None = None) -> str:
        return f"{self.base_url}/bot{token or self.token}/{method}"

    # ------------------------------------------------------------------ test controls

    def push_update(self, update: JSONDict) -> JSONDict:
        """Queue an update for getUpdates and return it as queued.

        It gets the next update_id if it has none, or if its id is not above every id queued
        so far (a builder's update pushed late): as on the real API, the queue only grows in
        update_id order, so an old id would otherwise be swallowed by the next offset."""
        update = dict(update)
        update_id = update.get("update_id")
        if not isinstance(update_id, int) or update_id <= self._last_queued_id:
            update_id = update["update_id"] = self._take_update_id()
        self._next_update_id = max(self._next_update_id, update_id + 1)
        self._last_queued_id = update_id
        callback = update.get("callback_query")
        if isinstance(callback, dict) and "id" in callback:
            self._callback_ids.add(str(callback["id"]))
        self.pending_updates.append(update)
        self._notify()
        return update

    def fail_next(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        retry_after: int = 1,
        *,
        description: str | None = None,
        raw_body: str | None = None,
    ) -> None:
        """The next `times` calls of `method` fail with `status` and are not carried out.
        429 carries parameters.retry_after; 5xx say "Internal Server Error" (or `description`);
        `raw_body` replaces the JSON body (e.g. the HTML page a real 502 from nginx is)."""
        queue = self._faults.setdefault(method.lower(), deque())
        for _ in range(times):
            queue.append(_Fault(status, retry_after, description, raw_body))

    def random_faults(
        self,
        methods: Iterable[str],
        share: float,
        *,
        statuses: Iterable[int] = (429, 500, 502),
        retry_after: int = 1,
        seed: int = 0,
    ) -> None:
        """From now on a random `share` of the calls of `methods` fail, as a busy or broken
        Telegram answers: each with one of `statuses` (a 429 says retry_after; a 502 is
        sometimes the HTML page a proxy sends), and none of them is carried out."""
        self._random.seed(seed)
        faults = []
        for status in statuses:
            faults.append(_Fault(status, retry_after, None, None))
            if status == 502:
                page = "<html><head><title>502 Bad Gateway</title></head></html>"
                faults.append(_Fault(status, retry_after, None, page))
        for method in methods:
            self._random_faults[method.lower()] = (share, tuple(faults))

    def add_token(self, token: str) -> None:
        """Accept another token for the same bot (same id before the colon): each process a
        test starts can then be told apart in `calls` and `records`, even when what a killed
        one sent is read only after the next has started."""
        if token.split(":", 1)[0] != self.token.split(":", 1)[0]:
            raise ValueError("a token of another bot")
        self.tokens.add(token)

    def drop_answers(self, methods: Iterable[str], share: float, *, seed: int = 0) -> None:
        """From now on a random `share` of the calls of `methods` are carried out (the message
        is in the chat) and then the connection is closed without an answer, as when the
        network fails on the way back: the bot cannot tell whether Telegram took it."""
        self._random.seed(seed)
        for method in methods:
            self._drops[method.lower()] = share

    def sent(self, chat_id: int | str | None = None) -> list[Sent]:
        """Successful sendMessage/sendDocument/sendPhoto/editMessageText records, in order."""
        wanted = None if chat_id is None else self._resolve_chat_id(chat_id)
        return [
            r
            for r in self.records
            if r.method in SENT_METHODS and (wanted is None or r.chat_id == wanted)
        ]

    def last_sent(self, chat_id: int | str | None = None) -> Sent:
        records = self.sent(chat_id)
        assert records, f"nothing was sent to {chat_id!r}"
        return records[-1]

    @property
    def commands(self) -> dict[str, list[JSONDict]]:
        """language_code ("" = all languages) -> commands, for the default scope."""
        default = json.dumps({"type": "default"}, sort_keys=True)
        return {lang: cmds for (scope, lang), cmds in self.command_sets.items() if scope == default}

    def commands_for(
        self, scope: JSONDict | None = None, language_code: str = ""
    ) -> list[JSONDict] | None:
        return self.command_sets.get((self._scope_key(scope), language_code))

    def message(self, chat_id: int | str, message_id: int) -> JSONDict | None:
        """A message as it is now (after edits), bot's or user's."""
        return self._messages.get((self._resolve_chat_id(chat_id), message_id))

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0, what: str = "") -> T:
        """Wait until `predicate()` is truthy (re-checked on every request/update) and return
        its value; fail the test with the recent calls if it does not happen in `timeout` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = [(c.method, c.status) for c in self.calls[-10:]]
                raise AssertionError(
                    f"wait_for{f' ({what})' if what else ''} timed out after {timeout}s; "
                    f"last calls: {recent}"
                )
            if self._changed is None:
                self._changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def wait_for_sent(
        self, chat_id: int | str | None = None, count: int = 1, timeout: float = 5.0
    ) -> list[Sent]:
        """Wait until at least `count` messages were sent (to `chat_id`)."""
        return await self.wait_for(
            lambda: records if len(records := self.sent(chat_id)) >= count else [],
            timeout,
            what=f"{count} message(s) to {chat_id}",
        )

    def add_file(
        self,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        folder: str = "documents",
        size_override: int | None = None,
    ) -> FileEntry:
        """Register a file so getFile and the download route know it."""
        n = next(self._counter)
        suffix = ""
        if file_name and "." in file_name:
            suffix = "." + file_name.rsplit(".", 1)[1].lower()
        elif folder == "photos":
            suffix = ".jpg"
        prefix = "AgACAgIAAxkBAAI" if folder == "photos" else "BQACAgIAAxkBAAI"
        entry = FileEntry(
            file_id=f"{prefix}{n:05d}{secrets.token_urlsafe(24)}",
            file_unique_id=f"AgAD{n:04d}{secrets.token_urlsafe(6)}",
            file_path=f"{folder}/file_{n}{suffix}",
            data=data,
            file_size=len(data) if size_override is None else size_override,
            file_name=file_name,
            mime_type=mime_type,
        )
        self.files[entry.file_id] = entry
        self._files_by_path[entry.file_path] = entry
        return entry

    # ------------------------------------------------------------------ update builders

    def user(
        self, user_id: int, first_name: str = "Ann", language_code: str | None = "en"
    ) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return dict(user)

    def add_chat(self, chat_id: int, chat_type: str, title: str = "Test group") -> JSONDict:
        chat: JSONDict = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = self._users.get(chat_id, {}).get("first_name", "User")
        else:
            chat["title"] = title
        self._chats[chat_id] = chat
        return dict(chat)

    def text_message(
        self,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        language_code: str = "en",
        first_name: str = "Ann",
        *,
        entities: list[JSONDict] | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """A user's text message. A leading /command gets its bot_command entity, as real
        clients add it."""
        content: JSONDict = {"text": text}
        if entities is None:
            match = _BOT_COMMAND_RE.match(text)
            if match:
                entities = [{"type": "bot_command", "offset": 0, "length": utf16_len(match[0])}]
        if entities:
            content["entities"] = entities
        message = self._incoming(user_id, chat_id, language_code, first_name, content)
        if reply_to_message_id is not None:
            replied = self._messages.get((message["chat"]["id"], reply_to_message_id))
            if replied:
                message["reply_to_message"] = dict(replied)
        return self._wrap("message", message)

    def command(
        self,
        user_id: int,
        command: str,
        payload: str | None = None,
        chat_id: int | None = None,
        language_code: str = "en",
        first_name: str = "Ann",
    ) -> JSONDict:
        """``/start`` (or ``/start payload``) with the bot_command entity at offset 0."""
        head = command if command.startswith("/") else f"/{command}"
        text = head if payload is None else f"{head} {payload}"
        entity = {"type": "bot_command", "offset": 0, "length": utf16_len(head)}
        return self.text_message(
            user_id, text, chat_id, language_code, first_name, entities=[entity]
        )

    def callback(
        self,
        user_id: int,
        data: str,
        message_id: int,
        chat_id: int | None = None,
        language_code: str = "en",
        first_name: str = "Ann",
    ) -> JSONDict:
        """A button press on message `message_id` (the bot's message, as it is now)."""
        chat = user_id if chat_id is None else chat_id
        message = self._messages.get((chat, message_id))
        if message is None:
            message = {
                "message_id": message_id,
                "from": self._bot_user(),
                "chat": self._chat(chat),
                "date": int(time.time()),
                "text": "…",
            }
        query_id = str(secrets.randbits(62))
        self._callback_ids.add(query_id)
        query: JSONDict = {
            "id": query_id,
            "from": self.user(user_id, first_name, language_code),
            "message": json.loads(json.dumps(message)),
            "chat_instance": str(abs(hash((self.bot_id, chat))) % 10**18),
            "data": data,
        }
        return self._wrap("callback_query", query)

    def press(self, record: Sent | JSONDict, label: str, user_id: int | None = None) -> JSONDict:
        """The callback update for pressing the inline button whose label contains `label`."""
        message = record.message if isinstance(record, Sent) else record
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        buttons = [b for row in rows for b in row if label in str(b.get("text", ""))]
        labels = [b.get("text") for row in rows for b in row]
        assert buttons, f"no inline button {label!r} among {labels}"
        assert "callback_data" in buttons[0], f"button {label!r} has no callback_data"
        chat = int(message["chat"]["id"])
        who = user_id if user_id is not None else chat
        user = self._users.get(who, {})
        return self.callback(
            who,
            str(buttons[0]["callback_data"]),
            int(message["message_id"]),
            chat_id=chat,
            language_code=user.get("language_code", "en"),
            first_name=user.get("first_name", "Ann"),
        )

    def document(
        self,
        user_id: int,
        file_name: str,
        data: bytes,
        mime_type: str,
        caption: str | None = None,
        media_group_id: str | None = None,
        size_override: int | None = None,
        *,
        chat_id: int | None = None,
        language_code: str = "en",
        first_name: str = "Ann",
    ) -> JSONDict:
        """A user's document; the file is registered (getFile/download work, or getFile says
        "file is too big" when size_override > 20 MB)."""
        entry = self.add_file(
            data, file_name=file_name, mime_type=mime_type, size_override=size_override
        )
        content: JSONDict = {"document": self._document_json(entry)}
        if caption is not None:
            content["caption"] = caption
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        message = self._incoming(user_id, chat_id, language_code, first_name, content)
        return self._wrap("message", message)

    def photo(
        self,
        user_id: int,
        data: bytes,
        sizes: int = 3,
        media_group_id: str | None = None,
        caption: str | None = None,
        *,
        chat_id: int | None = None,
        language_code: str = "en",
        first_name: str = "Ann",
    ) -> JSONDict:
        """A user's photo: `sizes` PhotoSize entries, largest last, each registered (each serves
        `data`; only the dimensions differ)."""
        content: JSONDict = {"photo": self._photo_sizes(data, sizes)}
        if caption is not None:
            content["caption"] = caption
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        message = self._incoming(user_id, chat_id, language_code, first_name, content)
        return self._wrap("message", message)

    def media(
        self,
        user_id: int,
        kind: str,
        data: bytes = b"",
        file_name: str | None = None,
        mime_type: str | None = None,
        *,
        language_code: str = "en",
        first_name: str = "Ann",
    ) -> JSONDict:
        """A voice message, an audio or video file, a video note (files registered), or a
        sticker, location, venue or contact, as the Bot API sends them."""
        entry = self.add_file(data or b"\x00media", file_name=file_name, mime_type=mime_type)
        ids = {"file_id": entry.file_id, "file_unique_id": entry.file_unique_id}
        size = {"file_size": entry.file_size}
        bodies: dict[str, Any] = {
            "voice": {**ids, "duration": 3, "mime_type": "audio/ogg", **size},
            "audio": {
                **ids,
                "duration": 60,
                "file_name": file_name,
                "mime_type": mime_type,
                **size,
            },
            "video": {
                **ids,
                "width": 640,
                "height": 480,
                "duration": 9,
                "file_name": file_name,
                "mime_type": mime_type,
                **size,
            },
            "video_note": {**ids, "length": 240, "duration": 5, **size},
            "sticker": {
                **ids,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
            },
            "location": {"latitude": 39.9042, "longitude": 116.4074},
            "contact": {"phone_number": "+8613800000000", "first_name": "Li"},
        }
        body = {key: value for key, value in bodies[kind].items() if value is not None}
        message = self._incoming(user_id, None, language_code, first_name, {kind: body})
        return self._wrap("message", message)

    def edited(self, update: JSONDict, text: str) -> JSONDict:
        """The edited_message update Telegram sends when the user edits that message."""
        message = {**update["message"], "text": text, "edit_date": int(time.time())}
        return self._wrap("edited_message", message)

    # ------------------------------------------------------------------ internals

    def _notify(self) -> None:
        event = self._changed
        self._changed = asyncio.Event()
        if event is not None:
            event.set()

    def _take_update_id(self) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        return update_id

    def _wrap(self, kind: str, payload: JSONDict) -> JSONDict:
        return {"update_id": self._take_update_id(), kind: payload}

    def _next_message_id(self, chat_id: int) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _resolve_chat_id(self, chat_id: int | str) -> int:
        if isinstance(chat_id, int):
            return chat_id
        text = chat_id.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if not text.startswith("@"):
            raise bad_request("chat not found")
        if text not in self._chat_usernames:
            new_id = -1001000000000 - len(self._chat_usernames) - 1
            self._chat_usernames[text] = new_id
            self._chats[new_id] = {
                "id": new_id,
                "type": "channel",
                "title": text[1:],
                "username": text[1:],
            }
        return self._chat_usernames[text]

    def _chat(self, chat_id: int) -> JSONDict:
        if chat_id in self._chats:
            return dict(self._chats[chat_id])
        if chat_id > 0:
            user = self._users.get(chat_id, {})
            return {"id": chat_id, "type": "private", "first_name": user.get("first_name", "User")}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": "Test group"}

    def _incoming(
        self,
        user_id: int,
        chat_id: int | None,
        language_code: str,
        first_name: str,
        content: JSONDict,
    ) -> JSONDict:
        user = self.user(user_id, first_name, language_code)
        chat = user_id if chat_id is None else chat_id
        if chat == user_id and chat not in self._chats:
            self._chats[chat] = {"id": chat, "type": "private", "first_name": first_name}
        message: JSONDict = {
            "message_id": self._next_message_id(chat),
            "from": user,
            "chat": self._chat(chat),
            "date": int(time.time()),
            **content,
        }
        self._messages[(chat, message["message_id"])] = message
        return message

    @staticmethod
    def _document_json(entry: FileEntry) -> JSONDict:
        document: JSONDict = {
            "file_id": entry.file_id,
            "file_unique_id": entry.file_unique_id,
            "file_size": entry.file_size,
        }
        if entry.file_name is not None:
            document["file_name"] = entry.file_name
        if entry.mime_type is not None:
            document["mime_type"] = entry.mime_type
        return document

    def _photo_sizes(self, data: bytes, sizes: int) -> list[JSONDict]:
        dimensions = [(90, 67), (320, 240), (800, 600), (1280, 960), (2560, 1920)]
        chosen = dimensions[: max(1, min(sizes, len(dimensions)))]
        result: list[JSONDict] = []
        for width, height in chosen:
            entry = self.add_file(data, folder="photos")
            result.append(
                {
                    "file_id": entry.file_id,
                    "file_unique_id": entry.file_unique_id,
                    "file_size": entry.file_size,
                    "width": width,
                    "height": height,
                }
            )
        for size in result:
            self._photo_sets[size["file_id"]] = result
        return result

    @staticmethod
    def _scope_key(scope: Any) -> str:
        if not isinstance(scope, dict) or not scope:
            scope = {"type": "default"}
        return json.dumps(scope, sort_keys=True)

    # ------------------------------------------------------------------ HTTP

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        name = request.match_info["method"]
        call = Call(
            method=name, http_method=request.method, encoding="none", time=time.time(), token=token
        )
        self.calls.append(call)
        try:
            if token not in self.tokens:
                raise ApiError(401, "Unauthorized")
            found = self._handlers.get(name.lower())
            if found is None or "/" in name:
                raise ApiError(404, "Not Found")
            canonical, handler = found
            call.method = canonical
            call.params, call.uploads, call.encoding = await read_params(request)
            faults = self._faults.get(canonical.lower())
            if faults:
                call.faulted = True
                return self._fault_response(call, faults.popleft())
            share, chosen = self._random_faults.get(canonical.lower(), (0.0, ()))
            if chosen and self._random.random() < share:
                call.faulted = True
                return self._fault_response(call, self._random.choice(chosen))
            recorded = len(self.records)
            result = handler(_Request(canonical, call.params, call.uploads))
            if asyncio.iscoroutine(result):
                result = await result
            for record in self.records[recorded:]:
                record.token = token
        except ApiError as error:
            call.status, call.response = error.status, error.body()
            self._notify()
            return web.json_response(call.response, status=error.status)
        call.status, call.response = 200, {"ok": True, "result": result}
        drop = self._drops.get(canonical.lower(), 0.0)
        if drop and self._random.random() < drop:
            call.dropped = True
            for record in self.records[recorded:]:
                record.acknowledged = False
            self._notify()
            assert request.transport is not None
            request.transport.abort()  # no answer: the client sees the connection reset
            raise web.HTTPException()  # never sent: the connection is gone
        self._notify()
        return web.json_response(call.response)

    def _fault_response(self, call: Call, fault: _Fault) -> web.StreamResponse:
        if fault.status == 429:
            error = ApiError(
                429,
                fault.description or f"Too Many Requests: retry after {fault.retry_after}",
                {"retry_after": fault.retry_after},
            )
        elif fault.status >= 500:
            error = ApiError(fault.status, fault.description or "Internal Server Error")
        else:
            defaults = {
                400: "Bad Request",
                401: "Unauthorized",
                403: "Forbidden: bot was blocked by the user",
                404: "Not Found",
                409: "Conflict",
            }
            error = ApiError(fault.status, fault.description or defaults.get(fault.status, "Error"))
        call.status, call.response = error.status, error.body()
        self._notify()
        if fault.raw_body is not None:
            return web.Response(status=fault.status, text=fault.raw_body, content_type="text/html")
        return web.json_response(call.response, status=error.status)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] not in self.tokens:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        entry = self._files_by_path.get(request.match_info["path"])
        if entry is None or entry.too_big:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=entry.data, content_type="application/octet-stream")

    # ------------------------------------------------------------------ methods

    def _true(self, req: _Request) -> bool:
        return True

    def _remember_setting(self, req: _Request) -> bool:
        self.settings[req.method] = dict(req.params)
        return True

    def _get_me(self, req: _Request) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            keep = self.pending_updates[offset:]
            gone = self.pending_updates[: len(self.pending_updates) - len(keep)]
            self.confirmed_updates.extend(gone)
            self.pending_updates = list(keep)
            return
        gone = [u for u in self.pending_updates if int(u["update_id"]) < offset]
        if gone:
            self.confirmed_updates.extend(gone)
            self.pending_updates = [
                u for u in self.pending_updates if int(u["update_id"]) >= offset
            ]

    def _deliverable(self, limit: int) -> list[JSONDict]:
        allowed = set(self.allowed_updates or []) or None
        kept: list[JSONDict] = []
        for update in self.pending_updates:
            kind = next((k for k in update if k != "update_id"), "")
            if (allowed is not None and kind not in allowed) or (
                allowed is None and kind in OPT_IN_UPDATES
            ):
                self.dropped_updates.append(update)
            else:
                kept.append(update)
        self.pending_updates = kept
        return kept[:limit]

    async def _get_updates(self, req: _Request) -> list[JSONDict]:
        if self.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = req.integer("offset")
        limit = min(max(req.integer("limit") or 100, 1), 100)
        raw_timeout = req.params.get("timeout") or 0
        if isinstance(raw_timeout, bool) or not isinstance(raw_timeout, int | float):
            raise bad_request("invalid timeout specified")
        timeout = min(max(float(raw_timeout), 0.0), self.max_poll_timeout)
        if "allowed_updates" in req.params:
            allowed = req.params["allowed_updates"]
            if not isinstance(allowed, list):
                raise bad_request("can't parse allowed_updates JSON object")
            self.allowed_updates = [str(a) for a in allowed] or None
        if offset is not None:
            self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.webhook is not None:
                raise ApiError(409, WEBHOOK_CONFLICT)
            if generation != self._poll_generation and not self._closing:
                raise ApiError(409, POLL_CONFLICT)
            ready = self._deliverable(limit)
            remaining = deadline - loop.time()
            if ready or remaining <= 0 or self._closing:
                return [json.loads(json.dumps(u)) for u in ready]
            if self._changed is None:
                self._changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _set_webhook(self, req: _Request) -> bool:
        url = req.text("url") or ""
        if req.flag("drop_pending_updates"):
            self.confirmed_updates.extend(self.pending_updates)
            self.pending_updates = []
        if not url:
            self.webhook = None
            return True
        match = re.match(r"^([a-zA-Z]+)://([^/:]+)(?::(\d+))?", url)
        if not match or match[1].lower() != "https":
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if match[3] and int(match[3]) not in (80, 88, 443, 8443):
            raise bad_request(
                "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
            )
        secret = req.text("secret_token")
        if secret is not None and not _SECRET_RE.match(secret):
            raise bad_request("secret token contains unallowed characters")
        allowed = req.params.get("allowed_updates")
        if isinstance(allowed, list):
            self.allowed_updates = [str(a) for a in allowed] or None
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": allowed if isinstance(allowed, list) else None,
            "max_connections": req.integer("max_connections") or 40,
            "ip_address": req.text("ip_address"),
            "has_certificate": "certificate" in req.uploads,
        }
        self._poll_generation += 1  # a waiting getUpdates is ended by the webhook
        return True

    def _delete_webhook(self, req: _Request) -> bool:
        self.webhook = None
        if req.flag("drop_pending_updates"):
            self.confirmed_updates.extend(self.pending_updates)
            self.pending_updates = []
        return True

    def _get_webhook_info(self, req: _Request) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": bool(self.webhook and self.webhook["has_certificate"]),
            "pending_update_count": len(self.pending_updates),
        }
        if self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook["ip_address"]:
                info["ip_address"] = self.webhook["ip_address"]
        if self.allowed_updates:
            info["allowed_updates"] = list(self.allowed_updates)
        return info

    def _chat_param(self, req: _Request) -> int:
        value = req.params.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise bad_request("chat not found")
        return self._resolve_chat_id(value)

    def _check_markup(self, req: _Request) -> JSONDict | None:
        markup = req.params.get("reply_markup")
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                )
            for button in (b for row in rows for b in row):
                if not isinstance(button, dict):
                    raise bad_request(
                        "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                    )
                if not isinstance(button.get("text"), str):
                    raise bad_request(
                        'can\'t parse inline keyboard button: Field "text" must be of type String'
                    )
                if set(button) == {"text"}:
                    raise bad_request(
                        "can't parse inline keyboard button: Text buttons are unallowed in the "
                        "inline keyboard"
                    )
                if "callback_data" in button:
                    data = button["callback_data"]
                    size = len(data.encode("utf-8")) if isinstance(data, str) else 0
                    if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                        raise bad_request("BUTTON_DATA_INVALID")
                if "url" in button and not str(button["url"]).strip():
                    raise bad_request("BUTTON_URL_INVALID")
        elif "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    'field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays'
                )
            for button in (b for row in rows for b in row):
                if not isinstance(button, str | dict) or (
                    isinstance(button, dict) and not isinstance(button.get("text"), str)
                ):
                    raise bad_request("can't parse keyboard button")
        elif not ("remove_keyboard" in markup or "force_reply" in markup):
            raise bad_request("can't parse reply keyboard markup JSON object")
        return markup

    @staticmethod
    def _shown_markup(markup: JSONDict | None) -> JSONDict | None:
        """Messages only carry inline keyboards (reply keyboards live in the client)."""
        if markup and markup.get("inline_keyboard"):
            return {"inline_keyboard": markup["inline_keyboard"]}
        return None

    def _new_bot_message(self, chat_id: int, content: JSONDict, req: _Request) -> JSONDict:
        message: JSONDict = {
            "message_id": self._next_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            **content,
        }
        reply_to = req.integer("reply_to_message_id")
        parameters = req.params.get("reply_parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("message_id"), int):
            reply_to = parameters["message_id"]
        if reply_to is not None:
            replied = self._messages.get((chat_id, reply_to))
            if replied is None and not (
                isinstance(parameters, dict) and parameters.get("allow_sending_without_reply")
            ):
                raise bad_request("message to be replied not found")
            if replied is not None:
                message["reply_to_message"] = dict(replied)
        self._messages[(chat_id, message["message_id"])] = message
        return message

    def _record(
        self, req: _Request, chat_id: int, message: JSONDict, text: str | None, file: Any = None
    ) -> None:
        self.records.append(
            Sent(
                method=req.method,
                chat_id=chat_id,
                message_id=int(message["message_id"]),
                text=text,
                parse_mode=req.text("parse_mode"),
                reply_markup=req.params.get("reply_markup") or None,
                params=dict(req.params),
                message=json.loads(json.dumps(message)),
                file=file,
            )
        )

    def _send_message(self, req: _Request) -> JSONDict:
        chat_id = self._chat_param(req)
        text = req.text("text")
        if not text:
            raise bad_request("message text is empty")
        shown = text if req.has("entities") else visible_text(text, req.text("parse_mode"))
        if not shown.strip():
            raise bad_request("message text is empty")
        if utf16_len(shown) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        markup = self._check_markup(req)
        content: JSONDict = {"text": shown}
        if isinstance(req.params.get("entities"), list):
            content["entities"] = req.params["entities"]
        if shown_markup := self._shown_markup(markup):
            content["reply_markup"] = shown_markup
        message = self._new_bot_message(chat_id, content, req)
        self._record(req, chat_id, message, text)
        return message

    def _editable(self, req: _Request) -> tuple[int, JSONDict]:
        if req.has("inline_message_id"):
            raise bad_request("inline messages are not supported by the fake")
        chat_id = self._chat_param(req)
        message_id = req.integer("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise bad_request("message can't be edited")
        return chat_id, message

    def _edit_message_text(self, req: _Request) -> JSONDict:
        chat_id, message = self._editable(req)
        text = req.text("text")
        if not text:
            raise bad_request("message text is empty")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        shown = text if req.has("entities") else visible_text(text, req.text("parse_mode"))
        if not shown.strip():
            raise bad_request("message text is empty")
        if utf16_len(shown) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        # Without reply_markup the edit removes the inline keyboard, as on the real API.
        markup = self._shown_markup(self._check_markup(req))
        if shown == message["text"] and markup == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        message["text"] = shown
        message["edit_date"] = int(time.time())
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        self._record(req, chat_id, message, text)
        return message

    def _edit_message_reply_markup(self, req: _Request) -> JSONDict:
        chat_id, message = self._editable(req)
        markup = self._shown_markup(self._check_markup(req))
        if markup == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        self._record(req, chat_id, message, message.get("text", message.get("caption")))
        return message

    def _delete_message(self, req: _Request) -> bool:
        chat_id = self._chat_param(req)
        message_id = req.integer("message_id", required=True)
        assert message_id is not None
        if self._messages.pop((chat_id, message_id), None) is None:
            raise bad_request("message to delete not found")
        self.deleted.append((chat_id, message_id))
        return True

    def _answer_callback_query(self, req: _Request) -> bool:
        query_id = req.text("callback_query_id")
        if not query_id or query_id not in self._callback_ids:
            raise bad_request(QUERY_INVALID.removeprefix("Bad Request: "))
        self.callback_answers.append(
            CallbackAnswer(
                callback_query_id=query_id,
                text=req.text("text"),
                show_alert=req.flag("show_alert"),
                url=req.text("url"),
                cache_time=req.integer("cache_time"),
            )
        )
        return True

    def _send_chat_action(self, req: _Request) -> bool:
        chat_id = self._chat_param(req)
        action = req.text("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append(ChatAction(chat_id, action))
        return True

    def _input_file(self, req: _Request, name: str) -> tuple[FileEntry | None, Upload | None]:
        """(known file, None) for a file_id or URL, (None, upload) for an uploaded file."""
        value = req.params.get(name)
        upload = req.uploads.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = req.uploads.get(value.removeprefix("attach://"))
            if upload is None:
                raise bad_request(f"there is no {name} in the request")
        if upload is not None:
            if not upload.data:
                raise bad_request("file must be non-empty")
            return None, upload
        if isinstance(value, str) and value:
            if value in self.files:
                return self.files[value], None
            if value.startswith(("http://", "https://")):
                base = value.rstrip("/").rsplit("/", 1)[-1] or "file"
                return self.add_file(
                    b"", file_name=base, mime_type=mimetypes.guess_type(base)[0]
                ), None
            raise bad_request("wrong file identifier/HTTP URL specified")
        raise bad_request(f"there is no {name} in the request")

    def _caption(self, req: _Request) -> tuple[str | None, JSONDict]:
        caption = req.text("caption")
        if not caption:
            return None, {}
        shown = (
            caption
            if req.has("caption_entities")
            else visible_text(caption, req.text("parse_mode"))
        )
        if utf16_len(shown) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        return caption, {"caption": shown}

    def _send_document(self, req: _Request) -> JSONDict:
        chat_id = self._chat_param(req)
        known, upload = self._input_file(req, "document")
        caption, content = self._caption(req)
        markup = self._check_markup(req)
        if upload is not None:
            file_name = upload.filename or "document"
            mime = mimetypes.guess_type(file_name)[0] or upload.content_type
            known = self.add_file(upload.data, file_name=file_name, mime_type=mime)
        assert known is not None
        content["document"] = self._document_json(known)
        if shown := self._shown_markup(markup):
            content["reply_markup"] = shown
        message = self._new_bot_message(chat_id, content, req)
        self._record(req, chat_id, message, caption, known)
        return message

    def _send_photo(self, req: _Request) -> JSONDict:
        chat_id = self._chat_param(req)
        known, upload = self._input_file(req, "photo")
        caption, content = self._caption(req)
        markup = self._check_markup(req)
        if upload is not None:
            sizes = self._photo_sizes(upload.data, 3)
        else:
            assert known is not None
            sizes = self._photo_sets.get(known.file_id) or self._photo_sizes(known.data, 1)
        content["photo"] = [dict(s) for s in sizes]
        if shown := self._shown_markup(markup):
            content["reply_markup"] = shown
        message = self._new_bot_message(chat_id, content, req)
        self._record(req, chat_id, message, caption, self.files[sizes[-1]["file_id"]])
        return message

    def _get_file(self, req: _Request) -> JSONDict:
        file_id = req.text("file_id")
        if not file_id:
            raise bad_request("file_id is empty")
        entry = self.files.get(file_id)
        if entry is None:
            raise bad_request("invalid file_id")
        if self.local_files is not None:
            path = self.local_files / entry.file_unique_id
            path.write_bytes(entry.data)
            return {**entry.as_file(), "file_path": str(path.resolve())}
        if entry.too_big:
            raise bad_request("file is too big")
        return entry.as_file()

    def _language(self, req: _Request) -> str:
        language = req.text("language_code") or ""
        if language and not _LANGUAGE_RE.match(language):
            raise bad_request("invalid language code specified")
        return language

    def _set_my_commands(self, req: _Request) -> bool:
        commands = req.params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands")
        cleaned: list[JSONDict] = []
        for item in commands:
            if not isinstance(item, dict):
                raise bad_request("can't parse BotCommand")
            command = item.get("command")
            description = item.get("description")
            if not isinstance(command, str) or not _COMMAND_RE.match(command):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise bad_request("command description must be non-empty")
            cleaned.append({"command": command, "description": description})
        key = (self._scope_key(req.params.get("scope")), self._language(req))
        if cleaned:
            self.command_sets[key] = cleaned
        else:
            self.command_sets.pop(key, None)
        return True

    def _get_my_commands(self, req: _Request) -> list[JSONDict]:
        key = (self._scope_key(req.params.get("scope")), self._language(req))
        return [dict(c) for c in self.command_sets.get(key, [])]

    def _delete_my_commands(self, req: _Request) -> bool:
        key = (self._scope_key(req.params.get("scope")), self._language(req))
        self.command_sets.pop(key, None)
        return True
