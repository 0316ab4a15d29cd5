"""Background jobs the conversation asked for (storing a file)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from storage.database import reader
from storage.models import Job

_job = Job.__table__  # type: ignore[attr-defined]

MAX_ATTEMPTS = 3
_PENDING_COLUMNS = (
    _job.c.id,
    _job.c.kind,
    _job.c.channel,
    _job.c.user_key,
    _job.c.chat_key,
    _job.c.payload_json,
    _job.c.attempts,
)


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

    def pending(self, limit: int = 50) -> list[PendingJob]:
        query = (
            select(*_PENDING_COLUMNS)
            .where(_job.c.done_at.is_(None), _job.c.attempts < MAX_ATTEMPTS)
            .order_by(_job.c.id)
            .limit(limit)
        )
        with self._reader.connect() as conn:
            return [PendingJob(*row) for row in conn.execute(query).all()]

    def claim(
        self, now: datetime, lease: timedelta, kinds: tuple[str, ...], limit: int = 50
    ) -> list[PendingJob]:
        """Take pending jobs of these kinds for this worker until `now + lease`; rows another
        worker is taking are skipped (SKIP LOCKED on PostgreSQL; SQLite serialises writers)."""
        free = (_job.c.claimed_until.is_(None)) | (_job.c.claimed_until < now)
        query = (
            select(*_PENDING_COLUMNS)
            .where(
                _job.c.done_at.is_(None),
                _job.c.attempts < MAX_ATTEMPTS,
                free,
                _job.c.kind.in_(kinds),
            )
            .order_by(_job.c.id)
            .limit(limit)
        )
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            jobs = [PendingJob(*row) for row in conn.execute(query).all()]
            if jobs:
                conn.execute(
                    update(_job)
                    .where(_job.c.id.in_([job.id for job in jobs]))
                    .values(claimed_until=now + lease)
                )
        return jobs

    def release(self, ids: list[int]) -> None:
        """Jobs taken but not for this process (its channel runs elsewhere)."""
        if ids:
            with self.engine.begin() as conn:
                conn.execute(update(_job).where(_job.c.id.in_(ids)).values(claimed_until=None))

    def free_claims(self) -> None:
        """Unfinished jobs held by no one any more (see storage.database.serving)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_job)
                .where(_job.c.done_at.is_(None), _job.c.claimed_until.is_not(None))
                .values(claimed_until=None)
            )

    def mark_done(self, job_id: int, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_job).where(_job.c.id == job_id).values(done_at=at))

    def mark_attempt(self, job_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(_job)
                .where(_job.c.id == job_id)
                .values(attempts=_job.c.attempts + 1, claimed_until=None)
            )
