"""WeChat Official Account: the webhook (signatures, replays, WeChat's 5-second deadline and
the one passive reply per message), customer-service delivery within the 48-hour rules, media
downloads and the access token every worker shares.

A message is answered in the HTTP response itself: its update is stored (once: a retry of the
same MsgId has no second effect), then every reply pending for the follower is taken from the
outbox and merged into one text, options as a numbered list. What arrives later (a finished
analysis, a coordinator's request, the opinion) goes out as customer-service messages while
the follower's window is open, and otherwise waits for their next message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from aiohttp import web

from bot.app import App, read_stored
from bot.channels.runtime import ChannelRuntime
from bot.channels.wechat import (
    CHANNEL,
    BadSignature,
    Incoming,
    NotFollowing,
    ServiceWindowClosed,
    WebhookCodec,
    WeChatApi,
    describe,
    parse,
    text_reply,
)
from conversations.events import Inbound, InboundKind, Outbound
from conversations.i18n import negotiate, translator
from conversations.state import ConversationKey
from handlers.updates.delivery import (
    CoordinatorSink,
    DeliveryReport,
    RetryLater,
    WaitForUser,
    with_upload_link,
)
from handlers.updates.failure import apology
from records.markers import N_
from storage.wechat import Follower, ServiceSlot, ShownOption, WeChatStore

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/wechat"
MAX_BODY_BYTES = 64 * 1024
# WeChat gives up after 5 seconds and retries; we answer before, whatever happens.
REPLY_DEADLINE = 4.5
# Until then a follower's pending replies are left to the passive reply being made.
REPLYING_FOR = timedelta(seconds=6)
MAX_CLOCK_SKEW = 300
SERVICE_WINDOW = timedelta(hours=48)
# Customer-service messages one follower may get per message of theirs (within the window).
SERVICE_QUOTA = 5
# WeChat's limit for one text message, passive or customer-service.
TEXT_LIMIT_BYTES = 2048
# Asking for the profile language must not eat the deadline.
PROFILE_TIMEOUT = 1.5
# Failed tries of one message answered with a server error (WeChat retries it) before the
# follower gets an apology instead.
MAX_FAILED_TRIES = 2
FILE_RETRY_SECONDS = 5
SUCCESS = "success"  # WeChat's "received, no reply"

UNSUPPORTED = N_("I can only read text and photos in this chat. Please type your answer instead.")
NO_DOCUMENTS = N_(
    "WeChat cannot carry documents, so {name} is not attached here. Please ask your "
    "coordinator how to receive it."
)


@dataclass(frozen=True)
class _Answer:
    text: str
    replay: bool = False


_REPLAY = _Answer("", replay=True)


class _Attempt:
    """One webhook call's handling: the thread makes the reply, the request may give up on it
    at the deadline. Whichever decides first under the lock wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.given_up = False
        self.answered = False

    def give_up(self) -> bool:
        """The request answers "success" now, unless the reply is already made."""
        with self._lock:
            if not self.answered:
                self.given_up = True
            return self.given_up

    def answer(self) -> bool:
        """The thread's reply will be the answer, unless the request gave up on it."""
        with self._lock:
            if not self.given_up:
                self.answered = True
            return self.answered


class _StoredTokens:
    """The wechat adapter's TokenStore on the shared table."""

    def __init__(self, store: WeChatStore, app_id: str) -> None:
        self.store = store
        self.app_id = app_id

    def current(self, fetch: Callable[[], tuple[str, int]]) -> str:
        return self.store.access_token(self.app_id, datetime.now(UTC), fetch)

    def discard(self, token: str) -> None:
        self.store.discard_token(self.app_id, token)


def wechat_api(app: App, store: WeChatStore) -> WeChatApi:
    settings = app.settings
    assert settings.wechat_app_id is not None
    return WeChatApi(
        settings.wechat_app_id,
        settings.wechat_app_secret or "",
        settings.wechat_api_base_url,
        _StoredTokens(store, settings.wechat_app_id),
    )


class WeChatChannel(ChannelRuntime):
    """Holds the core and the WeChat adapter; implements ReplySender and FileOpener."""

    channel = CHANNEL
    file_retry_seconds = FILE_RETRY_SECONDS

    def __init__(
        self,
        app: App,
        coordinators: CoordinatorSink | None = None,
        run_schedule: bool = True,
    ) -> None:
        super().__init__(app, run_schedule)
        settings = app.settings
        assert settings.wechat_app_id is not None and settings.wechat_token is not None
        self.store = WeChatStore(app.engine)
        self.api = wechat_api(app, self.store)
        self.codec = WebhookCodec(
            settings.wechat_token, settings.wechat_app_id, settings.wechat_encoding_aes_key
        )
        # Without a coordinators' chat in this process their notices are not taken here: they
        # wait for a process that has one (or the CLI queue), and nothing is lost.
        self.coordinators = coordinators
        self._failures: dict[str, int] = {}
        self._rounds: list[datetime] = []

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.coordinators is None:
            log.warning("coordinator notices wait: no coordinators' chat runs in this process")
        await self.start_runtime()

    async def stop(self) -> None:
        await self.stop_runtime()
        self.api.close()

    # --- the webhook -----------------------------------------------------------------------

    async def verify(self, request: web.Request) -> web.Response:
        """GET: WeChat checks the server address by having its echostr echoed."""
        query = request.query
        timestamp = query.get("timestamp", "")
        if not self.codec.signed(query.get("signature", ""), timestamp, query.get("nonce", "")):
            return _refused("a bad signature")
        if _stale(timestamp):
            return _refused("a stale timestamp")
        return web.Response(text=query.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        """POST: one message or event, answered within the deadline."""
        arrived = time.monotonic()
        body = await _read_capped(request, MAX_BODY_BYTES)
        if body is None:
            return web.Response(status=413, text="too large")
        query = dict(request.query)
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not self.codec.signed(query.get("signature", ""), timestamp, nonce):
            return _refused("a bad signature")
        if _stale(timestamp):
            return _refused("a stale timestamp")
        try:
            message = parse(self.codec.open(body, query))
            incoming = describe(message)
        except BadSignature:
            return _refused("a bad message signature")
        except (ValueError, KeyError) as error:
            log.warning("unreadable WeChat message (%s)", type(error).__name__)
            return web.Response(status=400, text="bad message")
        attempt = _Attempt()
        work = asyncio.ensure_future(
            asyncio.to_thread(self._answer, incoming, timestamp, nonce, attempt)
        )
        remaining = REPLY_DEADLINE - (time.monotonic() - arrived)
        try:
            answer = await self._within(work, attempt, remaining)
        except Exception as error:
            if self._failed_again(incoming, error) <= MAX_FAILED_TRIES:
                # Nothing was kept (the transaction rolled back): WeChat tries again.
                return web.Response(status=500, text="try again")
            # Tries keep failing: the follower hears so, not WeChat's "service unavailable".
            locale = await asyncio.to_thread(self._locale_or_default, incoming.openid)
            answer = _Answer(apology(locale).text)
        self._failures.pop(incoming.update_key, None)
        if answer is None:
            # Too slow for a passive reply: "success" now; the replies go out as
            # customer-service messages when the work is done.
            return web.Response(text=SUCCESS)
        if answer.replay:
            return _refused("a replayed nonce")
        self.wake()
        if not answer.text:
            return web.Response(text=SUCCESS)
        xml = text_reply(message, answer.text)
        sealed = self.codec.seal(xml, nonce, str(int(time.time())), _encrypted(query))
        return web.Response(text=sealed, content_type="application/xml")

    async def _within(
        self, work: asyncio.Future[_Answer], attempt: _Attempt, seconds: float
    ) -> _Answer | None:
        """The answer if it is ready in time; None (and the work carries on) if not."""
        try:
            return await asyncio.wait_for(asyncio.shield(work), max(0.0, seconds))
        except TimeoutError:
            if attempt.give_up():
                work.add_done_callback(self._finished_late)
                return None
            return await work  # the reply was made just in time: it is the answer

    def _failed_again(self, incoming: Incoming, error: Exception) -> int:
        log.error("a WeChat message could not be handled (%s)", type(error).__name__)
        tries = self._failures.get(incoming.update_key, 0) + 1
        self._failures[incoming.update_key] = tries
        if len(self._failures) > 10_000:
            self._failures.clear()  # a bound on memory; counts only matter for seconds
        return tries

    def _locale_or_default(self, openid: str) -> str:
        try:
            return self._locale(openid, "")
        except Exception:  # the database may be what fails
            return self.settings.default_locale

    def _finished_late(self, work: asyncio.Future[_Answer]) -> None:
        if not work.cancelled() and work.exception() is not None:
            log.error("a late WeChat message failed (%s)", type(work.exception()).__name__)
        self._files_waiting.set()
        self._wake.set()

    # --- making the passive reply (a worker thread) ----------------------------------------

    def _answer(self, incoming: Incoming, timestamp: str, nonce: str, attempt: _Attempt) -> _Answer:
        now = datetime.now(UTC)
        replying_until = now + REPLYING_FOR
        answerable = incoming.inbound is not None or incoming.unsupported
        follower = self.store.arrive(
            timestamp,
            nonce,
            incoming.openid,
            now,
            replying_until,
            subscribed=incoming.following,
            interaction=answerable,
        )
        if follower is None:
            return _REPLAY
        if not answerable:
            # An unfollow, a location report, a menu link: nothing to answer, and what waits
            # for the follower keeps waiting.
            self.store.replied(incoming.openid, replying_until)
            return _Answer("")
        try:
            return self._reply(incoming, follower, attempt)
        finally:
            self.store.replied(incoming.openid, replying_until)

    def _reply(self, incoming: Incoming, follower: Follower, attempt: _Attempt) -> _Answer:
        language = follower.language
        if not follower.language_checked:
            language = self._profile_language(incoming.openid)
        notes: list[str] = []
        if incoming.unsupported:
            locale = self._locale(incoming.openid, language)
            notes.append(translator(locale)(UNSUPPORTED))
        elif incoming.inbound is not None:
            inbound = as_choice(incoming.inbound, follower)
            inbound = inbound.model_copy(update={"language_hint": language or None})
            transition = self.app.pipeline.handle(inbound)
            if transition is None:
                # WeChat retried a message already handled: the same answer again.
                earlier = self.store.reply_for(incoming.update_key)
                if earlier is not None:
                    return _Answer(earlier)
            elif inbound.kind == InboundKind.FILES:
                self.files_arrived()  # media ids expire: fetch the picture at once
        if attempt.given_up:
            return _Answer("")  # left for customer-service delivery
        text = self._take_replies(incoming.openid, notes)
        if text:
            self.store.remember_reply(incoming.update_key, text, datetime.now(UTC))
        if not attempt.answer():
            # The request gave up while the reply was made: it goes out another way.
            if text:
                self.store.forget_reply(incoming.update_key)
                self._enqueue(incoming.openid, text)
            return _Answer("")
        return _Answer(text)

    def _profile_language(self, openid: str) -> str:
        try:
            language = self.api.user_language(openid, timeout=PROFILE_TIMEOUT)
        except Exception as error:
            log.warning("the WeChat profile language is unknown (%s)", type(error).__name__)
            return ""  # asked again with their next message
        self.store.set_language(openid, language)
        return language

    def _locale(self, openid: str, language: str) -> str:
        state = self.app.pipeline.state_of(ConversationKey(CHANNEL, openid))
        if state is not None:
            return state.locale
        return negotiate(language) or self.settings.default_locale

    def _take_replies(self, openid: str, notes: list[str]) -> str:
        """Every reply pending for the follower, merged into one text; what does not fit in
        one message (and pictures) follows as customer-service messages."""
        taken = self.store.take_replies(openid, _now())
        messages = newest_versions([Outbound.model_validate_json(payload) for payload in taken])
        for message in messages:
            pictures = tuple(f for f in message.files if _is_picture(f.mime_type))
            if pictures:
                picture_only = Outbound(text="", files=pictures, locale=message.locale)
                self.app.pipeline.store.enqueue(CHANNEL, openid, picture_only, _now())
        messages = [
            with_upload_link(self.app, CHANNEL, openid, m) if m.upload_link is not None else m
            for m in messages
        ]
        texts, options = numbered([documents_noted(m) for m in messages])
        if options is not None:
            self.store.show_options(openid, options)
        text = "\n\n".join(part for part in [*notes, *texts] if part.strip())
        first, *rest = split_bytes(text)
        for chunk in rest:
            self._enqueue(openid, chunk)
        return first

    def _enqueue(self, openid: str, text: str) -> None:
        self.app.pipeline.store.enqueue(CHANNEL, openid, Outbound(text=text), _now())

    # --- customer-service messages (ReplySender) -------------------------------------------

    async def send(self, chat_key: str, message: Outbound) -> str | None:
        if message.replace_key is not None:
            # Progress while files are checked: not worth one of the few messages allowed;
            # the result follows anyway.
            return None
        pictures = [f for f in message.files if _is_picture(f.mime_type)]
        [text], options = numbered([documents_noted(message)])
        chunks = split_bytes(text) if text.strip() else []
        count = len(pictures) + len(chunks)
        if count == 0:
            return None
        slot, wait = await asyncio.to_thread(
            self.store.start_sending,
            chat_key,
            count,
            _now(),
            min(self._rounds, default=_now()),
            SERVICE_WINDOW,
            SERVICE_QUOTA,
        )
        if slot == ServiceSlot.REPLYING:
            # Their message is being answered, and the answer takes their replies: this
            # one goes out with it, or in a later round if it was left.
            raise RetryLater(max(0.05, wait))
        if slot != ServiceSlot.TAKEN:
            raise WaitForUser()
        try:
            for picture in pictures:
                data = await asyncio.to_thread(read_stored, self.app, picture.source)
                name = picture.name or "preview.png"
                await asyncio.to_thread(self.api.send_image, chat_key, data, name)
            for chunk in chunks:
                await asyncio.to_thread(self.api.send_text, chat_key, chunk)
        except ServiceWindowClosed:
            await asyncio.to_thread(self.store.close_window, chat_key, SERVICE_QUOTA)
            raise WaitForUser() from None
        except NotFollowing:
            await asyncio.to_thread(self.store.set_subscribed, chat_key, False)
            await asyncio.to_thread(self.store.done_sending, chat_key, count)
            raise WaitForUser() from None
        except BaseException:
            await asyncio.to_thread(self.store.done_sending, chat_key, count)
            raise
        await asyncio.to_thread(self.store.done_sending, chat_key)
        if options is not None:
            await asyncio.to_thread(self.store.show_options, chat_key, options)
        return None

    async def deliver_round(self) -> DeliveryReport:
        """One delivery round. Its start is kept while it runs: a passive reply made since
        may have taken replies this round read (see WeChatStore.start_sending)."""
        started = _now()
        self._rounds.append(started)
        try:
            return await self.app.deliver({CHANNEL: self}, self.coordinators)
        finally:
            self._rounds.remove(started)

    # --- files (FileOpener; called from a worker thread) -----------------------------------

    def open(self, source: str) -> BinaryIO:
        """The picture behind a media id."""
        return self.spooled(lambda spool: self.api.download(source, spool))


def add_wechat_routes(app: web.Application, channel: WeChatChannel) -> None:
    app.router.add_get(WEBHOOK_PATH, channel.verify)
    app.router.add_post(WEBHOOK_PATH, channel.receive)


# --- rendering -----------------------------------------------------------------------------


def numbered(messages: list[Outbound]) -> tuple[list[str], list[ShownOption] | None]:
    """The messages' texts, their questions' options numbered on from 1 across all of them
    (one answer, one set of numbers), and the options so numbered. A question asked again
    later in the same answer is numbered only there. When the newest question takes words,
    not options, nothing is numbered: a digit then is an answer in words. None for the
    options when no question is among the messages (what was shown before stays)."""
    prompts = [m for m in messages if m.prompt_ref]
    if not prompts:
        return [m.text for m in messages], None
    shown: list[ShownOption] = []
    texts = []
    for index, message in enumerate(messages):
        lines = [message.text] if message.text else []
        asked_again = any(m.prompt_ref == message.prompt_ref for m in messages[index + 1 :])
        if prompts[-1].options and not asked_again:
            for option in message.options:
                shown.append(ShownOption(option.id, option.label, message.prompt_ref))
                lines.append(f"{len(shown)}. {option.label}")
        texts.append("\n".join(lines))
    return texts, shown


def documents_noted(message: Outbound) -> Outbound:
    """An Official Account cannot send files: a document Huizhen passes on (the specialist's
    opinion) is named in the text instead. Pictures go as images."""
    documents = [f for f in message.files if not _is_picture(f.mime_type)]
    if not documents:
        return message
    t = translator(message.locale)
    notes = [t(NO_DOCUMENTS, name=f.name or "PDF") for f in documents]
    return message.model_copy(update={"text": "\n\n".join([message.text, *notes])})


def newest_versions(messages: list[Outbound]) -> list[Outbound]:
    """Of messages shown in place (progress), only the newest of each: WeChat cannot edit."""
    last = {m.replace_key: i for i, m in enumerate(messages) if m.replace_key is not None}
    return [m for i, m in enumerate(messages) if m.replace_key is None or last[m.replace_key] == i]


def as_choice(inbound: Inbound, follower: Follower) -> Inbound:
    """A digit, or an option's exact words, answers the options last shown: it becomes the
    option's id. Nothing else routes on words."""
    if inbound.kind != InboundKind.TEXT or not follower.options:
        return inbound
    said = inbound.text.strip()
    if said.isdigit() and 1 <= int(said) <= len(follower.options):
        chosen: ShownOption | None = follower.options[int(said) - 1]
    else:
        wanted = said.casefold()
        chosen = next((o for o in follower.options if wanted and _words(o.label) == wanted), None)
    if chosen is None:
        return inbound
    return inbound.model_copy(
        update={
            "kind": InboundKind.CHOICE,
            "choice_id": chosen.id,
            "prompt_ref": chosen.prompt_ref,
            "text": "",
        }
    )


def _words(label: str) -> str:
    return label.removeprefix("✓").strip().casefold()


def split_bytes(text: str, limit: int = TEXT_LIMIT_BYTES) -> list[str]:
    """Split a text into messages of at most `limit` bytes (UTF-8), at paragraph, line or
    word boundaries where it can."""
    chunks: list[str] = []
    rest = text
    while len(rest.encode()) > limit:
        window = rest.encode()[:limit].decode(errors="ignore")
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < len(window) // 2:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = len(window)
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    chunks.append(rest)
    return [chunk for chunk in chunks if chunk] or [""]


# --- small helpers -------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _is_picture(mime_type: str | None) -> bool:
    return (mime_type or "").startswith("image/")


def _encrypted(query: dict[str, str]) -> bool:
    return query.get("encrypt_type") == "aes"


def _stale(timestamp: str) -> bool:
    """Calls signed more than five minutes from now are refused (a replay, or a bad clock)."""
    if not timestamp.isdigit() or len(timestamp) > 12:  # beyond any clock (and a float)
        return True
    return abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW


def _refused(reason: str) -> web.Response:
    log.warning("refused a WeChat webhook call: %s", reason)
    return web.Response(status=403, text="forbidden")


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit`. The web app has read it already,
    within its time and size bounds (bot/web.py), so this returns at once."""
    if (request.content_length or 0) > limit:
        return None
    body = await request.read()
    return body if len(body) <= limit else None
