"""What each channel can do, said once per channel and asked everywhere else.

The engine, the data rights and the retention rules ask a channel's capabilities (can it hand
the patient a document? can the patient send one in the chat? may we write at any time?)
instead of testing its name, so a new channel is one more entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# Bots may send files up to 50 MB (Telegram's limit; the console keeps to the same).
BOT_DOCUMENT_LIMIT = 50 * 1024 * 1024


@dataclass(frozen=True)
class ChannelCapabilities:
    name: str
    # Huizhen can hand the patient a document (a PDF, a zip) in the chat, up to this size.
    sends_documents: bool = True
    max_document_bytes: int = BOT_DOCUMENT_LIMIT
    # The patient can send documents in the chat; where not, the upload page is the way.
    receives_documents: bool = True
    # A message already shown can be edited in place (a ticked option, progress).
    edits_messages: bool = True
    # Options are buttons; where not, they are a numbered list answered with the digit.
    buttons: bool = True
    # The platform lets us write only this long after the patient's last message (WeChat's
    # customer-service window); the channel keeps bookkeeping per follower for it. None: we
    # may write at any time.
    reply_window: timedelta | None = None

    def can_send_document(self, size: int) -> bool:
        return self.sends_documents and size <= self.max_document_bytes


CONSOLE = ChannelCapabilities("console", buttons=False, edits_messages=False)
TELEGRAM = ChannelCapabilities("telegram")
# An Official Account sends text and pictures only, takes pictures only, cannot edit, and
# answers a follower within 48 hours of their last message.
WECHAT = ChannelCapabilities(
    "wechat",
    sends_documents=False,
    receives_documents=False,
    edits_messages=False,
    buttons=False,
    reply_window=timedelta(hours=48),
)

CHANNELS: dict[str, ChannelCapabilities] = {c.name: c for c in (CONSOLE, TELEGRAM, WECHAT)}


def capabilities(channel: str) -> ChannelCapabilities:
    """The capabilities of the channel by that name. A name not registered (a test's own
    channel) is taken for a plain chat that can do everything."""
    return CHANNELS.get(channel) or ChannelCapabilities(channel)


def windowed_channels() -> tuple[str, ...]:
    """The channels that may write to a patient only within a window after their message."""
    return tuple(name for name, c in CHANNELS.items() if c.reply_window is not None)
