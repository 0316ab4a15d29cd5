"""Reading and settling the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, select, update

from storage.database import Prepared, hot_connections
from storage.models import Outbox

_outbox = Outbox.__table__  # type: ignore[attr-defined]


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
        self._db = hot_connections(engine)
        dialect = engine.dialect
        self._pending = Prepared(
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
            .limit(bindparam("limit")),
            dialect,
        )
        self._mark_sent = Prepared(
            update(_outbox)
            .where(_outbox.c.id == bindparam("row_id"))
            .values(sent_at=bindparam("at")),
            dialect,
        )
        self._mark_failed = Prepared(
            update(_outbox)
            .where(_outbox.c.id == bindparam("row_id"))
            .values(attempts=_outbox.c.attempts + 1),
            dialect,
        )

    def pending(self, limit: int = 200) -> list[PendingMessage]:
        with self._db.reading() as cursor:
            rows = self._pending.execute(cursor, {"limit": limit}).fetchall()
        return [PendingMessage(*row) for row in rows]

    def mark_sent(self, ids: list[int], at: datetime) -> None:
        if not ids:
            return
        with self._db.transaction() as cursor:
            if len(ids) == 1:
                self._mark_sent.execute(cursor, {"row_id": ids[0], "at": at})
            else:
                self._mark_sent.executemany(cursor, [{"row_id": i, "at": at} for i in ids])

    def mark_failed(self, row_id: int) -> None:
        with self._db.transaction() as cursor:
            self._mark_failed.execute(cursor, {"row_id": row_id})
