"""Background jobs the conversation asked for, and the documents they produce."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.database import reader
from storage.models import Document, Job

_job = Job.__table__  # type: ignore[attr-defined]
_document = Document.__table__  # type: ignore[attr-defined]

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class PendingJob:
    id: int
    kind: str
    channel: str
    user_key: str
    chat_key: str
    payload_json: str
    attempts: int


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)  # built once: it is a new engine object per call
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite

    def pending(self, limit: int = 50) -> list[PendingJob]:
        query = (
            select(
                _job.c.id,
                _job.c.kind,
                _job.c.channel,
                _job.c.user_key,
                _job.c.chat_key,
                _job.c.payload_json,
                _job.c.attempts,
            )
            .where(_job.c.done_at.is_(None), _job.c.attempts < MAX_ATTEMPTS)
            .order_by(_job.c.id)
            .limit(limit)
        )
        with self._reader.connect() as conn:
            return [PendingJob(*row) for row in conn.execute(query).all()]

    def mark_done(self, job_id: int, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_job).where(_job.c.id == job_id).values(done_at=at))

    def mark_attempt(self, job_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(_job).where(_job.c.id == job_id).values(attempts=_job.c.attempts + 1)
            )

    def add_document(
        self,
        *,
        file_id: str,
        case_id: str,
        item: str,
        sha256: str,
        size: int,
        original_name: str,
        at: datetime,
    ) -> None:
        """Record a stored file; a retried job finds it already there and changes nothing."""
        statement = self._dialect.insert(_document).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            conn.execute(
                statement,
                {
                    "file_id": file_id,
                    "case_id": case_id,
                    "item": item,
                    "sha256": sha256,
                    "size": size,
                    "original_name": original_name,
                    "stored_at": at,
                },
            )
