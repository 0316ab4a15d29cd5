"""CPU per Telegram update, end to end through each adapter, against a bare echo bot.

For python-telegram-bot and for aiogram, simulated users go through the first steps of the
intake as Telegram updates (the update JSON Telegram would send): the library parses the
update, `TelegramChannel.receive` stores it through the engine and SQLite (a temporary
DATA_DIR, the real wiring from `bot.app.build_app`), and `deliver_now` drains the outbox into
the library's sendMessage / editMessageText / answerCallbackQuery. Only the HTTP transport is
replaced: a fake Bot API answers in-process with valid JSON, so no network is timed. Users
press the buttons the bot really sent (the callback data captured from the fake's
sendMessage) and type text where a question takes text.

In the same process, a bare echo bot of the same library (PTB's Application, aiogram's
Dispatcher) parses, dispatches and replies to the very same updates over the same fake
transport. The figure of merit is the ratio of updates per CPU second, Huizhen / echo.

    .venv/bin/python benchmarks/telegram.py                 # 300 users x 36 steps
    .venv/bin/python benchmarks/telegram.py --quick         # 40 users
    .venv/bin/python benchmarks/telegram.py --users 100 --steps 15
    .venv/bin/python benchmarks/telegram.py --quick --profile /tmp/telegram.prof

36 steps take a user from /start through the consents, who the patient is and their medical
background (typed answers and buttons), the reason toggles (edited in place), the fit questions,
the area, the typed diagnosis, daily activity (cancer), the main worry and the questions, to the
typed timeline lines. A question that takes only text has no buttons to say which it is: the
user reads the step the bot stored, as it would read the question's words.
`--profile` also prints, per library, where Huizhen's CPU goes: the cost of the
asyncio.to_thread hops (threaded vs in place, taking turns), timers around the main
functions (no profiler), and a cProfile summary by area; with a path it keeps the stats.

CPU is `time.process_time()` (the whole process, so the worker threads that
`asyncio.to_thread` uses are counted); the fake Bot API's own work (building Telegram's
answer) is measured separately and left out of both sides. The last line printed is one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# This file is called telegram.py: its folder goes to the end of the path (a stable sort), so
# that `import telegram` finds python-telegram-bot, not this script.
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.types import CallbackQuery
from aiogram.types import Message as AiogramMessage
from aiogram.types import Update as AiogramUpdate
from telegram import Bot as PtbBot
from telegram import Update as PtbUpdate
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters
from telegram.request import BaseRequest, RequestData

from benchmarks.patient_script import DIAGNOSES, FIXED_ANSWERS, TIMELINE_LINES, TYPED_QUESTION
from bot.app import App, build_app
from bot.channels.telegram_base import RateLimiter, TelegramClient, decode_callback
from bot.channels.telegram_runtime import TelegramChannel
from bot.config import load_settings
from bot.runner import telegram_client
from conversations.events import CoordinatorNotice, Inbound, InboundKind, Outbound
from conversations.i18n import SUPPORTED_LOCALES, translator
from conversations.state import ConversationKey
from handlers.updates.delivery import deliver_pending

LIBRARIES = ("ptb", "aiogram")
DEFAULT_USERS = 300
QUICK_USERS = 40
DEFAULT_STEPS = 36
MAX_STEPS = 42  # every simulated user is still in the records checklist at 42
DEFAULT_BATCH = 100
WARMUP_USERS = 6
# Users replayed straight through the pipeline to check where each one ends (spread evenly).
REFERENCE_USERS = 100
PROFILE_USERS = 40

BOT_ID = 7000000001
TOKEN = f"{BOT_ID}:AAbenchmarkbenchmarkbenchmarkbench"
API_ROOT = "https://api.telegram.invalid"
FIRST_USER_ID = 100_000_000
CHAT_INSTANCE = "-4242424242424242"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Huizhen", "username": "huizhen_bot"}

JSONDict = dict[str, Any]


class BenchmarkError(RuntimeError):
    """A simulated user met something the script does not expect."""


# --- update JSON, shaped as Telegram sends it ---------------------------------------------


def user_json(user_id: int) -> JSONDict:
    return {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": "en"}


def private_chat(user_id: int) -> JSONDict:
    return {"id": user_id, "type": "private", "first_name": "Ann"}


def text_update(update_id: int, user_id: int, message_id: int, text: str) -> JSONDict:
    message: JSONDict = {
        "message_id": message_id,
        "from": user_json(user_id),
        "chat": private_chat(user_id),
        "date": int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        command = text.split(" ", 1)[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"update_id": update_id, "message": message}


def callback_update(update_id: int, user_id: int, data: str, message: JSONDict) -> JSONDict:
    """A press of the inline button carrying `data` on the bot's `message`, as it is now."""
    query = {
        "id": f"{user_id}{update_id:012d}",
        "from": user_json(user_id),
        "message": message,
        "chat_instance": CHAT_INSTANCE,
        "data": data,
    }
    return {"update_id": update_id, "callback_query": query}


# --- the fake Bot API (the far end of the replaced transport) -----------------------------


@dataclass
class FakeBotApi:
    """Answers Bot API calls in-process with the JSON Telegram would send. Receives the
    parameters as the real transports would put them on the wire (all strings, objects as
    JSON). Its own CPU time is counted in `cpu`, so it can be left out of the bots' cost."""

    calls: Counter[str] = field(default_factory=Counter)
    # The bot's latest message per chat (sent or edited); replaced, never mutated, so an
    # update that carries an earlier version keeps it.
    latest: dict[int, JSONDict] = field(default_factory=dict)
    messages: dict[tuple[int, int], JSONDict] = field(default_factory=dict)
    replies: Counter[int] = field(default_factory=Counter)
    next_id: Counter[int] = field(default_factory=Counter)
    # Telegram numbers the updates of a bot; the bot drops an update_id it has seen.
    last_update_id: int = 0
    cpu: float = 0.0

    def call(self, method: str, form: dict[str, str]) -> str:
        started = time.process_time()
        self.calls[method] += 1
        result: Any = True
        if method == "sendMessage":
            result = self._send(form)
        elif method == "editMessageText":
            result = self._edit(form)
        elif method == "getMe":
            result = {**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False}
            result["supports_inline_queries"] = False
        body = json.dumps({"ok": True, "result": result}, ensure_ascii=False)
        self.cpu += time.process_time() - started
        return body

    def _send(self, form: dict[str, str]) -> JSONDict:
        chat_id = int(form["chat_id"])
        self.next_id[chat_id] += 1
        message: JSONDict = {
            "message_id": 1_000_000 + self.next_id[chat_id],
            "from": BOT_USER,
            "chat": private_chat(chat_id),
            "date": int(time.time()),
            "text": form["text"],
        }
        if "reply_markup" in form:
            message["reply_markup"] = json.loads(form["reply_markup"])
        return self._keep(chat_id, message)

    def _edit(self, form: dict[str, str]) -> JSONDict:
        chat_id = int(form["chat_id"])
        old = self.messages[(chat_id, int(form["message_id"]))]
        message = {k: v for k, v in old.items() if k != "reply_markup"}
        message["text"] = form["text"]
        message["edit_date"] = int(time.time())
        if "reply_markup" in form:
            message["reply_markup"] = json.loads(form["reply_markup"])
        return self._keep(chat_id, message)

    def _keep(self, chat_id: int, message: JSONDict) -> JSONDict:
        self.messages[(chat_id, message["message_id"])] = message
        self.latest[chat_id] = message
        self.replies[chat_id] += 1
        return message


class PtbFakeRequest(BaseRequest):
    """python-telegram-bot's transport, answered by the fake instead of HTTP. The parameters
    are encoded as HTTPXRequest encodes them (`json_parameters`)."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        form = request_data.json_parameters if request_data is not None else {}
        return 200, self.api.call(url.rsplit("/", 1)[1], form).encode()


class AiogramFakeSession(BaseSession):
    """aiogram's session, answered by the fake instead of HTTP. The parameters are prepared
    as AiohttpSession.build_form_data prepares them, and the answer goes through
    `check_response` as a real one does."""

    def __init__(self, api: FakeBotApi) -> None:
        super().__init__()
        self.fake = api

    async def close(self) -> None:
        pass

    async def make_request(self, bot: AiogramBot, method: Any, timeout: int | None = None) -> Any:
        files: dict[str, Any] = {}
        form: dict[str, str] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:
                form[key] = prepared
        raw = self.fake.call(method.__api_method__, form)
        response = self.check_response(bot=bot, method=method, status_code=200, content=raw)
        return response.result

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError("no file downloads in this benchmark")
        yield b""  # pragma: no cover


def ptb_bot(api: FakeBotApi) -> PtbBot:
    """A Bot like PtbClient's, on the fake transport."""
    return PtbBot(
        TOKEN,
        base_url=f"{API_ROOT}/bot",
        base_file_url=f"{API_ROOT}/file/bot",
        request=PtbFakeRequest(api),
        get_updates_request=PtbFakeRequest(api),
    )


async def fake_transport(client: TelegramClient, api: FakeBotApi) -> None:
    """Swap the client's HTTP transport for the fake."""
    if client.library == "ptb":
        client.bot = ptb_bot(api)  # type: ignore[attr-defined]
    else:
        bot: AiogramBot = client.bot  # type: ignore[attr-defined]
        await bot.session.close()  # never opened: nothing was sent through it
        bot.session = AiogramFakeSession(api)


# --- simulated patients -------------------------------------------------------------------


@dataclass
class SimUser:
    """One patient: reads the bot's latest question and answers it, as engine.py's do."""

    index: int
    user_id: int
    step: str = ""
    reasons: int = 0
    questions: int = 0
    timeline: int = 0
    sent: int = 0

    def answer(self, prompt_ref: str, option_ids: tuple[str, ...]) -> tuple[InboundKind, str]:
        """(TEXT, text) or (CHOICE, option id) for the question asked; (COMMAND, "start")
        first. `prompt_ref` names the question: the buttons' for a question with buttons, the
        step the bot stored for one that takes only text."""
        self.sent += 1
        if self.sent == 1:
            return InboundKind.COMMAND, "start"
        if not prompt_ref:
            raise BenchmarkError(f"user {self.index}: no question asked after {self.step}")
        self.step = step = prompt_ref.partition(".")[0]
        choice = self._choose(step, prompt_ref, option_ids)
        if choice.startswith("text:"):
            return InboundKind.TEXT, choice[5:]
        if choice not in option_ids:
            raise BenchmarkError(
                f"user {self.index}: {choice!r} not offered at {prompt_ref}: {option_ids}"
            )
        return InboundKind.CHOICE, choice

    def _choose(self, step: str, prompt_ref: str, ids: tuple[str, ...]) -> str:
        if step in FIXED_ANSWERS:
            return FIXED_ANSWERS[step]
        if step == "fit_reasons":
            if self.reasons < 2 + self.index % 3:
                self.reasons += 1
                reasons = [i for i in ids if i != "done"]
                return reasons[(self.index + self.reasons * 3) % len(reasons)]
            return "done"
        if step.startswith("fit_"):
            return ids[(self.index + len(step)) % len(ids)]
        if step in ("area", "oncology_kind"):
            return ids[self.index % len(ids)]
        if step == "diagnosis":
            return "text:" + DIAGNOSES[self.index % len(DIAGNOSES)]
        if step == "questions":
            if self.questions >= 3:
                return "done"
            self.questions += 1
            suggestions = [i for i in ids if i.startswith("q_")]
            if (self.index % 4 == 0 and self.questions == 3) or not suggestions:
                return "text:" + TYPED_QUESTION
            return suggestions[0]
        if step == "timeline":
            if self.timeline < len(TIMELINE_LINES):
                self.timeline += 1
                return "text:" + TIMELINE_LINES[self.timeline - 1]
            return "done"
        if step == "records":
            cursor = int(prompt_ref.partition(".")[2] or 0)
            return "later" if (self.index + cursor) % 2 else "not_applicable"
        raise BenchmarkError(f"user {self.index}: unexpected step {prompt_ref!r}")


def shown_question(message: JSONDict | None) -> tuple[str, tuple[str, ...], dict[str, str]]:
    """The prompt, the option ids, and option id -> callback data of the bot's message."""
    if message is None:
        return "", (), {}
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    prompt_ref, data_of = "", {}
    for row in rows:
        for button in row:
            data = button["callback_data"]
            ref, choice = decode_callback(data)
            prompt_ref = prompt_ref or ref
            data_of[choice] = data
    return prompt_ref, tuple(data_of), data_of


@dataclass
class Script:
    """Drives the users round-robin in batches and builds each one's next update."""

    bot: Huizhen
    users: list[SimUser]
    steps: int
    message_id: Counter[int] = field(default_factory=Counter)
    updates: list[JSONDict] = field(default_factory=list)

    def rounds(self, batch: int) -> list[list[SimUser]]:
        order: list[list[SimUser]] = []
        for first in range(0, len(self.users), batch):
            group = self.users[first : first + batch]
            order += [group] * self.steps
        return order

    def next_update(self, user: SimUser) -> JSONDict:
        api = self.bot.api
        shown = api.latest.get(user.user_id)
        prompt_ref, ids, data_of = shown_question(shown)
        if not ids and user.sent:
            # A question that takes only text carries no callback data: the step the bot
            # stored says what it asked (read outside the measured update).
            prompt_ref = self.bot.asked(user.user_id)
        kind, value = user.answer(prompt_ref, ids)
        api.last_update_id += 1
        update_id = api.last_update_id
        if kind == InboundKind.CHOICE:
            assert shown is not None
            update = callback_update(update_id, user.user_id, data_of[value], shown)
        else:
            self.message_id[user.user_id] += 1
            text = "/start" if kind == InboundKind.COMMAND else value
            update = text_update(update_id, user.user_id, self.message_id[user.user_id], text)
        self.updates.append(update)
        return update


# --- the measured paths -------------------------------------------------------------------


@dataclass
class Measure:
    updates: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    fake_cpu: float = 0.0

    def add(self, cpu: float, wall: float, fake_cpu: float) -> None:
        self.updates += 1
        self.cpu += cpu
        self.wall += wall
        self.fake_cpu += fake_cpu

    @property
    def net_cpu(self) -> float:
        """CPU seconds of the bot itself: the fake Bot API's answers left out."""
        return self.cpu - self.fake_cpu

    @property
    def per_s(self) -> float:
        return self.updates / self.net_cpu

    @property
    def us(self) -> float:
        return self.net_cpu / self.updates * 1e6

    @property
    def wall_per_s(self) -> float:
        return self.updates / self.wall


def fast_limiter() -> RateLimiter:
    """Telegram's pace (30 messages a second) would make this a test of sleeping."""
    return RateLimiter(per_chat=(1e9, 1e9), per_group=(1e9, 1e9), overall=(1e9, 1e9))


@dataclass
class Huizhen:
    app: App
    client: TelegramClient
    channel: TelegramChannel
    api: FakeBotApi

    def asked(self, user_id: int) -> str:
        """The step the bot stored for this user: the question it asked last."""
        state = self.app.pipeline.state_of(ConversationKey("telegram", str(user_id)))
        return state.step if state is not None else ""


async def start_huizhen(library: str, data_dir: Path) -> Huizhen:
    settings = load_settings(
        {
            "DATA_DIR": str(data_dir),
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": API_ROOT,
            "TELEGRAM_LIBRARY": library,
        }
    )
    app = build_app(settings)
    api = FakeBotApi()
    client = telegram_client(settings)
    await fake_transport(client, api)
    channel = TelegramChannel(app, client, fast_limiter())
    # What channel.start does, without the polling and delivery tasks: this script drives
    # receive() and deliver_now() itself, one update at a time.
    await client.start()
    await channel.set_commands()
    await client.delete_webhook()
    return Huizhen(app, client, channel, api)


async def huizhen_update(bot: Huizhen, data: JSONDict, measure: Measure | None) -> None:
    """One update end to end: parse, store through the engine, answer, deliver the outbox."""
    client, channel = bot.client, bot.channel
    fake_before = bot.api.cpu
    c0, w0 = time.process_time(), time.perf_counter()
    incoming = client.describe(client.parse_update(data))
    await channel.receive([incoming])
    await channel.deliver_now()
    c1, w1 = time.process_time(), time.perf_counter()
    if measure is not None:
        measure.add(c1 - c0, w1 - w0, bot.api.cpu - fake_before)


async def play(bot: Huizhen, script: Script, group: list[SimUser], measure: Measure) -> None:
    """One round: each user of the group sends its next update."""
    for user in group:
        await huizhen_update(bot, script.next_update(user), measure)


async def run_huizhen(
    bot: Huizhen, users: list[SimUser], steps: int, batch: int, measure: Measure | None
) -> Script:
    script = Script(bot, users, steps)
    for group in script.rounds(batch):
        for user in group:
            await huizhen_update(bot, script.next_update(user), measure)
    return script


Feed = Callable[[JSONDict], Awaitable[Any]]


async def ptb_echo(api: FakeBotApi) -> tuple[Feed, Callable[[], Awaitable[None]]]:
    """A bare python-telegram-bot echo bot: Application, two handlers, the same Bot."""

    async def echo(update: PtbUpdate, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        await update.effective_chat.send_message(update.effective_message.text or "?")

    async def pressed(update: PtbUpdate, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and update.effective_chat is not None
        await query.answer()
        await update.effective_chat.send_message(query.data or "?")

    application = Application.builder().bot(ptb_bot(api)).updater(None).build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.add_handler(CallbackQueryHandler(pressed))
    await application.initialize()

    async def feed(data: JSONDict) -> None:
        await application.process_update(PtbUpdate.de_json(data, application.bot))

    return feed, application.shutdown


async def aiogram_echo(api: FakeBotApi) -> tuple[Feed, Callable[[], Awaitable[None]]]:
    """A bare aiogram echo bot: Dispatcher, two handlers without (synchronous) filters."""
    bot = AiogramBot(TOKEN, session=AiogramFakeSession(api))
    dp = Dispatcher()

    async def echo(message: AiogramMessage) -> None:
        await message.answer(message.text or "?")

    async def pressed(query: CallbackQuery) -> None:
        await query.answer()
        assert query.message is not None
        await bot.send_message(query.message.chat.id, query.data or "?")

    dp.message.register(echo)
    dp.callback_query.register(pressed)
    await bot.get_me()

    async def feed(data: JSONDict) -> None:
        await dp.feed_update(bot, AiogramUpdate.model_validate(data, context={"bot": bot}))

    async def close() -> None:
        await bot.session.close()

    return feed, close


async def echo_update(feed: Feed, data: JSONDict, api: FakeBotApi, measure: Measure) -> None:
    fake_before = api.cpu
    c0, w0 = time.process_time(), time.perf_counter()
    await feed(data)
    c1, w1 = time.process_time(), time.perf_counter()
    measure.add(c1 - c0, w1 - w0, api.cpu - fake_before)


# --- the reference: the same users straight through the pipeline --------------------------


@dataclass
class Capture:
    """A ReplySender that remembers each chat's latest question, as the fake does."""

    shown: dict[str, Outbound] = field(default_factory=dict)

    async def send(self, chat_key: str, message: Outbound) -> str | None:
        self.shown[chat_key] = message
        return None

    async def notify(self, notice: CoordinatorNotice) -> None:
        pass


def reference_sample(users: int) -> list[int]:
    if users <= REFERENCE_USERS:
        return list(range(users))
    step = (users - 1) / (REFERENCE_USERS - 1)
    return sorted({round(n * step) for n in range(REFERENCE_USERS)})


async def reference(indices: list[int], steps: int, data_dir: Path) -> dict[int, tuple[str, str]]:
    """User index -> (prompt, text) of the last question, the same users without Telegram."""
    app = build_app(load_settings({"DATA_DIR": str(data_dir)}))
    capture = Capture()
    expected: dict[int, tuple[str, str]] = {}
    try:
        for index in indices:
            user = SimUser(index, FIRST_USER_ID + index)
            key = str(user.user_id)
            prompt_ref = ""
            ids: tuple[str, ...] = ()
            for n in range(steps):
                kind, value = user.answer(prompt_ref, ids)
                fields = {"command": "start"} if kind == InboundKind.COMMAND else {}
                if kind == InboundKind.TEXT:
                    fields = {"text": value}
                if kind == InboundKind.CHOICE:
                    fields = {"choice_id": value, "prompt_ref": prompt_ref}
                inbound = Inbound(
                    channel="telegram",
                    user_key=key,
                    chat_key=key,
                    update_key=f"ref:{index}:{n}",
                    kind=kind,
                    language_hint="en",
                    **fields,
                )
                app.pipeline.handle(inbound)
                await deliver_pending(app.outbox, {"telegram": capture}, capture)
                shown = capture.shown[key]
                ids = tuple(option.id for option in shown.options)
                prompt_ref = shown.prompt_ref
            last = capture.shown[key]
            expected[index] = (last.prompt_ref if last.options else "", last.text)
    finally:
        app.close()
    return expected


def check(
    library: str,
    bot: Huizhen,
    script: Script,
    echo_api: FakeBotApi,
    expected: dict[int, tuple[str, str]],
) -> list[str]:
    """What is wrong with the replies Huizhen and the echo bot rendered (empty: all good)."""
    problems: list[str] = []
    api, updates = bot.api, len(script.updates)
    rendered = api.calls["sendMessage"] + api.calls["editMessageText"]
    callbacks = sum(1 for u in script.updates if "callback_query" in u)
    if rendered < updates:
        problems.append(f"{library}: {rendered} messages rendered for {updates} updates")
    if api.calls["answerCallbackQuery"] != callbacks:
        problems.append(
            f"{library}: {api.calls['answerCallbackQuery']} presses answered of {callbacks}"
        )
    if bot.app.outbox.pending():
        problems.append(f"{library}: the outbox is not empty")
    for user in script.users:
        if api.replies[user.user_id] < script.steps:
            problems.append(f"{library}: user {user.index} got {api.replies[user.user_id]} replies")
        prompt_ref, _, _ = shown_question(api.latest.get(user.user_id))
        text = (api.latest.get(user.user_id) or {}).get("text", "")
        if not text:
            problems.append(f"{library}: user {user.index} was shown no question")
        want = expected.get(user.index)
        if want is not None and (prompt_ref, text) != want:
            problems.append(
                f"{library}: user {user.index} ends at {prompt_ref!r} {text[:40]!r}, "
                f"expected {want[0]!r} {want[1][:40]!r}"
            )
    if echo_api.calls["sendMessage"] != updates:
        problems.append(f"{library} echo: {echo_api.calls['sendMessage']} replies of {updates}")
    if echo_api.calls["answerCallbackQuery"] != callbacks:
        problems.append(f"{library} echo: {echo_api.calls['answerCallbackQuery']} answers")
    return problems[:20]


# --- one library ----------------------------------------------------------------------------


@dataclass
class LibraryResult:
    library: str
    huizhen: Measure
    echo: Measure
    script: Script
    requests: Counter[str]
    problems: list[str]

    @property
    def ratio(self) -> float:
        return self.huizhen.per_s / self.echo.per_s


def make_users(first: int, count: int) -> list[SimUser]:
    return [SimUser(i, FIRST_USER_ID + first + i) for i in range(count)]


async def bench_library(
    library: str,
    users: int,
    steps: int,
    batch: int,
    tmp: Path,
    expected: dict[int, tuple[str, str]],
) -> LibraryResult:
    bot = await start_huizhen(library, tmp / f"{library}-data")
    echo_api = FakeBotApi()
    feed, close = await (ptb_echo if library == "ptb" else aiogram_echo)(echo_api)
    try:
        # Warm-up (caches, first-call imports), not measured; its users are kept apart.
        warm = await run_huizhen(bot, make_users(10_000_000, WARMUP_USERS), steps, batch, None)
        for data in warm.updates:
            await echo_update(feed, data, echo_api, Measure())
        echo_api.calls.clear()
        requests_before = Counter(bot.api.calls)

        # Huizhen and the echo bot take turns, a round of updates each, so that whatever
        # else the machine is doing weighs on both alike.
        huizhen, echo = Measure(), Measure()
        script = Script(bot, make_users(0, users), steps)
        gc.collect()
        for group in script.rounds(batch):
            first = len(script.updates)
            for user in group:
                await huizhen_update(bot, script.next_update(user), huizhen)
            for data in script.updates[first:]:
                await echo_update(feed, data, echo_api, echo)
        requests = Counter(bot.api.calls)
        requests.subtract(requests_before)
        bot.api.calls = requests
        problems = check(library, bot, script, echo_api, expected)
    finally:
        await close()
        await bot.client.close()
        bot.app.close()
    return LibraryResult(library, huizhen, echo, script, requests, problems)


# --- profile --------------------------------------------------------------------------------


async def inline_threads(body: Callable[[], Awaitable[Any]]) -> Any:
    """Run `body` with asyncio.to_thread calling its function in place: cProfile sees only
    the thread it runs in, and the difference from the threaded run is the hops' cost."""
    original = asyncio.to_thread

    async def in_place(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    asyncio.to_thread = in_place
    try:
        return await body()
    finally:
        asyncio.to_thread = original


@dataclass
class Timers:
    """CPU seconds spent in chosen functions, by wrapping them on their instances (no
    profiler, so no distortion); `process_time` counts the worker thread too, and the event
    loop is idle while the worker runs."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    undo: list[Callable[[], None]] = field(default_factory=list)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        seconds = self.seconds

        if asyncio.iscoroutinefunction(original):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.process_time()
                try:
                    return await original(*args, **kwargs)
                finally:
                    seconds[label] += time.process_time() - started

            setattr(owner, name, timed_async)
        else:

            def timed(*args: Any, **kwargs: Any) -> Any:
                started = time.process_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    seconds[label] += time.process_time() - started

            setattr(owner, name, timed)
        if isinstance(owner, type(sys)):  # a module: put the function back
            self.undo.append(lambda: setattr(owner, name, original))
        else:  # an instance: drop the shadowing attribute
            self.undo.append(lambda: delattr(owner, name))

    def restore(self) -> None:
        while self.undo:
            self.undo.pop()()


# (label, indent) in the order printed; the labels name what Timers.wrap measured.
PHASES = (
    ("client.parse_update (library)", ""),
    ("client.describe -> Inbound", ""),
    ("channel.receive", ""),
    ("pipeline.handle (worker thread)", "  "),
    ("store: BEGIN, record update_id, COMMIT", "    "),
    ("store: load + parse the state", "    "),
    ("engine.handle (the conversation)", "    "),
    ("store: save the state + outbox", "    "),
    ("client.answer_callback (library)", "  "),
    ("channel.deliver_now", ""),
    ("outbox.claim (worker thread)", "  "),
    ("client.send_text (library)", "  "),
    ("outbox.mark_sent (worker thread)", "  "),
)


def install_timers(bot: Huizhen) -> Timers:
    import conversations.engine

    timers = Timers()
    client, app, store = bot.client, bot.app, bot.app.pipeline.store
    timers.wrap(client, "parse_update", "client.parse_update (library)")
    timers.wrap(client, "describe", "client.describe -> Inbound")
    timers.wrap(bot.channel, "receive", "channel.receive")
    timers.wrap(app.pipeline, "handle", "pipeline.handle (worker thread)")
    timers.wrap(store, "_load_state", "store: load + parse the state")
    timers.wrap(conversations.engine, "handle", "engine.handle (the conversation)")
    timers.wrap(store, "_write", "store: save the state + outbox")
    timers.wrap(client, "answer_callback", "client.answer_callback (library)")
    timers.wrap(bot.channel, "deliver_now", "channel.deliver_now")
    timers.wrap(app.outbox, "claim", "outbox.claim (worker thread)")
    timers.wrap(client, "send_text", "client.send_text (library)")
    timers.wrap(app.outbox, "mark_sent", "outbox.mark_sent (worker thread)")
    return timers


# Where cProfile's own time goes: by the file of the function (first match wins), or for C
# functions (file "~") by their name.
AREAS = (
    ("/sqlalchemy/", "SQLAlchemy (Python)"),
    ("/pydantic", "pydantic (Python)"),
    ("/telegram/", "python-telegram-bot"),
    ("/aiogram/", "aiogram"),
    ("/site-packages/", "other libraries"),
    ("/work/main/conversations/", "Huizhen conversations/ (engine, steps)"),
    ("/work/main/benchmarks/", "this script (fake Bot API, loop)"),
    ("/work/main/", "Huizhen storage/ handlers/ bot/"),
    ("/json/", "json"),
    ("/asyncio/", "asyncio, threading, contextlib"),
    ("/threading.py", "asyncio, threading, contextlib"),
    ("/contextlib.py", "asyncio, threading, contextlib"),
)
C_AREAS = (
    ("sqlite3.", "sqlite3 (C: execute, commit, fetch)"),
    ("pydantic_core", "pydantic-core (C: validate, serialise)"),
    ("json", "json"),
    ("encode", "json"),
)


def area_of(path: str, func: str) -> str:
    if path == "~":
        return next((area for key, area in C_AREAS if key in func), "C built-ins (dict, getattr…)")
    path = path.replace("\\", "/")
    return next((area for key, area in AREAS if key in path), "other Python (stdlib)")


def area_times(stats: pstats.Stats) -> dict[str, float]:
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    areas: Counter[str] = Counter()
    for (path, _, func), row in raw.items():
        areas[area_of(path, func)] += row[2]
    return dict(areas)


async def profile_library(
    library: str, users: int, steps: int, batch: int, tmp: Path, path: Path | None
) -> None:
    """Huizhen alone: (1) threaded vs to_thread in place, a round each, for the hops' cost;
    (2) timers around the main functions; (3) cProfile, to_thread in place."""
    bot = await start_huizhen(library, tmp / f"{library}-profile")
    profiler = cProfile.Profile()
    threaded, inline, timed, profiled = Measure(), Measure(), Measure(), Measure()
    try:
        await run_huizhen(bot, make_users(20_000_000, WARMUP_USERS), steps, batch, None)
        a = Script(bot, make_users(30_000_000, users), steps)
        b = Script(bot, make_users(40_000_000, users), steps)
        gc.collect()
        for group_a, group_b in zip(a.rounds(batch), b.rounds(batch), strict=True):
            await play(bot, a, group_a, threaded)
            await inline_threads(lambda: play(bot, b, group_b, inline))  # noqa: B023

        timers = install_timers(bot)
        gc.collect()
        try:
            await run_huizhen(bot, make_users(50_000_000, users), steps, batch, timed)
        finally:
            timers.restore()

        async def profiled_run() -> Script:
            gc.collect()
            profiler.enable()
            try:
                return await run_huizhen(bot, make_users(60_000_000, users), steps, batch, profiled)
            finally:
                profiler.disable()

        await inline_threads(profiled_run)
    finally:
        await bot.client.close()
        bot.app.close()

    n = timed.updates
    print(f"\nWhere Huizhen's CPU goes, {library} ({n:,} updates, {users} users x {steps} steps)")
    print(f"  CPU per update, threaded (as in production)     {threaded.us:8.1f} µs")
    print(f"  CPU per update, asyncio.to_thread in place      {inline.us:8.1f} µs")
    hops = threaded.us - inline.us
    print(f"  -> 3 asyncio.to_thread hops per update cost     {hops:8.1f} µs ({hops / 3:.0f} each)")
    print(f"  timed functions, CPU µs per update (this run: {timed.cpu / n * 1e6:.1f} µs in all):")
    seconds = timers.seconds
    # The record-the-update statement is what process() does besides load, apply and write.
    handled = seconds["pipeline.handle (worker thread)"]
    inner = sum(
        seconds[k]
        for k in (
            "store: load + parse the state",
            "engine.handle (the conversation)",
            "store: save the state + outbox",
        )
    )
    seconds["store: BEGIN, record update_id, COMMIT"] = max(0.0, handled - inner)
    for label, indent in PHASES:
        value = seconds[label] / n * 1e6
        print(f"    {indent}{label:<{40 - len(indent)}} {value:8.1f}")
    top = seconds["client.parse_update (library)"] + seconds["client.describe -> Inbound"]
    top += seconds["channel.receive"] + seconds["channel.deliver_now"]
    print(f"    {'the loop between these':<40} {(timed.cpu - top) / n * 1e6:8.1f}")
    print(
        f"    {'(the fake Bot API, inside the library calls above)':<52} "
        f"{timed.fake_cpu / n * 1e6:.1f}"
    )

    if path is not None:
        target = path.with_name(f"{path.stem}-{library}{path.suffix}")
        profiler.dump_stats(target)
        print(f"  cProfile stats written to {target}")
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    m = profiled.updates
    print(
        f"  cProfile, own time by area (to_thread in place; the profiler inflates call-heavy "
        f"code: {total / m * 1e6:.0f} µs/update profiled vs {inline.us:.0f} unprofiled):"
    )
    for label, value in sorted(area_times(stats).items(), key=lambda item: -item[1]):
        print(f"    {label:<40} {100 * value / total:5.1f}%")
    print("  top 20 functions by own time (profiled µs per update, calls per update):")
    rows = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][2],
        reverse=True,
    )[:20]
    for (file, line, func), row in rows:
        where = func if file == "~" else f"{_short(file)}:{line}({func})"
        print(f"    {row[2] / m * 1e6:7.1f}  {row[1] / m:6.1f}  {where}")


def _short(path: str) -> str:
    path = path.replace("\\", "/")
    for marker in ("/site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_USERS} users")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="updates per user")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="users interleaved")
    parser.add_argument(
        "--library", choices=(*LIBRARIES, "both"), default="both", help="adapters to measure"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="",
        help="also profile the Huizhen path (cProfile, to_thread in place); a path keeps the "
        "stats as <path>-<library>.prof",
    )
    args = parser.parse_args(argv)
    users = QUICK_USERS if args.quick else args.users
    if users < 1 or args.batch < 1 or not 2 <= args.steps <= MAX_STEPS:
        parser.error(f"--users and --batch must be at least 1, --steps from 2 to {MAX_STEPS}")
    libraries = LIBRARIES if args.library == "both" else (args.library,)

    for locale in SUPPORTED_LOCALES:
        translator(locale)  # load the catalogs before the clock starts

    results: list[LibraryResult] = []
    with tempfile.TemporaryDirectory(prefix="huizhen-bench-telegram-") as name:
        tmp = Path(name)
        sample = reference_sample(users)
        expected = asyncio.run(reference(sample, args.steps, tmp / "reference"))
        for library in libraries:
            results.append(
                asyncio.run(bench_library(library, users, args.steps, args.batch, tmp, expected))
            )
        if args.profile is not None:
            path = Path(args.profile) if args.profile else None
            profile_users = min(users, PROFILE_USERS)
            for library in libraries:
                asyncio.run(
                    profile_library(library, profile_users, args.steps, args.batch, tmp, path)
                )

    print_tables(results, users, args.steps)
    problems = [p for r in results for p in r.problems]
    for problem in problems:
        print(f"check FAILED: {problem}")
    if not problems:
        print(
            "check: every update stored and answered, every reply rendered; the last question "
            f"of {len(sample)} users matches the same users straight through the pipeline"
        )
    by = {r.library: r for r in results}
    figures: dict[str, Any] = {"benchmark": "telegram"}
    for library in LIBRARIES:
        result = by.get(library)
        figures[f"{library}_updates_per_s"] = round(result.huizhen.per_s, 1) if result else None
        figures[f"{library}_echo_updates_per_s"] = round(result.echo.per_s, 1) if result else None
        figures[f"{library}_ratio"] = round(result.ratio, 4) if result else None
    figures["ratio"] = round(min(r.ratio for r in results), 4)
    figures["users"] = users
    figures["steps"] = args.steps
    figures["updates"] = results[0].huizhen.updates
    print(json.dumps(figures))
    return 1 if problems else 0


def print_tables(results: list[LibraryResult], users: int, steps: int) -> None:
    for result in results:
        h, e = result.huizhen, result.echo
        texts = sum(1 for u in result.script.updates if "message" in u)
        presses = h.updates - texts
        sent = ", ".join(f"{m} {c:,}" for m, c in sorted(result.requests.items()) if c)
        rows = [
            ("users x steps", f"{users:,} x {steps}", ""),
            ("updates (messages + presses)", f"{h.updates:,}", f"{texts:,} + {presses:,}"),
            ("updates/s (CPU)", f"{h.per_s:,.0f}", f"{e.per_s:,.0f}"),
            ("CPU per update (µs)", f"{h.us:,.1f}", f"{e.us:,.1f}"),
            (
                "  fake Bot API, left out (µs)",
                f"{h.fake_cpu / h.updates * 1e6:,.1f}",
                f"{e.fake_cpu / e.updates * 1e6:,.1f}",
            ),
            ("updates/s (wall)", f"{h.wall_per_s:,.0f}", f"{e.wall_per_s:,.0f}"),
            (
                "wall per update (µs)",
                f"{h.wall / h.updates * 1e6:,.1f}",
                f"{e.wall / e.updates * 1e6:,.1f}",
            ),
            ("ratio Huizhen / echo (CPU)", f"{result.ratio:.4f}", ""),
            ("ratio Huizhen / echo (wall)", f"{h.wall_per_s / e.wall_per_s:.4f}", ""),
        ]
        label = "python-telegram-bot" if result.library == "ptb" else "aiogram"
        print(f"\nTelegram end to end, {label} (fake transport, SQLite)")
        print(f"  {'':<30} {'Huizhen':>14} {'echo bot':>14}")
        for name, ours, theirs in rows:
            print(f"  {name:<30} {ours:>14} {theirs:>14}")
        print(f"  Huizhen's Bot API calls: {sent}")


if __name__ == "__main__":
    sys.exit(main())
