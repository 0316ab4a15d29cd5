"""The reply side: what a channel must offer, and the sender that drains the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import BinaryIO, Protocol

from handlers.events import CoordinatorNotice, Outbound
from storage.outbox import OutboxStore

log = logging.getLogger(__name__)


class ReplySender(Protocol):
    """Delivers replies to one channel's chats. Raises to have the message retried."""

    def send(self, chat_key: str, message: Outbound) -> None: ...


class CoordinatorSink(Protocol):
    def notify(self, notice: CoordinatorNotice) -> None: ...


class FileOpener(Protocol):
    """Opens a file the user sent on this channel (FileRef.source) as a binary stream."""

    def open(self, source: str) -> BinaryIO: ...


MAX_DELIVERY_ATTEMPTS = 5


def deliver_pending(
    outbox: OutboxStore,
    senders: Mapping[str, ReplySender],
    coordinators: CoordinatorSink,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Send every pending message in order; mark each sent. Returns how many were sent."""
    sent: list[int] = []
    for message in outbox.pending():
        if message.attempts >= MAX_DELIVERY_ATTEMPTS:
            continue
        try:
            if message.audience == "coordinators":
                coordinators.notify(CoordinatorNotice.model_validate_json(message.payload_json))
            else:
                sender = senders.get(message.channel)
                if sender is None:
                    continue  # that channel is not running in this process
                sender.send(message.chat_key, Outbound.model_validate_json(message.payload_json))
        except Exception:
            # No message content in logs: only which row and which channel.
            log.warning("delivery failed for outbox row %s on %s", message.id, message.channel)
            outbox.mark_failed(message.id)
            continue
        sent.append(message.id)
    outbox.mark_sent(sent, clock())
    return len(sent)
