"""What a user sees when something fails on our side: a kind word, never a stack trace."""

from __future__ import annotations

from conversations.events import Outbound
from conversations.i18n import translator


def apology(locale: str) -> Outbound:
    """Sent directly by the channel (the database may be what failed, so not via the outbox)."""
    t = translator(locale)
    return Outbound(
        text=t(
            "Sorry, something went wrong on our side. Your earlier answers are safe. Please "
            "send your last message again in a moment."
        ),
        locale=locale,
    )
