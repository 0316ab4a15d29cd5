"""The reply side: what a channel must offer, and the sender that drains the outbox.

Delivery is asynchronous because the platforms' clients are; database calls run in a worker
thread so a slow disk never stalls the event loop. Messages go out in outbox order, and a chat
whose message could not be sent waits (its later messages are not sent around it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Protocol

from handlers.events import CoordinatorNotice, Outbound
from storage.outbox import OutboxStore

log = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 8


class RetryLater(Exception):
    """The platform asked us to slow down (Telegram's 429 with retry_after)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


class Undeliverable(Exception):
    """The platform will never take this message (the user blocked the bot, chat gone)."""


class ReplySender(Protocol):
    """Delivers replies to one channel's chats. Raises RetryLater, Undeliverable, or any other
    exception for a passing fault (retried with backoff)."""

    async def send(self, chat_key: str, message: Outbound) -> None: ...


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


def backoff(attempts: int) -> float:
    """Seconds before retrying after `attempts` passing failures: 1, 2, 4 … up to 60."""
    return float(min(60, 2 ** max(0, attempts - 1)))


async def deliver_pending(
    outbox: OutboxStore,
    senders: Mapping[str, ReplySender],
    coordinators: CoordinatorSink,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeliveryReport:
    """Send pending messages in order and mark each sent as soon as the platform took it."""
    held: set[tuple[str, str]] = set()
    retry_in: float | None = None
    sent = 0
    for message in await asyncio.to_thread(outbox.pending):
        chat = (message.channel, message.chat_key or message.audience)
        if chat in held or message.attempts >= MAX_DELIVERY_ATTEMPTS:
            continue
        sender = senders.get(message.channel)
        if message.audience != "coordinators" and sender is None:
            continue  # that channel is not running in this process
        try:
            if message.audience == "coordinators":
                await coordinators.notify(
                    CoordinatorNotice.model_validate_json(message.payload_json)
                )
            else:
                assert sender is not None
                await sender.send(
                    message.chat_key, Outbound.model_validate_json(message.payload_json)
                )
        except RetryLater as later:
            held.add(chat)
            retry_in = later.seconds if retry_in is None else min(retry_in, later.seconds)
            continue
        except Undeliverable:
            log.warning("outbox row %s on %s cannot be delivered", message.id, message.channel)
            await asyncio.to_thread(outbox.give_up, message.id)
            continue
        except Exception as error:
            # No message content in logs: only which row, which channel, which kind of error.
            log.warning(
                "delivery failed for outbox row %s on %s (%s)",
                message.id,
                message.channel,
                type(error).__name__,
            )
            held.add(chat)
            await asyncio.to_thread(outbox.mark_failed, message.id)
            wait = backoff(message.attempts + 1)
            retry_in = wait if retry_in is None else min(retry_in, wait)
            continue
        # Marked at once: a crash after this point cannot send the message a second time.
        await asyncio.to_thread(outbox.mark_sent, [message.id], clock())
        sent += 1
    return DeliveryReport(sent, retry_in)
