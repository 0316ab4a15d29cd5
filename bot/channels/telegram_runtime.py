"""Telegram, whichever library carries it: receive (long polling or webhook), store each update
before acknowledging it, deliver the outbox within Telegram's limits, fetch files, and show
case cards to coordinators."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import BinaryIO

from bot.app import App, read_stored
from bot.channels.runtime import ChannelRuntime
from bot.channels.telegram_base import (
    CHANNEL,
    LOCAL_DOWNLOAD_LIMIT,
    Button,
    Incoming,
    RateLimiter,
    TelegramClient,
    encode_callback,
    split_text,
)
from conversations.events import CoordinatorNotice, Inbound, InboundKind, Outbound
from conversations.i18n import SUPPORTED_LOCALES, negotiate, translator
from handlers.casework.desk import CoordinatorDesk
from handlers.updates.delivery import DeliveryReport
from handlers.updates.failure import apology
from records.markers import N_

log = logging.getLogger(__name__)

POLL_TIMEOUT = 25
FILE_RETRY_SECONDS = 15
CAPTION_LIMIT = 1024
# Tries to store one update before it is answered with an apology and passed over.
MAX_STORE_ATTEMPTS = 3
COMMANDS = (
    ("start", N_("Start or continue")),
    ("status", N_("Where my case stands")),
    ("back", N_("Go back one question")),
    ("language", N_("Change the language")),
    ("help", N_("What I can do")),
    ("restart", N_("Start again")),
    ("newcase", N_("Start another case")),
    ("export", N_("Get a copy of my data")),
    ("withdraw", N_("Withdraw my consent")),
    ("delete", N_("Erase all my data")),
)
WRITE_PRIVATELY = N_(
    "Hello! Health matters are private, so I only talk with each person in a private chat. "
    "Please open a chat with me and write to me there."
)


class TelegramChannel(ChannelRuntime):
    """Holds the core and one TelegramClient; implements ReplySender, CoordinatorSink and
    FileOpener for the pipeline."""

    channel = CHANNEL
    file_retry_seconds = FILE_RETRY_SECONDS

    def __init__(
        self, app: App, client: TelegramClient, limiter: RateLimiter | None = None
    ) -> None:
        super().__init__(app)
        self.client = client
        self.desk = CoordinatorDesk(app.casework)
        rate = float(app.settings.telegram_send_rate)
        self.limiter = limiter or RateLimiter(overall=(rate, rate))
        self._failures: dict[str, int] = {}

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, polling: bool = True) -> None:
        await self.client.start()
        await self.set_commands()
        if self.settings.telegram_webhook_url:
            await self.client.set_webhook(
                f"{self.settings.telegram_webhook_url}", self.settings.telegram_webhook_secret
            )
        elif polling:
            await self.client.delete_webhook()
            self._tasks.append(asyncio.create_task(self._poll_forever()))
        await self.start_runtime()

    async def stop(self) -> None:
        await self.stop_runtime()
        await self.client.close()

    async def set_commands(self) -> None:
        """Localised command menus: one per supported language, and the default in English.

        Telegram knows languages by two-letter codes only, so one script of a language (the
        first supported: Simplified Chinese) stands for it."""
        menus: dict[str | None, str] = {None: "en"}
        for locale in SUPPORTED_LOCALES:
            menus.setdefault(locale.split("_")[0], locale)
        for language, locale in menus.items():
            t = translator(locale)
            commands = [(name, t(description)) for name, description in COMMANDS]
            await self.client.set_commands(commands, language)

    # --- receiving -------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        offset: int | None = None
        while not self._stopping.is_set():
            try:
                updates = await self.client.fetch_updates(offset, POLL_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("getUpdates failed (%s); retrying", type(error).__name__)
                await asyncio.sleep(1)
                continue
            if not updates:
                continue
            incoming = [self._describe(update) for update in updates]
            try:
                await self.receive(incoming)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Not acknowledged: the same updates come again with the next getUpdates.
                log.error("updates not stored (%s); will retry", type(error).__name__)
                await asyncio.sleep(1)
                continue
            # Only now are the updates confirmed to Telegram: they are stored.
            offset = max(item.update_id for item in incoming) + 1

    def _describe(self, update: object) -> Incoming:
        try:
            return self.client.describe(update)
        except Exception as error:
            # An update we cannot read must not stop everyone else's: skip it, say why.
            log.warning("skipped an unreadable update (%s)", type(error).__name__)
            return Incoming(getattr(update, "update_id", 0), None)

    async def receive(self, incoming: Sequence[Incoming]) -> None:
        """Store a batch of updates (albums as one), then answer buttons and send replies."""
        if self.settings.telegram_local_mode:
            incoming = [_within_local_limit(item) for item in incoming]
        items = group_albums(incoming)
        elsewhere = [item for item in items if self._not_private(item)]
        items = [item for item in items if item not in elsewhere]
        patients = [
            item.inbound
            for item in items
            if item.inbound is not None and not self._is_coordinator_chat(item.inbound)
        ]
        # One hop to a worker thread for the whole batch: the database never blocks the loop.
        failed = await asyncio.to_thread(self._store, patients)
        self._wake.set()  # what was stored is answered whatever happens next
        if any(self._failed_again(inbound) < MAX_STORE_ATTEMPTS for inbound in failed):
            # Not acknowledged: Telegram gives the batch again; what was stored is a duplicate.
            raise RuntimeError("an update could not be stored yet")
        for inbound in failed:
            # An update that keeps failing must not block everyone after it: apologise, go on.
            with contextlib.suppress(Exception):
                text = apology(self._locale(inbound)).text
                await self.client.send_text(inbound.chat_key, text, [], None)
        for item in items:
            if item.inbound is not None and self._is_coordinator_chat(item.inbound):
                await self._coordinator_action(item)
            elif item.callback_query_id:
                # Every press is answered, so no button keeps spinning. Best effort: the update
                # is stored, and a failed answer (a 429, a 5xx) used to send the whole batch
                # round again unacknowledged; with many presses per batch, polling then stalled
                # at 100 unconfirmed updates and newer messages were never fetched.
                try:
                    await self.client.answer_callback(item.callback_query_id, None)
                except Exception as error:
                    log.warning("a button press was not answered (%s)", type(error).__name__)
        await self._ask_to_write_privately(elsewhere)
        await self._run_jobs(items)
        self._wake.set()

    def _store(self, inbounds: Sequence[Inbound]) -> list[Inbound]:
        """Store each update in its own transaction; return those that failed."""
        failed = []
        for inbound in inbounds:
            try:
                self.app.pipeline.handle(inbound)
            except Exception as error:
                log.error("an update could not be stored (%s)", type(error).__name__)
                failed.append(inbound)
        return failed

    def _failed_again(self, inbound: Inbound) -> int:
        count = self._failures.get(inbound.update_key, 0) + 1
        self._failures[inbound.update_key] = count
        if len(self._failures) > 10_000:
            self._failures.clear()  # a bound on memory; counts only matter for a few seconds
        return count

    def _locale(self, inbound: Inbound) -> str:
        return negotiate(inbound.language_hint) or self.settings.default_locale

    def _is_coordinator_chat(self, inbound: Inbound) -> bool:
        chat = self.settings.coordinator_chat_id
        return chat is not None and inbound.chat_key == chat

    def _not_private(self, item: Incoming) -> bool:
        """A patient's message in a group or channel: everyone there would read the answer
        (a data copy sent to a group once did), so it is never handled as a conversation."""
        inbound = item.inbound
        return inbound is not None and not item.private and not self._is_coordinator_chat(inbound)

    async def _ask_to_write_privately(self, elsewhere: Sequence[Incoming]) -> None:
        """Once per group, a kind word to write privately; nothing of the message is kept (the
        group's id alone marks that it was said)."""
        for item in elsewhere:
            inbound = item.inbound
            assert inbound is not None
            if item.callback_query_id:
                with contextlib.suppress(Exception):
                    await self.client.answer_callback(item.callback_query_id, None)
            store = self.app.pipeline.store
            key = f"not-private:{inbound.chat_key}"
            now = datetime.now(UTC)
            if not await asyncio.to_thread(store.first_time, CHANNEL, key, now):
                continue
            t = translator(self._locale(inbound))
            with contextlib.suppress(Exception):
                await self.limiter.acquire(inbound.chat_key)
                await self.client.send_text(inbound.chat_key, t(WRITE_PRIVATELY), [], None)

    async def _run_jobs(self, incoming: Sequence[Incoming]) -> None:
        chats = {
            item.inbound.chat_key
            for item in incoming
            if item.inbound is not None and item.inbound.files  # a kept video too
        }
        for chat in chats:
            with contextlib.suppress(Exception):
                await self.client.chat_action(chat, "typing")
        if chats:
            self._files_waiting.set()

    # --- coordinators ----------------------------------------------------------------------

    async def _coordinator_action(self, item: Incoming) -> None:
        inbound = item.inbound
        assert inbound is not None
        if inbound.kind == InboundKind.COMMAND and inbound.command.lower() == "translate":
            answer = await asyncio.to_thread(self.desk.translate, inbound.user_key, inbound.args)
            chat = self.settings.coordinator_chat_id
            assert chat is not None
            await self.limiter.acquire(chat)
            await self.client.send_text(chat, answer, [], None)
            return
        if inbound.kind != InboundKind.CHOICE:
            return  # coordinators talk among themselves in their group: not for us
        now = datetime.now(UTC)
        store = self.app.pipeline.store
        first = await asyncio.to_thread(store.first_time, CHANNEL, inbound.update_key, now)
        if not first:
            # Telegram delivered the press again (a webhook retry, a batch fetched again):
            # acting twice would undo a toggle or move a case on twice.
            if item.callback_query_id:
                with contextlib.suppress(Exception):
                    await self.client.answer_callback(item.callback_query_id, None)
            return
        result = await asyncio.to_thread(
            self.desk.act, inbound.user_key, inbound.choice_id, inbound.message_ref, now
        )
        if not result.allowed:
            log.warning("refused a coordinator action from an account not listed")
        if item.callback_query_id:
            await self.client.answer_callback(item.callback_query_id, result.answer)
        if result.card is not None and inbound.message_ref:
            await self._show_card(result.card.reference, int(inbound.message_ref))

    async def notify(self, notice: CoordinatorNotice) -> None:
        if self.settings.coordinator_chat_id is None:
            log.warning("a case was submitted but COORDINATOR_CHAT_ID is not set")
            return
        message_ref = await asyncio.to_thread(self.desk.card_message_ref, notice.case_ref)
        shown = await self._show_card(notice.case_ref, int(message_ref) if message_ref else None)
        chat = self.settings.coordinator_chat_id
        if not shown and notice.card_ref and chat is not None:
            # The case was erased: its card keeps nothing of it, only that it is gone.
            await self.limiter.acquire(chat)
            await self.client.send_text(chat, notice.text, [], int(notice.card_ref))
            return
        # Said in a new message when the card was there already, or is gone (an erased case).
        if notice.text and (message_ref or not shown):
            # Something coordinators should see now (a follow-up question, an idle case): a
            # new message, since an edited card notifies no one.
            chat = self.settings.coordinator_chat_id
            assert chat is not None
            await self.limiter.acquire(chat)
            await self.client.send_text(chat, notice.text, [], None)

    async def _show_card(self, reference: str, message_id: int | None) -> bool:
        """Send or redraw the case's card; False when there is no such case (any more)."""
        chat = self.settings.coordinator_chat_id
        if chat is None:
            return False
        card = await asyncio.to_thread(self.desk.card, reference, datetime.now(UTC))
        if card is None:
            return False
        buttons = [Button(label, action) for label, action in card.actions]
        await self.limiter.acquire(chat)
        sent = await self.client.send_text(chat, card.text, buttons, message_id)
        if sent != message_id:
            # A new card, or one sent anew because the old could not be edited: presses are
            # obeyed only on the message remembered here.
            await asyncio.to_thread(self.desk.remember_card, reference, str(sent))
        return True

    # --- sending (ReplySender) -------------------------------------------------------------

    async def send(self, chat_key: str, message: Outbound) -> str | None:
        buttons = [
            Button(o.label, encode_callback(message.prompt_ref, o.id)) for o in message.options
        ]
        pictures = [f for f in message.files if (f.mime_type or "").startswith("image/")]
        for document in (f for f in message.files if f not in pictures):
            # Documents Huizhen passes on (the specialist's opinion): sent before the text.
            data = await asyncio.to_thread(read_stored, self.app, document.source)
            await self.limiter.acquire(chat_key)
            await self.client.send_document(chat_key, data, document.name or "document.pdf", "")
        for image in pictures:
            # Previews Huizhen made (a scan's slice): the caption carries the question.
            photo = await asyncio.to_thread(read_stored, self.app, image.source)
            await self.limiter.acquire(chat_key)
            if len(message.text) <= CAPTION_LIMIT:
                return str(
                    await self.client.send_photo(
                        chat_key, photo, image.name or "preview.png", message.text, buttons
                    )
                )
            await self.client.send_photo(chat_key, photo, image.name or "preview.png", "", [])
        chunks = split_text(message.text)
        edit = int(message.edit_of) if message.edit_of and message.edit_of.isdigit() else None
        sent = 0
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            await self.limiter.acquire(chat_key)
            sent = await self.client.send_text(
                chat_key, chunk, buttons if last else [], edit if len(chunks) == 1 else None
            )
        return str(sent)

    async def deliver_round(self) -> DeliveryReport:
        return await self.app.deliver({CHANNEL: self}, self)

    # --- files (FileOpener; called from a worker thread) -----------------------------------

    def open(self, source: str) -> BinaryIO:
        loop = self._loop
        assert loop is not None

        def download(spool: BinaryIO) -> None:
            future = asyncio.run_coroutine_threadsafe(self.client.download(source, spool), loop)
            future.result(timeout=600)

        return self.spooled(download)


def _within_local_limit(item: Incoming) -> Incoming:
    """Behind a local Bot API server, files up to 2 GB can be fetched, not just 20 MB."""
    inbound = item.inbound
    if inbound is None or not any(file.too_large for file in inbound.files):
        return item
    files = tuple(
        file.model_copy(update={"too_large": (file.size or 0) > LOCAL_DOWNLOAD_LIMIT})
        for file in inbound.files
    )
    return dataclasses.replace(item, inbound=inbound.model_copy(update={"files": files}))


def group_albums(incoming: Sequence[Incoming]) -> list[Incoming]:
    """Several files sent at once arrive as separate updates sharing a media_group_id: they are
    handled as one message, so the patient gets one acknowledgement."""
    grouped: list[Incoming] = []
    albums: dict[str, int] = {}
    for item in incoming:
        inbound = item.inbound
        group = item.media_group_id
        if inbound is None or group is None or inbound.kind != InboundKind.FILES:
            grouped.append(item)
            continue
        # The key names the parts merged here (first and last update id: a batch is a run of
        # ids, and the same batch comes again after a crash). It used to be the group alone,
        # so parts arriving in another batch, or by webhook one request each, were taken for
        # a duplicate and their files silently dropped.
        if group in albums:
            index = albums[group]
            first = grouped[index]
            assert first.inbound is not None
            merged = first.inbound.model_copy(
                update={
                    "files": (*first.inbound.files, *inbound.files),
                    "update_key": f"album:{group}:{first.update_id}-{item.update_id}",
                }
            )
            grouped[index] = dataclasses.replace(first, inbound=merged)
        else:
            albums[group] = len(grouped)
            keyed = inbound.model_copy(update={"update_key": f"album:{group}:{item.update_id}"})
            grouped.append(dataclasses.replace(item, inbound=keyed, callback_query_id=None))
    return grouped
