"""Reading and settling the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, select, update

from storage.database import reader
from storage.models import Outbox

_outbox = Outbox.__table__  # type: ignore[attr-defined]

# Attempts recorded for a row the platform refused for good; above any retry limit.
MAX_ATTEMPTS_MARK = 1_000


@dataclass(frozen=True)
class PendingMessage:
    id: int
    channel: str
    chat_key: str
    audience: str
    payload_json: str
    attempts: int


class OutboxStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)  # built once: it is a new engine object per call
        self._pending = (
            select(
                _outbox.c.id,
                _outbox.c.channel,
                _outbox.c.chat_key,
                _outbox.c.audience,
                _outbox.c.payload_json,
                _outbox.c.attempts,
            )
            .where(_outbox.c.sent_at.is_(None))
            .order_by(_outbox.c.id)
            .limit(bindparam("limit"))
        )
        self._mark_sent = (
            update(_outbox)
            .where(_outbox.c.id.in_(bindparam("row_ids", expanding=True)))
            .values(sent_at=bindparam("at"))
        )
        self._give_up = (
            update(_outbox)
            .where(_outbox.c.id == bindparam("row_id"))
            .values(attempts=bindparam("attempts"))
        )
        self._mark_failed = (
            update(_outbox)
            .where(_outbox.c.id == bindparam("row_id"))
            .values(attempts=_outbox.c.attempts + 1)
        )

    def pending(self, limit: int = 200) -> list[PendingMessage]:
        with self._reader.connect() as conn:
            rows = conn.execute(self._pending, {"limit": limit}).all()
        return [PendingMessage(*row) for row in rows]

    def mark_sent(self, ids: list[int], at: datetime) -> None:
        if ids:
            with self.engine.begin() as conn:
                conn.execute(self._mark_sent, {"row_ids": ids, "at": at})

    def give_up(self, row_id: int) -> None:
        """Never try this row again (the platform refused it for good)."""
        with self.engine.begin() as conn:
            conn.execute(self._give_up, {"row_id": row_id, "attempts": MAX_ATTEMPTS_MARK})

    def mark_failed(self, row_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(self._mark_failed, {"row_id": row_id})
