"""The reply side: what a channel must offer, and the sender that drains the outbox.

Delivery is asynchronous because the platforms' clients are; database calls run in a worker
thread so a slow disk never stalls the event loop. Messages go out in outbox order, and a chat
whose message could not be sent waits (its later messages are not sent around it).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO, Protocol

from conversations.events import CoordinatorNotice, Outbound, UploadLinkRequest
from conversations.i18n import translator
from handlers.updates.metrics import DELIVERIES
from storage.outbox import COORDINATORS_AUDIENCE, OutboxStore, PendingMessage

log = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 8
# Rows one round takes: about two seconds at Telegram's overall rate. A worker holds what it
# claimed while it paces the sends, so a small batch leaves the rest to other workers.
DELIVERY_BATCH = 60
CHATS_AT_ONCE = 16


class RetryLater(Exception):
    """The platform asked us to slow down (Telegram's 429 with retry_after)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


class Undeliverable(Exception):
    """The platform will never take this message (the user blocked the bot, chat gone)."""


class WaitForUser(Exception):
    """The platform lets us write only after the user writes again (WeChat's 48-hour window
    for customer-service messages): the message stays pending, unchanged, and goes out with
    the answer to their next message."""


class ReplySender(Protocol):
    """Delivers replies to one channel's chats and returns the platform's id of the message
    (None where the channel has none). Raises RetryLater, Undeliverable, or any other exception
    for a passing fault (retried with backoff)."""

    async def send(self, chat_key: str, message: Outbound) -> str | None: ...


class LinkIssuer(Protocol):
    """Makes a secure upload link for a message that asks for one: the address and the hours
    it stays valid; None when the upload page is not switched on (no PUBLIC_BASE_URL)."""

    def upload_link(
        self, channel: str, chat_key: str, request: UploadLinkRequest, locale: str
    ) -> tuple[str, int] | None: ...


class CoordinatorSink(Protocol):
    async def notify(self, notice: CoordinatorNotice) -> None: ...


class FileOpener(Protocol):
    """Opens a file the user sent on this channel (FileRef.source) as a binary stream.

    Called from a worker thread; may block."""

    def open(self, source: str) -> BinaryIO: ...


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    # When to try again for messages held back (None: nothing is waiting on a retry).
    retry_in: float | None
    # The round made progress, so more may be ready (a full batch, or a chat's later
    # messages that waited behind the ones just sent): start another round at once.
    more: bool = False


def backoff(attempts: int) -> float:
    """Seconds before retrying after `attempts` passing failures: 1, 2, 4 … up to 60."""
    return float(min(60, 2 ** max(0, attempts - 1)))


async def deliver_pending(
    outbox: OutboxStore,
    senders: Mapping[str, ReplySender],
    coordinators: CoordinatorSink | None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    links: LinkIssuer | None = None,
) -> DeliveryReport:
    """Send pending messages and mark each sent as soon as the platform took it: each chat's
    in order, different chats side by side, so one chat's pacing (Telegram's message a
    second per chat) never holds up the others. Only messages for `senders`' channels are
    taken, and the coordinators' notices only when there is a `coordinators` chat to take them
    to: what this round cannot send is left to the round that can."""
    pending = await asyncio.to_thread(
        outbox.claim,
        clock(),
        MAX_DELIVERY_ATTEMPTS,
        DELIVERY_BATCH,
        tuple(senders),
        coordinators is not None,
    )
    delivery = _Round(outbox, senders, coordinators, clock, links, pending)
    by_chat: dict[tuple[str, str], list[PendingMessage]] = {}
    for message in pending:
        by_chat.setdefault((message.channel, message.chat_key or message.audience), []).append(
            message
        )
    await asyncio.gather(*(delivery.send_chat(messages) for messages in by_chat.values()))
    if delivery.superseded:
        await asyncio.to_thread(outbox.mark_sent, delivery.superseded, clock())
    await asyncio.to_thread(outbox.release, delivery.unsent)
    more = delivery.sent > 0 or bool(delivery.superseded)
    return DeliveryReport(delivery.sent, delivery.retry_in, more=more)


class _Round:
    """One delivery round's shared tallies; `send_chat` sends one chat's messages."""

    def __init__(
        self,
        outbox: OutboxStore,
        senders: Mapping[str, ReplySender],
        coordinators: CoordinatorSink | None,
        clock: Callable[[], datetime],
        links: LinkIssuer | None,
        pending: list[PendingMessage],
    ) -> None:
        self.outbox, self.senders, self.coordinators = outbox, senders, coordinators
        self.clock, self.links = clock, links
        self.replies = {
            m.id: _reply(m.payload_json) for m in pending if m.audience != COORDINATORS_AUDIENCE
        }
        self.newest = _newest_by_replace_key(pending, self.replies)
        self.sent = 0
        self.retry_in: float | None = None
        self.unsent: list[int] = []  # taken this round but not sent: let go at the end
        self.superseded: list[int] = []
        # Chats sent to at once; the platform's own limiter paces the messages themselves.
        self.slots = asyncio.Semaphore(CHATS_AT_ONCE)

    def _retry(self, seconds: float) -> None:
        self.retry_in = seconds if self.retry_in is None else min(self.retry_in, seconds)

    async def send_chat(self, messages: list[PendingMessage]) -> None:
        async with self.slots:
            for index, message in enumerate(messages):
                if not await self._send(message):
                    # Held: the chat's later messages wait behind this one.
                    self.unsent += [later.id for later in messages[index + 1 :]]
                    return

    async def _send(self, message: PendingMessage) -> bool:
        """Send one message; False when its chat must wait."""
        outbox, clock = self.outbox, self.clock
        reply = self.replies.get(message.id)
        key = reply.replace_key if reply is not None else None
        if key is not None and self.newest[(message.channel, message.chat_key, key)] != message.id:
            self.superseded.append(message.id)  # a newer version of the same message follows
            return True
        sender = self.senders.get(message.channel)
        if message.audience != COORDINATORS_AUDIENCE and sender is None:
            self.unsent.append(message.id)
            return True  # that channel is not running in this process
        try:
            if message.audience == COORDINATORS_AUDIENCE:
                assert self.coordinators is not None  # only then are their notices taken
                await self.coordinators.notify(
                    CoordinatorNotice.model_validate_json(message.payload_json)
                )
            else:
                assert sender is not None and reply is not None
                if reply.upload_link is not None:
                    reply = await asyncio.to_thread(
                        with_upload_link, self.links, message.channel, message.chat_key, reply
                    )
                await _send_reply(outbox, sender, message.channel, message.chat_key, reply)
        except WaitForUser:
            self.unsent.append(message.id)
            return False
        except RetryLater as later:
            DELIVERIES.labels(message.channel, "retry").inc()
            until = clock() + timedelta(seconds=later.seconds)
            await asyncio.to_thread(outbox.release, [message.id], until)
            self._retry(later.seconds)
            return False
        except Undeliverable:
            log.warning("outbox row %s on %s cannot be delivered", message.id, message.channel)
            DELIVERIES.labels(message.channel, "refused").inc()
            await asyncio.to_thread(outbox.give_up, message.id)
            return True
        except Exception as error:
            # No message content in logs: only which row, which channel, which kind of error.
            log.warning(
                "delivery failed for outbox row %s on %s (%s)",
                message.id,
                message.channel,
                type(error).__name__,
            )
            DELIVERIES.labels(message.channel, "failed").inc()
            wait = backoff(message.attempts + 1)
            retry_at = clock() + timedelta(seconds=wait)
            await asyncio.to_thread(outbox.mark_failed, message.id, retry_at)
            self._retry(wait)
            return False
        # Marked at once: a crash after this point cannot send the message a second time.
        await asyncio.to_thread(outbox.mark_sent, [message.id], clock())
        DELIVERIES.labels(message.channel, "sent").inc()
        log.debug("message delivered", extra={"outbox_id": message.id, "channel": message.channel})
        self.sent += 1
        return True


async def deliver_forever(
    one_round: Callable[[], Awaitable[DeliveryReport]],
    wake: asyncio.Event,
    stopping: asyncio.Event,
    what: str,
    idle_seconds: float = 30,
) -> None:
    """A channel's sender: a round whenever `wake` is set, again at once while rounds make
    progress, when messages held back (a 429, a failure) may be tried again, and every
    `idle_seconds` in case a wake-up was missed. Each hold is remembered until its time, so a
    round in between (other chats' messages) never makes one wait for the idle timer."""
    loop = asyncio.get_running_loop()
    due: list[float] = []  # loop times when held messages may go again
    while not stopping.is_set():
        timeout = min(idle_seconds, max(0.0, due[0] - loop.time())) if due else idle_seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=timeout)
        wake.clear()
        while due and due[0] <= loop.time():
            heapq.heappop(due)
        try:
            report = await one_round()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.error("%s failed (%s)", what, type(error).__name__)
            report = DeliveryReport(0, retry_in=1.0)
        if report.retry_in is not None:
            heapq.heappush(due, loop.time() + report.retry_in)
        if report.more:
            wake.set()


def with_upload_link(
    links: LinkIssuer | None, channel: str, chat_key: str, reply: Outbound
) -> Outbound:
    assert reply.upload_link is not None
    link = links.upload_link(channel, chat_key, reply.upload_link, reply.locale) if links else None
    t = translator(reply.locale)
    if link is None:
        addition = t(
            "The upload page is not switched on for this service yet. A coordinator will help "
            "you send large files another way."
        )
    else:
        url, hours = link
        addition = t(
            "Your secure upload page (only for this case, valid for {hours} hours):", hours=hours
        )
        addition += f"\n{url}"
    return reply.model_copy(update={"text": f"{reply.text}\n\n{addition}", "upload_link": None})


def _reply(payload_json: str) -> Outbound:
    return Outbound.model_validate_json(payload_json)


def _newest_by_replace_key(
    pending: list[PendingMessage], replies: Mapping[int, Outbound]
) -> dict[tuple[str, str, str], int]:
    newest: dict[tuple[str, str, str], int] = {}
    for message in pending:
        reply = replies.get(message.id)
        if reply is not None and reply.replace_key is not None:
            newest[(message.channel, message.chat_key, reply.replace_key)] = message.id
    return newest


async def _send_reply(
    outbox: OutboxStore, sender: ReplySender, channel: str, chat_key: str, reply: Outbound
) -> None:
    """Send, or edit the message this one replaces."""
    key = reply.replace_key
    if key is None:
        await sender.send(chat_key, reply)
        return
    shown = await asyncio.to_thread(outbox.shown_message, channel, chat_key, key)
    if shown is not None:
        reply = reply.model_copy(update={"edit_of": shown})
    ref = await sender.send(chat_key, reply)
    if ref is not None and ref != shown:
        await asyncio.to_thread(outbox.remember_shown, channel, chat_key, key, ref)
