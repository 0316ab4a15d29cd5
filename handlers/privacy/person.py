"""Who a data right is exercised for, and where their copy is kept: shared by the copy
(export.py), the erasure (erasure.py) and the jobs that run them (requests.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from conversations.events import Outbound
from conversations.state import ConversationState
from handlers.updates.transaction import for_user
from storage.data_rights import DataRightsTables

EXPORT_PREFIX = "export:"


@dataclass(frozen=True)
class Person:
    channel: str
    user_key: str
    chat_key: str


def export_holder(channel: str, user_key: str) -> str:
    """The case id under which a patient's copy of their data is stored (and found again when
    they are erased); a download link for the copy is bound to it."""
    return f"{EXPORT_PREFIX}{channel}:{user_key}"


def state_of(tables: DataRightsTables, person: Person) -> ConversationState | None:
    raw = tables.state_json(person.channel, person.user_key)
    return None if raw is None else ConversationState.model_validate_json(raw)


def tell(tables: DataRightsTables, person: Person, message: Outbound, now: datetime) -> None:
    """A message to the patient's chat, in its own transaction."""
    tables.enqueue(for_user(person.channel, person.chat_key, message, now))
